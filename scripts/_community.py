"""The community part of `ape run demo`: voters, storage units, production, sessions, a
battery loss and the recovery of the imbalance, tabulated after every step."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from scripts._protocol import Protocol, governed

WH = 10**15
KWH = 10**18


def run_community(protocol: Protocol, people: dict, csv_path: Path, console: Console):
    """people: deployer, voter2, voter3, unit_a, unit_b, owner, producer, consumer."""
    council, ledger = protocol.Council, protocol.EnergyLedger
    p = people
    voters = [p["deployer"]]
    steps: list[dict] = []

    def snapshot(step: str):
        steps.append(
            {
                "step": step,
                "producer ENT": ledger.balanceOf(p["producer"]) / KWH,
                "consumer ENT": ledger.balanceOf(p["consumer"]) / KWH,
                "owner ENT": ledger.balanceOf(p["owner"]) / KWH,
                "escrow ENT": ledger.total_escrow() / KWH,
                "ENT supply": ledger.totalSupply() / KWH,
                "network kWh": ledger.network_energy_wh() / 1000,
                "D kWh": ledger.imbalance() / KWH,
                "R": ledger.cost() / 10**18,
            }
        )

    def seq(unit):
        return ledger.last_seq(unit) + 1

    governed(protocol, voters, council, "add_voter", p["voter2"])
    voters.append(p["voter2"])
    governed(protocol, voters, council, "add_voter", p["voter3"])
    voters.append(p["voter3"])
    for unit in (p["unit_a"], p["unit_b"]):
        governed(protocol, voters, ledger, "register_storage_unit", unit, p["owner"])
    # C = 0.2 by vote, so the demo's recovery is visible within a few kWh.
    prm = ledger.params()
    governed(
        protocol,
        voters,
        ledger,
        "set_parameters",
        prm.max_mint_cost,
        prm.max_burn_cost,
        2 * 10**17,
        prm.storage_fee,
        prm.session_lifetime,
    )
    snapshot("3 voters; units A and B voted in; C = 0.2 voted")

    ledger.energy_produced(p["producer"], 12_000, seq(p["unit_a"]), sender=p["unit_a"])
    ledger.energy_produced(p["producer"], 8_000, seq(p["unit_b"]), sender=p["unit_b"])
    snapshot("producer stores 12 kWh in A, 8 kWh in B")

    ledger.transfer(p["consumer"], 6 * KWH, sender=p["producer"])
    ledger.start_session(p["unit_a"], 3 * KWH, sender=p["consumer"])
    snapshot("consumer opens a 3 ENT session on A")
    ledger.energy_consumed(p["consumer"], 2_000, seq(p["unit_a"]), sender=p["unit_a"])
    snapshot("consumer uses 2 kWh")
    ledger.energy_consumed(p["consumer"], 1_000, seq(p["unit_a"]), sender=p["unit_a"])
    snapshot("consumer uses 1 kWh: reserve used up, session ends")

    ledger.report_actual_energy(7_500, seq(p["unit_b"]), sender=p["unit_b"])
    snapshot("battery B measures 7.5 kWh: 0.5 kWh lost")

    for i in range(4):
        ledger.energy_produced(p["producer"], 2_000, seq(p["unit_b"]), sender=p["unit_b"])
        snapshot(f"recovery: producer stores 2 kWh in B ({i + 1})")

    ledger.start_session(p["unit_b"], 2 * KWH, sender=p["consumer"])
    ledger.energy_consumed(p["consumer"], 1_500, seq(p["unit_b"]), sender=p["unit_b"])
    snapshot("consumer uses 1.5 kWh from B at the recovered rate")

    frame = pd.DataFrame(steps)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(csv_path, index=False)
    table = Table(title="Community: balances, network energy, imbalance D and cost R per step")
    for col in frame.columns:
        table.add_column(col, justify="left" if col == "step" else "right")
    for _, r in frame.iterrows():
        table.add_row(
            r["step"],
            *(f"{r[c]:,.4f}" if c != "R" else f"{r[c]:.4f}" for c in frame.columns[1:]),
        )
    console.print(table)
    console.print(f"saved {csv_path}")
    return frame
