"""Hive-owner governance of the Beekeeper (SPEC §7): power = stake weighted by staking age
(full after 180 days, fresh stake zero), read at the ballot's start; a passed ballot is the
only way to upgrade the proxy, and the upgrade keeps every record; a ballot whose
implementation vanished closes failed. Also: each version's storage layout is a prefix of
the next. Liveness with many open ballots: tests/unit/test_beekeeper_liveness.py (boa)."""

import json
import subprocess
import sys
from pathlib import Path

import ape
import pytest

from scripts._beekeeper import deploy_beekeeper
from tests.beekeeper_helpers import (
    BALLOT_FAILED,
    BALLOT_OPEN,
    BALLOT_PASSED,
    BALLOT_REJECTED,
    FULL_WEIGHT_AGE,
    HIVE_COST,
    HVT,
    METER_COST,
    VOTING_PERIOD,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def owners(accounts):
    return [accounts[30 + i] for i in range(3)]


@pytest.fixture(scope="module")
def world(project, deployer, treasury, owners, accounts):
    hvt = deployer.deploy(project.HiveToken, treasury)
    ent = deployer.deploy(project.EnergyLedger, deployer)
    eeuro = deployer.deploy(project.EEuro, deployer)
    d = deploy_beekeeper(deployer, deployer, hvt, ent)
    bk = d.beekeeper
    bk.add_stablecoin(eeuro, "EUR", sender=deployer)
    meters = [accounts[40 + i] for i in range(8)]
    for i, m in enumerate(meters):
        bk.add_meter(m, owners[i % 3], f"SN-{i}", "Acme", sender=deployer)
    for o in owners:
        hvt.transfer(o, 10_000 * HVT, sender=treasury)
        hvt.approve(bk, 2**256 - 1, sender=o)
    v2 = deployer.deploy(project.BeekeeperV2)
    # Stakes 600, 550, 550 HVT: no owner alone holds a majority. owners[2]'s hive is the last
    # block (test_fresh_stake_has_no_power reads the head as the block that staked it).
    bk.create_hive(eeuro, [meters[0], meters[3]], sender=owners[0])
    bk.create_hive(eeuro, [meters[1]], sender=owners[1])
    bk.create_hive(eeuro, [meters[2]], sender=owners[2])
    return d, hvt, eeuro, meters, v2


def warp(seconds):
    ape.chain.pending_timestamp = ape.chain.pending_timestamp + seconds
    ape.chain.mine()


def test_fresh_stake_has_no_power(world, owners, attacker):
    d, _, _, _, v2 = world
    bk = d.beekeeper
    # In the block that staked it, the stake weighs exactly zero (a flash loan gains nothing);
    # afterwards it grows by stake / 180 days per second.
    block = ape.chain.blocks.head
    stake, start = bk.owner_stake(owners[2])
    assert start == block.timestamp
    assert bk.voting_power(owners[2], block_id=block.number) == 0
    ape.chain.mine()
    t = ape.chain.blocks.head.timestamp
    assert bk.voting_power(owners[2]) == stake * (t - start) // FULL_WEIGHT_AGE
    with ape.reverts("beekeeper: no voting power"):
        bk.propose_upgrade(v2, sender=attacker)


def test_power_grows_with_age_and_caps_at_the_stake(world, owners):
    bk = world[0].beekeeper
    stake, start = bk.owner_stake(owners[0])
    assert stake == (HIVE_COST + 2 * METER_COST) // 2
    warp(FULL_WEIGHT_AGE // 2)
    t = ape.chain.blocks.head.timestamp
    assert bk.voting_power(owners[0]) == stake * (t - start) // FULL_WEIGHT_AGE
    warp(FULL_WEIGHT_AGE)
    assert bk.voting_power(owners[0]) == stake


def test_new_stake_moves_the_weighted_start(world, owners):
    d, _, _, meters, _ = world
    bk = d.beekeeper
    warp(FULL_WEIGHT_AGE + 86400)
    stake, start = bk.owner_stake(owners[1])
    bk.add_meter_to_hive(2, meters[4], sender=owners[1])
    now = ape.chain.blocks.head.timestamp
    add = METER_COST // 2
    # The old start counts at most FULL_WEIGHT_AGE ago (the fresh amount weighs zero).
    capped = max(start, now - FULL_WEIGHT_AGE)
    assert capped > start
    want = -(-(stake * capped + add * now) // (stake + add))
    assert bk.owner_stake(owners[1]) == (stake + add, want)
    # Dropping a meter returns stake but keeps the age of the rest.
    bk.drop_meter_from_hive(2, meters[4], sender=owners[1])
    assert bk.owner_stake(owners[1]) == (stake, want)


def test_upgrade_vote_passes_and_keeps_every_record(project, world, owners, deployer, attacker):
    d, hvt, eeuro, meters, v2 = world
    bk = d.beekeeper
    warp(FULL_WEIGHT_AGE)
    stakes = [bk.owner_stake(o) for o in owners]
    total = bk.total_staked()
    assert total == sum(s for s, _ in stakes) == hvt.balanceOf(bk)

    tx = bk.propose_upgrade(v2, sender=owners[0])
    start = ape.chain.blocks.head.timestamp
    p0 = stakes[0][0]
    assert tx.events == [
        bk.UpgradeProposed(
            ballot=1,
            implementation=v2,
            proposer=owners[0],
            end=start + VOTING_PERIOD,
            total_stake=total,
        ),
        bk.Voted(ballot=1, voter=owners[0], support=True, power=p0),
    ]
    assert bk.ballot_info(1) == (
        v2.address,
        start,
        start + VOTING_PERIOD,
        BALLOT_OPEN,
        total,
        p0,
        0,
    )
    with ape.reverts("beekeeper: already voted"):
        bk.vote(1, True, sender=owners[0])
    for who in (attacker, deployer):
        with ape.reverts("beekeeper: no voting power"):
            bk.vote(1, True, sender=who)
    with ape.reverts("beekeeper: unknown ballot"):
        bk.vote(2, True, sender=owners[1])
    # Staking after the ballot opened changes nothing: power is read at the start.
    p1 = bk.power_at(owners[1], 1)
    bk.add_meter_to_hive(2, meters[4], sender=owners[1])
    assert bk.power_at(owners[1], 1) == p1
    assert bk.voting_power(owners[1]) < p1 + METER_COST // 2
    # Every record, just before the upgrade.
    hives = [bk.hive_info(i) for i in range(1, 4)]
    hive_meters = [bk.hive_meters(i) for i in range(1, 4)]
    meter_infos = [bk.meter_info(m) for m in meters]
    stakes = [bk.owner_stake(o) for o in owners]
    coin = bk.stablecoin_info(eeuro)
    # Nothing but the vote changes the implementation.
    tx = bk.vote(1, True, sender=owners[1])
    assert tx.return_value is True
    assert tx.events == [
        bk.Voted(ballot=1, voter=owners[1], support=True, power=p1),
        bk.BallotPassed(ballot=1, implementation=v2),
        bk.Upgraded(implementation=v2),
    ]
    assert bk.implementation() == v2.address
    assert bk.ballot_info(1).status == BALLOT_PASSED
    with ape.reverts("beekeeper: ballot closed"):
        bk.vote(1, True, sender=owners[2])

    new = project.BeekeeperV2.at(bk.address)
    assert new.version() == 2
    assert [new.hive_info(i) for i in range(1, 4)] == hives
    assert [new.hive_meters(i) for i in range(1, 4)] == hive_meters
    assert [new.meter_info(m) for m in meters] == meter_infos
    assert new.stablecoin_info(eeuro) == coin
    assert [new.owner_stake(o) for o in owners] == stakes
    assert new.ballot_info(1).status == BALLOT_PASSED
    assert new.governance() == deployer.address
    assert new.total_staked() == hvt.balanceOf(bk)
    # The new field works and the old functions still do.
    tx = new.set_hive_note(1, "north roof", sender=owners[0])
    assert new.hive_note(1) == "north roof"
    new.drop_meter_from_hive(1, meters[3], sender=owners[0])
    assert new.total_staked() == hvt.balanceOf(bk)


def test_ballot_rejected_by_a_no_majority_and_expiry(world, owners):
    d, _, _, _, v2 = world
    bk = d.beekeeper
    warp(FULL_WEIGHT_AGE)
    bk.propose_upgrade(v2, sender=owners[0])
    bk.vote(1, False, sender=owners[1])
    tx = bk.vote(1, False, sender=owners[2])
    assert tx.return_value is False
    assert tx.events[-1] == bk.BallotRejected(ballot=1)
    assert bk.ballot_info(1).status == BALLOT_REJECTED
    assert bk.implementation() == d.implementation.address
    # A new ballot can open at once; undecided, it expires after the voting period.
    bk.propose_upgrade(v2, sender=owners[1])
    warp(VOTING_PERIOD)
    with ape.reverts("beekeeper: ballot expired"):
        bk.vote(2, True, sender=owners[0])
    assert bk.propose_upgrade(v2, sender=owners[2]).return_value == 3


def test_upgrade_only_to_a_contract(world, owners, attacker):
    bk = world[0].beekeeper
    with ape.reverts("beekeeper: implementation not a contract"):
        bk.propose_upgrade(attacker, sender=owners[0])


def test_a_ballot_whose_implementation_vanished_closes_failed(
    project, world, owners, deployer, treasury, accounts
):
    """An implementation created and destroyed in the proposal's transaction (EIP-6780):
    the deciding YES closes the ballot failed instead of reverting, nothing upgrades, and a
    valid ballot passes right after."""
    d, hvt, eeuro, _, v2 = world
    bk = d.beekeeper
    proposer = deployer.deploy(project.VanishingProposer)
    meter = accounts[60]
    bk.add_meter(meter, proposer, "SN-V", "Acme", sender=deployer)
    hvt.transfer(proposer, 10_000 * HVT, sender=treasury)
    proposer.create_hive(bk, hvt, eeuro, meter, sender=deployer)
    warp(FULL_WEIGHT_AGE)
    tx = proposer.propose_vanishing(bk, sender=deployer)
    ballot, gone = tx.return_value
    assert ape.chain.provider.get_code(gone) == b""
    # Stakes 550 (proposer), 600, 550, 550: the proposer and owners[0] hold more than half.
    tx = bk.vote(ballot, True, sender=owners[0])  # on main: this vote reverted
    assert tx.return_value is False
    assert tx.events == [
        bk.Voted(
            ballot=ballot, voter=owners[0], support=True, power=bk.power_at(owners[0], ballot)
        ),
        bk.BallotFailed(ballot=ballot, implementation=gone),
    ]
    assert bk.ballot_info(ballot).status == BALLOT_FAILED
    assert bk.implementation() == d.implementation.address
    with ape.reverts("beekeeper: ballot closed"):
        bk.vote(ballot, True, sender=owners[1])
    nxt = bk.propose_upgrade(v2, sender=owners[1]).return_value
    assert bk.vote(nxt, True, sender=owners[2]).return_value is False  # 1,100 of 2,250
    assert bk.vote(nxt, True, sender=owners[0]).return_value is True
    assert bk.implementation() == v2.address


LAYOUT = """
import json, sys
from vyper.compiler import compile_from_file_input
from vyper.compiler.input_bundle import FilesystemInputBundle
from vyper.compiler.settings import Settings
import site, pathlib
paths = [pathlib.Path("contracts").resolve(), pathlib.Path(".").resolve()]
paths += [pathlib.Path(p) for p in site.getsitepackages()]
bundle = FilesystemInputBundle(paths)
out = {}
for name in sys.argv[1:]:
    fi = bundle.load_file(pathlib.Path(name).resolve())
    res = compile_from_file_input(fi, input_bundle=bundle, output_formats=["layout"],
        settings=Settings(evm_version="cancun"))
    out[name] = res["layout"]["storage_layout"]
print(json.dumps(out))
"""


def flatten(layout, prefix=""):
    """(name, slot, type) per variable, in slot order; names without the `beekeeper.`
    module prefix (the proxy initializes `erc1967` itself, the implementations through
    `beekeeper`)."""
    rows = []
    for name, item in layout.items():
        if "slot" in item and "type" in item:
            rows.append((prefix + name, item["slot"], item["type"]))
        else:
            rows += flatten(item, "" if name == "beekeeper" and not prefix else prefix + name + ".")
    return sorted(rows, key=lambda r: r[1])


def test_each_storage_layout_is_a_prefix_of_the_next():
    versions = [
        "contracts/BeekeeperProxy.vy",
        "contracts/Beekeeper.vy",
        "contracts/mocks/BeekeeperV2.vy",
    ]
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", LAYOUT, *versions],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    layouts = [flatten(json.loads(out.stdout)[v]) for v in versions]
    for older, newer in zip(layouts, layouts[1:], strict=False):
        assert newer[: len(older)] == older
        assert len(newer) > len(older)
    # The implementation address sits at the ERC-1967 slot in every version.
    slot = int("360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc", 16)
    for layout in layouts:
        assert ("erc1967.implementation", slot, "address") in layout
