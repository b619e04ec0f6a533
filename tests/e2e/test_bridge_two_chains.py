"""The two-community bridge deploy (issue 12, item 6) as an operator runs it: `ape run deploy`
on chain A, then on chain B with `--peer` A's file, against two Anvil nodes reached as the
`powerhive-poa` (4242) and `powerhive-poa-b` (4243) networks of ape-config.yaml.

Checks both deployment files and the on-chain wiring (peer, token list, relayer set, M,
limits), then one eEuro round trip A -> B -> A through 2-of-3 attestations, driven with plain
web3 from the files alone (what an off-chain relayer has), with the invariant after each step.
"""

import contextlib
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.logs import DISCARD

from scripts._bridge import (
    ACTION_DELIVERED,
    ACTION_UNLOCK,
    INBOUND,
    OUTBOUND,
    Transfer,
    sign,
)
from scripts._bridge_deploy import WiringError, parse_limit, relayer_config
from tests.oracle.rig import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
APE = str(Path(sys.executable).with_name("ape"))
CHAIN_A, CHAIN_B = 4242, 4243
EUR = 10**6
# Three relayer keys of this test (not Anvil's public ones), sorted by address.
RELAYERS = sorted(
    (Account.from_key(keccak(text=f"powerhive relayer {i}")) for i in range(3)),
    key=lambda a: int(a.address, 16),
)


