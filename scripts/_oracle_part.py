"""The oracle part of `ape run demo`: a third storage unit voted in, two households with
sessions, and the oracle service (simulated meters, a compressed day) reporting for it."""

from __future__ import annotations

from pathlib import Path

from ape import chain
from rich.console import Console

from scripts._oracle_demo import run_oracle_demo
from scripts._protocol import Protocol, governed, save_protocol

KWH = 10**18


def run_oracle_part(protocol: Protocol, voters, people: dict, out_dir: Path, console: Console):
    """people: unit, owner, producer, households (label -> account), funder (holds ENT)."""
    ledger = protocol.EnergyLedger
    unit = people["unit"]
    governed(protocol, voters, ledger, "register_storage_unit", unit, people["owner"])
    # Seed the battery so the households' sessions have energy to reserve.
    ledger.energy_produced(people["producer"], 20_000, ledger.last_seq(unit) + 1, sender=unit)
    for account in people["households"].values():
        ledger.transfer(account, 8 * KWH, sender=people["funder"])
        ledger.start_session(unit, 8 * KWH, sender=account)

    deployment_dir = out_dir / "deployments"
    save_protocol(protocol, "ethereum:local:foundry", force=True, directory=deployment_dir)
    console.rule("Oracle: one compressed day of simulated meters on storage unit C")
    result = run_oracle_demo(
        rpc_url=chain.provider.uri,
        deployment_dir=deployment_dir,
        unit=unit.private_key,
        producers={"pv": people["producer"].address},
        consumers={k: v.address for k, v in people["households"].items()},
        duration_s=20.0,
        compression=4320.0,  # a day in 20 s
        state_dir=out_dir / "oracle-state",
        console=console,
    )
    verdict = "equal to the Wh" if result.match else "DIFFERENT"
    console.print(f"on-chain energy vs meters: {verdict}")
    return result
