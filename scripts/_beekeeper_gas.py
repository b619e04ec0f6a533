"""Gas rows of the Beekeeper (SPEC §7) for `ape run gas_report`: full-transaction gas
(`receipt.gas_used`) of every hive operation through the ERC-1967 proxy, the hive-owner vote
at 3 and 100 owners (also with ten other ballots open, and on an older ballot after the voter
restaked), and the proxy's own overhead per call."""

from __future__ import annotations

from ape import chain, project

from scripts._beekeeper import HIVE_COST, METER_COST, deploy_beekeeper
from scripts._gas import GasRow, row

SECTION = "Beekeeper (through the ERC-1967 proxy)"
FULL_WEIGHT_AGE = 180 * 86400


def _world(governance, treasury, owners, meters_per_owner: int):
    """HVT, eEuro listed, a Beekeeper governed by `governance` (an account standing in for
    the Council, so that `add_meter` is measured on its own), meters certified per owner."""
    hvt = governance.deploy(project.HiveToken, treasury)
    ent = governance.deploy(project.EnergyLedger, governance)
    eeuro = governance.deploy(project.EEuro, governance)
    keeper = deploy_beekeeper(governance, governance, hvt, ent)
    bk = keeper.beekeeper
    bk.add_stablecoin(eeuro, "EUR", sender=governance)
    meters = {}
    for k, owner in enumerate(owners):
        hvt.transfer(owner, 10_000 * 10**18, sender=treasury)
        hvt.approve(bk, 2**256 - 1, sender=owner)
        meters[owner] = [_meter(k, j) for j in range(meters_per_owner)]
    return keeper, hvt, eeuro, meters


def _meter(k: int, j: int) -> str:
    """A meter address (meters are accounts of Raspberry Pis; any address will do here)."""
    return "0x" + f"{0xBEE0000 + k * 1000 + j:040x}"


def measure_beekeeper(governance, treasury, alice, bob, voters: list) -> list[GasRow]:
    keeper, hvt, eeuro, meters = _world(governance, treasury, [alice, bob], 12)
    bk = keeper.beekeeper
    rows = []
    first = True
    for owner in (alice, bob):
        for m in meters[owner]:
            receipt = bk.add_meter(m, owner, "PH-2026-000123", "Hive Power Pi", sender=governance)
            if first:
                rows.append(
                    row(
                        SECTION,
                        "add_meter (by governance; 14-byte serial and manufacturer)",
                        receipt,
                        90_000,
                        note="strings in the event, their hash in storage",
                    )
                )
                first = False
    a = meters[alice]
    # Alice's first hive pays for her owner record; her second is the steady state.
    bk.create_hive(eeuro, [a[0]], sender=alice)
    one = bk.create_hive(eeuro, [a[1]], sender=alice)
    rows.append(
        row(
            SECTION,
            "create_hive with 1 meter",
            one,
            160_000,
            note="owner's second hive (the first also creates the owner record)",
        )
    )
    eight = bk.create_hive(eeuro, a[2:10], sender=alice)
    extra = (eight.gas_used - one.gas_used) // 7
    rows.append(
        GasRow(SECTION, "create_hive: each extra meter ((8 meters - 1 meter) / 7)", extra, 30_000)
    )
    rows.append(
        row(
            SECTION,
            "add_meter_to_hive",
            bk.add_meter_to_hive(2, a[10], sender=alice),
            75_000,
            note="unreachable as designed: 21,000 base + 22,100 new meter slot + ~22,400 HVT "
            "transferFrom and burn (cold token, allowance, two balances, supply, two Transfer) "
            "+ 5,761 proxy + 5,000 meter word = ~76,300 before the hive, coin, price, owner "
            "and total-stake words (~22,000)",
        )
    )
    rows.append(
        row(
            SECTION,
            "drop_meter_from_hive (a middle meter: the last one moves)",
            bk.drop_meter_from_hive(3, a[3], sender=alice),
            55_000,
        )
    )
    rows.append(
        row(
            SECTION,
            "drop_meter_from_hive (the last meter of the list)",
            bk.drop_meter_from_hive(2, a[10], sender=alice),
            55_000,
            note="unreachable as designed: 21,000 base + ~14,300 HVT transfer + 5,761 proxy "
            "+ 5,000 each for the meter, owner-stake and total-stake words = ~56,000 before "
            "the hive's two words and its slot",
        )
    )
    rows.append(
        row(
            SECTION,
            "split_hive moving 3 of 7 meters",
            bk.split_hive(3, [a[4], a[5], a[6]], sender=alice),
        )
    )
    rows.append(row(SECTION, "merge_hives (4 meters into 1)", bk.merge_hives(2, 3, sender=alice)))
    rows.append(row(SECTION, "freeze_hive with 5 meters", bk.freeze_hive(2, sender=alice)))
    rows.append(
        row(SECTION, "change_meter_status", bk.change_meter_status(meters[bob][0], 2, sender=bob))
    )
    rows += _proxy_overhead(keeper, bob)
    for n in (3, 100):
        rows += _vote_rows(governance, treasury, voters[:n])
    return rows