@pytest.fixture(scope="module")
def nodes():
    """Two Anvil nodes (automine: `test_deploy_poa.py` covers a sealing node)."""
    anvil = shutil.which("anvil", path=str(Path(sys.executable).parent))
    started = {}
    try:
        for name, chain_id in (("powerhive-poa", CHAIN_A), ("powerhive-poa-b", CHAIN_B)):
            port = free_port()
            proc = subprocess.Popen(
                [anvil, "--port", str(port), "--chain-id", str(chain_id)]
                + ["--hardfork", "cancun", "--silent"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            started[chain_id] = (proc, port, f"ethereum:{name}:http://127.0.0.1:{port}")
        for _, port, _ in started.values():
            wait_port(port)
        yield {
            chain_id: (choice, Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}")))
            for chain_id, (_, port, choice) in started.items()
        }
    finally:
        for proc, _, _ in started.values():
            proc.terminate()
        for proc, _, _ in started.values():
            proc.wait(timeout=10)


def _deploy(network, out_dir, *extra):
    return subprocess.run(
        [APE, "run", "deploy", "--network", network, "--account", "TEST::0"]
        + ["--out-dir", str(out_dir), *extra],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def deployed(nodes, tmp_path_factory):
    out = tmp_path_factory.mktemp("deployments")
    (net_a, _), (net_b, w3b) = nodes[CHAIN_A], nodes[CHAIN_B]
    # One transaction on B first, so the same deployer's contracts get other addresses there
    # than on A (a peer wired to its own chain's address would then show).
    deployer = w3b.eth.accounts[0]
    w3b.eth.wait_for_transaction_receipt(
        w3b.eth.send_transaction({"from": deployer, "to": deployer, "value": 0})
    )
    first = _deploy(net_a, out)
    assert first.returncode == 0, first.stdout + first.stderr
    second = _deploy(
        net_b, out, "--peer", str(out / f"{CHAIN_A}.json"), "--peer-network", net_a,
        *(arg for r in RELAYERS for arg in ("--relayer", r.address)),
        "--threshold", "2", "--limit", "eEuro=5000/500",
    )  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    files = {c: json.loads((out / f"{c}.json").read_text()) for c in (CHAIN_A, CHAIN_B)}
    return out, files


def _contract(w3, record):
    return w3.eth.contract(address=record["address"], abi=record["abi"])


def test_both_files_and_the_wiring(nodes, deployed):
    _, files = deployed
    a, b = files[CHAIN_A], files[CHAIN_B]
    relayers = [r.address for r in RELAYERS]
    tokens_a = {"ENT": "EnergyLedger", "eEuro": "EEuro"}
    tokens_b = {"ENT": "WrappedENT", "eEuro": "WrappedEEuro"}
    for mine, theirs, names, peer_names, home, peer_chain, peer_net in (
        (a, b, tokens_a, tokens_b, True, CHAIN_B, "ethereum:powerhive-poa-b:node"),
        (b, a, tokens_b, tokens_a, False, CHAIN_A, "ethereum:powerhive-poa:node"),
    ):
        w3 = nodes[mine["chain_id"]][1]
        section = mine["bridge"]
        peer_bridge = theirs["contracts"]["Bridge"]["address"]
        assert section["peer"] == {
            "chain_id": peer_chain,
            "bridge": peer_bridge,
            "network": peer_net,
        }
        assert section["relayers"] == relayers and section["threshold"] == 2
        assert section["tokens"] == [
            {
                "name": name,
                "local": mine["contracts"][names[name]]["address"],
                "peer": theirs["contracts"][peer_names[name]]["address"],
                "home": home,
            }
            for name in ("ENT", "eEuro")
        ]
        bridge = _contract(w3, mine["contracts"]["Bridge"])
        council = mine["contracts"]["Council"]["address"]
        assert bridge.functions.governance().call() == council
        assert bridge.functions.local_chain().call() == mine["chain_id"]
        assert bridge.functions.peer_chain().call() == peer_chain
        assert bridge.functions.peer_bridge().call() == peer_bridge
        assert bridge.functions.relayers().call() == relayers
        assert bridge.functions.threshold().call() == 2
        assert not bridge.functions.paused().call()
        for token in section["tokens"]:
            info = bridge.functions.token_info(token["local"]).call()
            assert info == (token["peer"], home, True)
            assert bridge.functions.local_token(token["peer"]).call() == token["local"]
            decimals, cap = (6, 5_000) if token["name"] == "eEuro" else (18, 10_000)
            maximum = 500 if token["name"] == "eEuro" else 1_000
            for direction in (OUTBOUND, INBOUND):
                capacity, rate, per_transfer, available = bridge.functions.limit(
                    token["local"], direction
                ).call()
                assert capacity == available == cap * 10**decimals
                assert rate == capacity // 86_400
                assert per_transfer == maximum * 10**decimals
    # The wrapped tokens on B are minted only by B's Bridge, and start empty.
    w3b = nodes[CHAIN_B][1]
    for name in ("WrappedENT", "WrappedEEuro"):
        wrapped = _contract(w3b, b["contracts"][name])
        assert wrapped.functions.bridge().call() == b["contracts"]["Bridge"]["address"]
        assert wrapped.functions.totalSupply().call() == 0
    assert _contract(w3b, b["contracts"]["WrappedEEuro"]).functions.decimals().call() == 6


def _send(w3, fn, sender):
    tx_hash = fn.transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt.status == 1
    return receipt


def _sent(bridge, receipt, source_chain) -> Transfer:
    (event,) = bridge.events.TransferSent().process_receipt(receipt, errors=DISCARD)
    e = event.args
    return Transfer(
        source_chain, bridge.address, e.nonce, e.dest_chain, e.sender, e.recipient, e.token,
        e.amount, e.timestamp,
    )  # fmt: skip


# Anvil's second default account (`w3.eth.accounts[1]`, the holder below): the CLI signs
# with a keystore of it.
HOLDER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def _keystore(root: Path, key: str, address: str) -> Path:
    path = root / f"{address}.keystore.json"
    data = Account.encrypt(key, "pass", kdf="scrypt", iterations=2**10)  # fast for the test
    path.write_text(json.dumps(data))
    return path


def _powerhive(w3, deployments: Path, keystore: Path):
    """`powerhive --rpc <w3's node> ... ARGS` in process; its stdout (it must succeed)."""
    from click.testing import CliRunner

    from powerhive.cli import main

    base = ["--rpc", w3.provider.endpoint_uri, "--deployments", str(deployments)]
    base += ["--keystore", str(keystore)]

    def run(*args) -> str:
        result = CliRunner(mix_stderr=False).invoke(
            main, [*base, *args], env={"POWERHIVE_PASSPHRASE": "pass"}, prog_name="powerhive"
        )
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result.stdout

    return run


@contextlib.contextmanager
def _dashboards(nodes, deployments: Path):
    """The dashboard of each chain, in process on a free port: chain id -> its URL."""
    from powerhive.dashboard.app import Dashboard, make_server

    servers = {
        chain_id: make_server(Dashboard(w3.provider.endpoint_uri, deployments), "127.0.0.1", 0)
        for chain_id, (_, w3) in nodes.items()
    }
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {c: f"http://127.0.0.1:{srv.server_address[1]}" for c, srv in servers.items()}
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


@contextlib.contextmanager
def _browser_page():
    from playwright import sync_api as playwright_api

    from tests.dashboard.test_dashboard import CHROMIUM, SHOTS

    assert CHROMIUM.exists(), "chromium is missing: `make browser` installs it (apt)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 900})
        finally:
            browser.close()


def _bridge_page(page, url: str, shot: str, token: str, held: int, last_status: str) -> None:
    """The bridge page: `token`'s held amount (locked or wrapped supply) and the newest
    transfer out's status, as the chain has them."""
    from tests.dashboard.test_dashboard import visit

    visit(page, url + "/bridge", shot)
    rows = [r.split("\t") for r in page.locator("#bridge-tokens tr").all_inner_texts()[1:]]
    (row,) = [r for r in rows if r[0] == token]
    kind = "wrapped supply" if token.startswith("Wrapped") else "locked"
    assert row[4] == f"{held // EUR} {kind}", row
    newest = page.locator("#bridge-sent tr").all_inner_texts()[1].split("\t")
    assert (newest[1], newest[-1]) == (token, last_status), newest


def test_round_trip_of_eeuro_through_two_of_three(nodes, deployed):
    _, files = deployed
    w3a, w3b = nodes[CHAIN_A][1], nodes[CHAIN_B][1]
    a, b = files[CHAIN_A]["contracts"], files[CHAIN_B]["contracts"]
    eeuro, council = _contract(w3a, a["EEuro"]), _contract(w3a, a["Council"])
    bridge_a, bridge_b = _contract(w3a, a["Bridge"]), _contract(w3b, b["Bridge"])
    wrapped = _contract(w3b, b["WrappedEEuro"])
    deployer, holder, submitter = w3a.eth.accounts[0], w3a.eth.accounts[1], w3a.eth.accounts[2]
    # A banker by the (one-voter) Council, then eEuro for the holder.
    set_banker = eeuro.encode_abi("set_banker", args=[deployer])
    _send(w3a, council.functions.vote(eeuro.address, set_banker), deployer)
    _send(w3a, eeuro.functions.mint(holder, 100 * EUR), deployer)
    in_flight = {}

    def conserved():
        locked = eeuro.functions.balanceOf(bridge_a.address).call()
        assert locked == wrapped.functions.totalSupply().call() + sum(in_flight.values())
        return locked

    def relay(transfer, source, dest, w3_source, w3_dest, keys):
        unlock = sign(dest.functions.local_chain().call(), dest.address, transfer.id(),
                      ACTION_UNLOCK, keys)  # fmt: skip
        _send(w3_dest, dest.functions.unlock(tuple(transfer), unlock), submitter)
        in_flight.pop(transfer.id())
        conserved()
        delivered = sign(source.functions.local_chain().call(), source.address, transfer.id(),
                         ACTION_DELIVERED, keys)  # fmt: skip
        _send(w3_source, source.functions.mark_transferred(tuple(transfer), delivered), submitter)
        assert not source.functions.is_pending(transfer.token, transfer.nonce).call()

    # A -> B: 60 EUR locked on A, minted on B by two of the three relayers.
    _send(w3a, eeuro.functions.approve(bridge_a.address, 60 * EUR), holder)
    receipt = _send(w3a, bridge_a.functions.lock(eeuro.address, 60 * EUR, CHAIN_B, holder), holder)
    out = _sent(bridge_a, receipt, CHAIN_A)
    in_flight[out.id()] = out.amount
    assert bridge_a.functions.transfer_id(tuple(out)).call() == out.id()
    assert conserved() == 60 * EUR
    keys = [RELAYERS[0].key, RELAYERS[2].key]
    relay(out, bridge_a, bridge_b, w3a, w3b, keys)
    assert wrapped.functions.balanceOf(holder).call() == 60 * EUR

    # B -> A: 25 EUR burned on B by `powerhive bridge burn`, released on A by the other two.
    out_dir = deployed[0]
    cli = _powerhive(w3b, out_dir, _keystore(out_dir, HOLDER_KEY, holder))
    dry = cli("bridge", "burn", "wEEUR", "25", holder, "--dry-run")
    assert f"burn 25 of {wrapped.address} for {holder} on chain {CHAIN_A}" in dry
    assert wrapped.functions.balanceOf(holder).call() == 60 * EUR
    sent = cli("bridge", "burn", "wEEUR", "25", holder)
    assert "event    TransferSent(" in sent and "nonce=0" in sent
    receipt = w3b.eth.get_transaction_receipt(sent.split("tx ")[-1].strip())
    back = _sent(bridge_b, receipt, CHAIN_B)
    assert (back.amount, back.recipient, back.dest_chain) == (25 * EUR, holder, CHAIN_A)
    in_flight[back.id()] = back.amount
    assert wrapped.functions.balanceOf(holder).call() == 35 * EUR
    assert conserved() == 60 * EUR
    pending = cli("bridge", "pending", "wEEUR")
    assert f"nonce 0: 25 from {holder} to {holder} on chain {CHAIN_A}" in pending
    assert "1 pending, 25 in all" in pending
    assert bridge_b.functions.is_pending(wrapped.address, 0).call()
    # The dashboards of both chains while the burn is pending: A's lock completed, B's burn
    # pending, the lock's arrival on B; held amounts as on chain.
    with _dashboards(nodes, out_dir) as urls, _browser_page() as page:
        _bridge_page(page, urls[CHAIN_A], "bridge-a", "EEuro", 60 * EUR, "completed")
        _bridge_page(page, urls[CHAIN_B], "bridge-b", "WrappedEEuro", 35 * EUR, "pending")
        (arrival,) = page.locator("#bridge-received tr").all_inner_texts()[1:]
        assert arrival.split("\t")[1:] == ["WrappedEEuro", "0", holder, "60"]
        relay(back, bridge_b, bridge_a, w3b, w3a, [RELAYERS[1].key, RELAYERS[2].key])
        _bridge_page(page, urls[CHAIN_B], "bridge-b-done", "WrappedEEuro", 35 * EUR, "completed")
        _bridge_page(page, urls[CHAIN_A], "bridge-a-done", "EEuro", 35 * EUR, "completed")
        assert "None yet" not in page.inner_text("#bridge-received")
    assert "no pending transfers" in cli("bridge", "pending", "wEEUR")
    assert eeuro.functions.balanceOf(holder).call() == 65 * EUR
    assert wrapped.functions.balanceOf(holder).call() == 35 * EUR
    assert conserved() == 35 * EUR == wrapped.functions.totalSupply().call()
    # Replaying the delivered transfer is refused.
    replay = sign(CHAIN_B, bridge_b.address, out.id(), ACTION_UNLOCK, keys)
    with pytest.raises(Exception, match="bridge: already processed"):
        bridge_b.functions.unlock(tuple(out), replay).call({"from": submitter})


def test_a_second_peer_for_a_peered_bridge_is_refused_before_sending(nodes, deployed):
    out, files = deployed
    (net_a, w3a), (net_b, w3b) = nodes[CHAIN_A], nodes[CHAIN_B]
    deployer = files[CHAIN_A]["deployer"]
    nonces = (w3a.eth.get_transaction_count(deployer), w3b.eth.get_transaction_count(deployer))
    again = _deploy(
        net_b, out, "--force", "--peer", str(out / f"{CHAIN_A}.json"), "--peer-network", net_a,
        "--relayer", RELAYERS[0].address,
    )  # fmt: skip
    assert again.returncode != 0
    assert f"the Bridge on chain {CHAIN_A} is already peered with chain {CHAIN_B}" in again.stderr
    assert "Traceback" not in again.stdout + again.stderr
    after = (w3a.eth.get_transaction_count(deployer), w3b.eth.get_transaction_count(deployer))
    assert after == nonces
    assert json.loads((out / f"{CHAIN_B}.json").read_text()) == files[CHAIN_B]


def test_options_are_checked_without_a_chain():
    with pytest.raises(WiringError, match="--relayer is required on this network"):
        relayer_config([], None, {}, local=False)
    with pytest.raises(WiringError, match="threshold M = 3 needs 1 <= M <= 2"):
        relayer_config([RELAYERS[0].address, RELAYERS[1].address], 3, {}, local=False)
    with pytest.raises(WiringError, match="not an address"):
        relayer_config(["0x1234"], None, {}, local=False)
    one = relayer_config([RELAYERS[1].address], None, {}, local=False)
    assert (one.relayers, one.threshold) == ([RELAYERS[1].address], 1)  # 1-of-1 allowed
    three = relayer_config([r.address for r in reversed(RELAYERS)], None, {}, local=False)
    assert three.relayers == [r.address for r in RELAYERS] and three.threshold == 2
    assert parse_limit("ENT=10/4")[1].max_per_transfer == 4
    for bad in ("ENT=10/11", "XYZ=1", "ENT=ten", "eEuro=0"):
        with pytest.raises(WiringError):
            parse_limit(bad)
