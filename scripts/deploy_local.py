"""`ape run deploy_local --network ethereum:local:http://127.0.0.1:8545` (what
`make deploy-local` runs against the persistent Anvil it starts).

Deploys PowerHive on the local chain unless `deployments/31337.json` already describes a
deployment that is on it (the chain keeps its state in `.local/`, so a second run reuses it),
has the Council register a storage unit, and writes a ready oracle configuration for
simulated meters (`.local/oracle/oracle.toml` with the unit's keystore and passphrase file).
Everything uses Anvil's public development accounts: for trying the flow, never for a real
network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand
from ape.exceptions import ApeException
from ape.logging import logger
from eth_account import Account

from oracle.config import load_config, to_toml
from oracle.deployments import deployment_path, load_deployment
from oracle.errors import OracleError
from scripts._bridge_deploy import bridge_section, deploy_bridge, write_bridged
from scripts._calls import encode_call
from scripts._protocol import deploy_protocol, out_dir_option, pass_vote

ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = ROOT / ".local"
ANVIL_CHAIN_ID = 31337
# Anvil's development accounts (the well-known mnemonic of ape-config.yaml's `test` section):
# 0 deploys (the Council's only voter), 5 owns the unit, 6 is the unit's key, 1 produces
# (PV into the battery), 2 consumes (a household). 7-9 are the bridge demo's relayers.
DEPLOYER, OWNER, UNIT, PRODUCER, CONSUMER = 0, 5, 6, 1, 2
PASSPHRASE = "powerhive local"

HELP = """Deploy PowerHive on the local chain of `make deploy-local` (reused when already
there), register a storage unit and write a ready oracle.toml for simulated meters."""


def _deployed(directory: Path):
    """The deployment in `directory` if it is on this chain (its Council has code)."""
    if not deployment_path(directory, chain.chain_id).exists():
        return None
    try:
        deployment = load_deployment(directory, chain.chain_id)
        council = deployment.contract("Council").address
        ledger = deployment.contract("EnergyLedger").address
    except OracleError as exc:
        raise click.ClickException(str(exc)) from None
    if not chain.provider.get_code(council) or not chain.provider.get_code(ledger):
        return None
    return deployment


def oracle_config(local_dir: Path, rpc: str, deployments: Path, addresses: dict) -> Path:
    """Write the unit's keystore, its passphrase file (0600) and oracle.toml; return its path."""
    base = local_dir / "oracle"
    base.mkdir(parents=True, exist_ok=True)
    keystore, secret = base / "unit-keystore.json", base / "passphrase"
    if not keystore.exists():
        # Anvil's public key for account 6: a light KDF keeps `oracle run` quick to start.
        key = accounts.test_accounts[UNIT].private_key
        data = Account.encrypt(key, PASSPHRASE, kdf="scrypt", iterations=2**10)
        fd = os.open(keystore, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(PASSPHRASE + "\n")
    # One simulated minute per second, so a few minutes show a morning of PV.
    sim = {"compression": 60.0, "seed": 7}
    meters = [
        {"name": "pv", "profile": "pv", "peak_w": 4000.0},
        {"name": "house", "profile": "household", "peak_w": 3000.0},
        {"name": "battery", "profile": "battery", "peak_w": 3000.0, "capacity_wh": 13_500},
    ]
    data = {
        "service": {
            "state_dir": "state",
            "period_s": 5.0,
            "http_enabled": True,
            "http_host": "127.0.0.1",
            "http_port": 9108,
            "log_level": "INFO",
            "log_format": "text",
        },
        "chain": {
            "rpc_url": rpc,
            "chain_id": ANVIL_CHAIN_ID,
            "deployments_dir": str(deployments.resolve()),
            "keystore": keystore.name,
            "passphrase_file": secret.name,
            # Anvil mines each transaction at once and never reorganises.
            "confirmations": 0,
        },
        "meters": [
            {
                "name": m["name"],
                "driver": "simulated",
                "rated_power_w": 1.2 * m["peak_w"] + 500,
                "options": {k: v for k, v in m.items() if k != "name"} | sim,
            }
            for m in meters
        ],
        "channels": [
            {"meter": "pv", "counter": "export", "kind": "produced", "account": addresses["pv"]},
            {
                "meter": "house",
                "counter": "import",
                "kind": "consumed",
                "account": addresses["house"],
            },
            {"meter": "battery", "counter": "stored", "kind": "actual", "min_interval_s": 900.0},
        ],
    }
    path = base / "oracle.toml"
    path.write_text(
        "# Written by `make deploy-local`: the local chain's storage unit with simulated\n"
        "# meters (account 6 of Anvil's development mnemonic; never use it elsewhere).\n"
        + to_toml(data)
    )
    load_config(path)  # what `oracle run` will read: it must validate
    return path


@click.command(cls=ConnectedProviderCommand, short_help="Deploy on the local chain", help=HELP)
@click.option(
    "--local-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=LOCAL_DIR,
    show_default=True,
    help="Where the oracle's files go.",
)
@out_dir_option
def cli(network, local_dir, out_dir):
    try:
        _deploy_local(local_dir, out_dir)
    except ApeException as exc:
        # A refused transaction, a node that went away: one line, no traceback.
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def _deploy_local(local_dir: Path, out_dir: Path) -> None:
    if chain.chain_id != ANVIL_CHAIN_ID:
        raise click.ClickException(
            f"chain {chain.chain_id} is not the local Anvil ({ANVIL_CHAIN_ID}): deploy_local "
            "uses Anvil's public development keys; use `ape run deploy` for a real network"
        )
    test = accounts.test_accounts
    deployer, owner, unit = test[DEPLOYER], test[OWNER], test[UNIT]
    provider = chain.provider
    rpc = getattr(provider, "uri", None) or "http://127.0.0.1:8545"
    deployment = _deployed(out_dir)
    if deployment is None:
        protocol = deploy_protocol(deployer)
        deploy_bridge(protocol)
        choice = f"{provider.network.ecosystem.name}:{provider.network.name}:{provider.name}"
        written = write_bridged(
            protocol.to_deployment(choice), bridge_section(None, None, None, None), out_dir,
            force=True, backup=True,
        )  # fmt: skip
        logger.success(f"Deployed {len(protocol.contracts)} contracts; wrote {written}")
        deployment = load_deployment(out_dir, chain.chain_id)
    else:
        logger.success(f"Reusing the deployment of {deployment_path(out_dir, chain.chain_id)}")
    council = project.Council.at(deployment.contract("Council").address)
    ledger = project.EnergyLedger.at(deployment.contract("EnergyLedger").address)
    if not ledger.unit_info(unit.address).active:
        data = encode_call(ledger, "register_storage_unit", unit.address, owner.address)
        pass_vote(council, ledger, data, [deployer])
        logger.success(f"Council registered storage unit {unit.address} (owner {owner.address})")
    else:
        logger.success(f"Storage unit {unit.address} is registered")
    config = oracle_config(
        local_dir, rpc, out_dir, {"pv": test[PRODUCER].address, "house": test[CONSUMER].address}
    )
    logger.success(f"Wrote {config}")
    rel = os.path.relpath(config, Path.cwd())
    keys = "~/.ape/accounts/<alias>.json"
    click.echo(
        "\n".join(
            [
                "",
                f"Local chain {chain.chain_id} at {rpc}, PowerHive in "
                f"{deployment_path(out_dir, chain.chain_id)}. Next:",
                f"  oracle check --config {rel}      # every check ok",
                f"  oracle run --config {rel}        # simulated meters -> the ledger",
                f"  oracle status --config {rel}     # outbox, last report, over-consumption",
                "  curl -s localhost:9108/metrics | grep ^oracle_",
                f"  export POWERHIVE_RPC={rpc} POWERHIVE_CHAIN_ID={chain.chain_id}",
                f"  powerhive ballots      # the Council (voter: account 0; import it as {keys}"
                " with `ape accounts import`, then --keystore)",
                "  make stop-local        # stop the chain; `make deploy-local` resumes it",
            ]
        )
    )