def _proxy_overhead(keeper, sender) -> list[GasRow]:
    """The same call, sent as a transaction to the proxy and to the implementation: the
    difference is the proxy's part (cold implementation slot and address, delegatecall,
    copies of calldata and return data)."""
    via_proxy = keeper.beekeeper.hive_count.transact(sender=sender)
    direct = keeper.implementation.hive_count.transact(sender=sender)
    return [
        GasRow(
            SECTION,
            "proxy overhead per call (hive_count via proxy - direct)",
            via_proxy.gas_used - direct.gas_used,
            3_500,
            note=f"{via_proxy.gas_used:,} - {direct.gas_used:,}. Unreachable in any language: "
            "EIP-2929 charges 2,100 (cold SLOAD of the ERC-1967 slot) + 2,600 (DELEGATECALL to "
            "a cold implementation) = 4,700 > 3,500; the rest (~1,060) is Vyper's raw_call "
            "reserving its 8 KiB return buffer at the call (memory to 8,288 bytes: ~910) "
            "and copying the return data",
        )
    ]


def _vote_rows(governance, treasury, owners) -> list[GasRow]:
    keeper, hvt, eeuro, meters = _world(governance, treasury, owners, 1)
    bk = keeper.beekeeper
    for owner in owners:
        bk.add_meter(meters[owner][0], owner, "S", "M", sender=governance)
        bk.create_hive(eeuro, meters[owner], sender=owner)
    chain.pending_timestamp = chain.pending_timestamp + FULL_WEIGHT_AGE
    chain.mine()
    v2 = governance.deploy(project.BeekeeperV2)
    n = len(owners)
    proposed = bk.propose_upgrade(v2, sender=owners[0])
    ballot = proposed.return_value
    rows = [
        row(
            SECTION,
            f"propose_upgrade (opens a ballot with the proposer's YES; {n} owners)",
            proposed,
        ),
        row(
            SECTION,
            f"hive-owner vote, NO ({n} owners)",
            bk.vote(ballot, False, sender=owners[1]),
            60_000,
        ),
    ]
    passing = None
    yes_row = False
    for owner in owners[2:]:
        receipt = bk.vote(ballot, True, sender=owner)
        if receipt.return_value:
            passing = receipt
            break
        if not yes_row:
            yes_row = True
            rows.append(row(SECTION, f"hive-owner vote, YES ({n} owners)", receipt, 60_000))
    if passing is not None:
        rows.append(
            row(
                SECTION,
                f"hive-owner vote that passes and upgrades ({n} owners)",
                passing,
                note="includes the ERC-1967 slot write and Upgraded",
            )
        )
    if n >= 20:
        rows += _many_ballots_rows(bk, hvt, eeuro, owners, governance, n)
    return rows


def _many_ballots_rows(bk, hvt, eeuro, owners, governance, n) -> list[GasRow]:
    """Ten ballots open at once (issue 11): a vote costs the same whichever it goes to; on
    an older ballot after the voter restaked across a newer one it reads one more word."""
    v2 = bk.implementation()
    opened = [bk.propose_upgrade(v2, sender=owners[10 + i]).return_value for i in range(10)]
    voter = owners[30]
    rows = [
        row(
            SECTION,
            f"hive-owner vote, YES, with 10 other ballots open ({n} owners)",
            bk.vote(opened[-1], True, sender=voter),
            60_000,
        )
    ]
    restaker = owners[31]
    meter = "0x" + f"{0xBEEF000:040x}"
    bk.add_meter(meter, restaker, "S", "M", sender=governance)
    rows.append(
        row(
            SECTION,
            "add_meter_to_hive, the owner's first stake change since a ballot opened",
            bk.add_meter_to_hive(32, meter, sender=restaker),  # owners[31] created hive 32
            75_000,
            note="also keeps the owner's state at the ballot's start (their snapshot word "
            "goes 0 -> non-zero: 22,100; 5,000 once it exists)",
        )
    )
    rows.append(
        row(
            SECTION,
            f"hive-owner vote on an older ballot after restaking across a newer one ({n} owners)",
            bk.vote(opened[0], True, sender=restaker),
            60_000,
            note="power from the owner's snapshot word (one more cold read)",
        )
    )
    return rows


__all__ = ["HIVE_COST", "METER_COST", "measure_beekeeper"]
