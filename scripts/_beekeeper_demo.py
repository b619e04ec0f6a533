"""The Beekeeper part of `ape run demo` (SPEC §7): two hive owners create hives, add and drop
meters, split and merge, then vote an upgrade through; HVT supply, burned and staked after
every step. Not an `ape run` entry point."""

from __future__ import annotations

from ape import chain, project
from rich.console import Console
from rich.table import Table

from scripts._protocol import Protocol, governed

HVT = 10**18
INITIAL_SUPPLY = 100_000_000 * HVT
FULL_WEIGHT_AGE = 180 * 86400


def _hvt(amount: int) -> str:
    return f"{amount / HVT:,.0f}"


def run_beekeeper_demo(protocol: Protocol, voters, people: dict, console: Console) -> None:
    """`people`: "treasury", "alice", "bob" (hive owners) and "meters" (five accounts)."""
    console.rule("Beekeeper: hives on HVT burn-and-stake, upgrades by hive-owner vote")
    bk, hvt, eeuro = protocol.Beekeeper, protocol.HiveToken, protocol.EEuro
    alice, bob, m = people["alice"], people["bob"], people["meters"]
    table = Table(title="HVT after each Beekeeper step")
    for col in ("step", "supply", "burned", "staked", "alice's power", "bob's power"):
        table.add_column(col, justify="left" if col == "step" else "right")

    def step(label: str) -> None:
        supply = hvt.totalSupply()
        staked = hvt.balanceOf(bk)
        assert staked == bk.total_staked()
        table.add_row(
            label,
            _hvt(supply),
            _hvt(INITIAL_SUPPLY - supply),
            _hvt(staked),
            _hvt(bk.voting_power(alice)),
            _hvt(bk.voting_power(bob)),
        )

    for owner in (alice, bob):
        hvt.transfer(owner, 5_000 * HVT, sender=people["treasury"])
        hvt.approve(bk, 2**256 - 1, sender=owner)
    step("start: alice and bob hold 5,000 HVT each")
    for i, meter in enumerate(m):
        owner = alice if i < 3 else bob
        governed(protocol, voters, bk, "add_meter", meter, owner, f"PH-{i:04d}", "Hive Power Pi")
    step("Council certified 5 meters (3 alice, 2 bob)")
    bk.create_hive(eeuro, [m[0], m[1]], sender=alice)
    step("alice: hive 1 with 2 meters (1,200 HVT: half burned, half staked)")
    bk.create_hive(eeuro, [m[3]], sender=bob)
    step("bob: hive 2 with 1 meter (1,100 HVT)")
    bk.add_meter_to_hive(1, m[2], sender=alice)
    step("alice: meter 3 added to hive 1 (100 HVT)")
    bk.add_meter_to_hive(2, m[4], sender=bob)
    step("bob: meter 5 added to hive 2")
    bk.drop_meter_from_hive(2, m[4], sender=bob)
    step("bob: meter 5 dropped (its 50 staked HVT returned)")
    bk.split_hive(1, [m[2]], sender=alice)
    step("alice: hive 1 split, meter 3 into hive 3 (no HVT moves)")
    bk.merge_hives(1, 3, sender=alice)
    step("alice: hive 3 merged back into hive 1")
    bk.create_hive(eeuro, [m[4]], sender=bob)
    step("bob: hive 4 with meter 5 (1,100 HVT)")

    chain.pending_timestamp = chain.pending_timestamp + FULL_WEIGHT_AGE
    chain.mine()
    step("180 days later: every stake at full weight")
    v2 = people["treasury"].deploy(project.BeekeeperV2)
    junk = bk.propose_upgrade(eeuro, sender=alice).return_value
    info = bk.ballot_info(junk)
    step(
        f"alice opens ballot {junk} for a useless implementation (the eEuro contract): "
        f"YES {_hvt(info.yes)} of {_hvt(info.total_stake)}, open; it blocks nothing"
    )
    ballot = bk.propose_upgrade(v2, sender=alice).return_value
    info = bk.ballot_info(ballot)
    step(
        f"alice proposes upgrade ballot {ballot}: YES {_hvt(info.yes)} of {_hvt(info.total_stake)}"
    )
    if bk.implementation() != v2.address:
        bk.vote(ballot, True, sender=bob)
        step("bob votes YES: more than half the stake, the proxy upgrades")
    assert bk.implementation() == v2.address
    assert bk.ballot_info(junk).status == 1  # still open, powerless, until it expires
    console.print(table)

    hives = Table(title=f"Hives after the upgrade (implementation {bk.implementation()})")
    for col in ("hive", "owner", "status", "meters", "staked HVT"):
        hives.add_column(col)
    names = {alice.address: "alice", bob.address: "bob"}
    for hive_id in range(1, bk.hive_count() + 1):
        h = bk.hive_info(hive_id)
        status = {1: "active", 2: "frozen"}[h.status]
        hives.add_row(str(hive_id), names[h.owner], status, str(h.meter_count), _hvt(h.staked))
    console.print(hives)
    held, owed = (
        hvt.balanceOf(bk),
        sum(bk.hive_info(i).staked for i in range(1, bk.hive_count() + 1)),
    )
    console.print(
        f"Beekeeper holds {_hvt(held)} HVT = staked in hives {_hvt(owed)}: {held == owed}"
    )
