"""`ape run deploy` as an operator runs it: against a sealing PoA-like node, non-interactive.

Anvil plays the community's PoA chain (chain id 4242, one block per second, no automine),
reached through Ape's generic `node` provider as the `powerhive-poa` network of
ape-config.yaml. The deployer is an encrypted keystore in `ape accounts` format whose
passphrase comes from the environment, as on a headless server.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from tests.oracle.rig import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
APE = str(Path(sys.executable).with_name("ape"))
CHAIN_ID = 4242


# A port nobody listens on: the configured 8546 may be taken (another suite on this host
# deploying to it would change this test's nonces).
PORT = free_port()
# The configured network, reached at this node's address (Ape's `ecosystem:network:URI`
# choice keeps the network's config: legacy transactions, fixed gas limit).
NETWORK = f"ethereum:powerhive-poa:http://127.0.0.1:{PORT}"
ALIAS, PASSPHRASE = "operator", "correct horse battery staple"
# Anvil's first development key: funded on the node below.
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture(scope="module")
def poa_node():
    anvil = shutil.which("anvil", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen(
        [
            anvil,
            "--port",
            str(PORT),
            "--chain-id",
            str(CHAIN_ID),
            "--hardfork",
            "cancun",
            "--block-time",
            "1",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(PORT)
        yield Web3(Web3.HTTPProvider(f"http://127.0.0.1:{PORT}"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def operator_env(tmp_path_factory):
    """An Ape data folder holding only the operator's encrypted keystore."""
    data = tmp_path_factory.mktemp("ape-data")
    (data / "accounts").mkdir()
    keystore = Account.encrypt(KEY, PASSPHRASE)
    (data / "accounts" / f"{ALIAS}.json").write_text(json.dumps(keystore))
    env = dict(os.environ)
    env["APE_DATA_FOLDER"] = str(data)
    env[f"APE_ACCOUNTS_{ALIAS}_PASSPHRASE"] = PASSPHRASE
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _deploy(env, out_dir, *extra):
    return subprocess.run(
        [
            APE,
            "run",
            "deploy",
            "--network",
            NETWORK,
            "--account",
            ALIAS,
            "--out-dir",
            str(out_dir),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_deploy_to_poa_network(poa_node, operator_env, tmp_path):
    result = _deploy(operator_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    written = json.loads((tmp_path / f"{CHAIN_ID}.json").read_text())
    assert written["chain_id"] == CHAIN_ID
    assert written["network"] == "ethereum:powerhive-poa:node"
    assert written["deployer"] == Account.from_key(KEY).address
    assert written["evm_version"] == "cancun"
    for name in ("Council", "EnergyLedger", "EEuro", "HiveToken", "OrderBook", "BalancingMarket"):
        record = written["contracts"][name]
        assert written["deploy_block"] <= record["block"]
        assert poa_node.eth.get_code(record["address"]) != b""
        names = {item.get("name") for item in record["abi"]}
        expected = {"Council": "vote", "OrderBook": "place", "BalancingMarket": "commit"}.get(
            name, "transfer"
        )
        assert expected in names, name
    # Legacy transactions with the configured fixed gas limit, as the network config asks.
    eeuro = written["contracts"]["EEuro"]
    block = poa_node.eth.get_block(eeuro["block"], full_transactions=True)
    deploy_tx = next(tx for tx in block.transactions if tx["to"] is None)
    assert deploy_tx["type"] == 0
    assert deploy_tx["gas"] == 6_000_000
    token = poa_node.eth.contract(address=eeuro["address"], abi=eeuro["abi"])
    council = written["contracts"]["Council"]["address"]
    assert token.functions.owner().call() == council
    assert token.functions.banker().call() == "0x" + "00" * 20
    ledger = written["contracts"]["EnergyLedger"]
    ledger_c = poa_node.eth.contract(address=ledger["address"], abi=ledger["abi"])
    assert ledger_c.functions.owner().call() == council
    council_abi = written["contracts"]["Council"]["abi"]
    council_c = poa_node.eth.contract(address=council, abi=council_abi)
    assert council_c.functions.voters().call() == [written["deployer"]]
    book = written["contracts"]["OrderBook"]
    book_c = poa_node.eth.contract(address=book["address"], abi=book["abi"])
    assert book_c.functions.owner().call() == council
    # The single-chain deploy also deploys the chain's Bridge, governed by the Council and
    # unpeered (no peer, no relayer set, no token: it refuses every transfer until wired).
    bridge = written["contracts"]["Bridge"]
    bridge_c = poa_node.eth.contract(address=bridge["address"], abi=bridge["abi"])
    assert bridge_c.functions.governance().call() == council
    assert bridge_c.functions.local_chain().call() == CHAIN_ID
    assert bridge_c.functions.peer_chain().call() == 0
    assert bridge_c.functions.threshold().call() == 0
    assert written["bridge"] == {"peer": None, "relayers": [], "threshold": 0, "tokens": []}
    # No secret in it: readable by the oracle's own service user (issue 15, item 4).
    assert (tmp_path / f"{CHAIN_ID}.json").stat().st_mode & 0o777 == 0o644
    # The next steps, as commands, with this deployment's values.
    assert "Next steps" in result.stdout, result.stdout
    assert f"POWERHIVE_CHAIN_ID={CHAIN_ID}" in result.stdout
    assert "powerhive propose register-unit" in result.stdout
    assert "oracle check --config" in result.stdout

    # The hive market: on the Beekeeper's proxy, governed by the Council.
    hive = written["contracts"]["HiveMarket"]
    assert written["deploy_block"] <= hive["block"]
    hive_c = poa_node.eth.contract(address=hive["address"], abi=hive["abi"])
    assert hive_c.functions.BEEKEEPER().call() == written["contracts"]["Beekeeper"]["address"]
    assert hive_c.functions.governance().call() == council

    # A second run refuses to overwrite the file, before sending anything.
    nonce = poa_node.eth.get_transaction_count(written["deployer"])
    again = _deploy(operator_env, tmp_path)
    assert again.returncode != 0
    assert "already exists; pass --force to overwrite it" in again.stdout + again.stderr
    assert poa_node.eth.get_transaction_count(written["deployer"]) == nonce
    assert json.loads((tmp_path / f"{CHAIN_ID}.json").read_text()) == written

    forced = _deploy(operator_env, tmp_path, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    rewritten = json.loads((tmp_path / f"{CHAIN_ID}.json").read_text())
    assert rewritten["contracts"]["EEuro"]["address"] != eeuro["address"]
    assert (tmp_path / f"{CHAIN_ID}.json").stat().st_mode & 0o777 == 0o644
    # The replaced file is kept as <chain_id>.json.<UTC time>.bak.
    (backup,) = tmp_path.glob(f"{CHAIN_ID}.json.*.bak")
    assert json.loads(backup.read_text()) == written


def test_deploy_help_names_the_passphrase_variable_and_the_next_steps():
    result = subprocess.run(
        [APE, "run", "deploy", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "Deploy PowerHive" in text and "deployments/<chain_id>.json" in text
    assert "APE_ACCOUNTS_<alias>_PASSPHRASE" in text
    assert "<chain_id>.json.<UTC time>.bak" in text
    assert "next steps" in text


def test_wrong_passphrase_fails_without_prompting(poa_node, operator_env, tmp_path):
    env = dict(operator_env)
    env[f"APE_ACCOUNTS_{ALIAS}_PASSPHRASE"] = "wrong"
    result = _deploy(env, tmp_path)
    assert result.returncode != 0
    assert not (tmp_path / f"{CHAIN_ID}.json").exists()
