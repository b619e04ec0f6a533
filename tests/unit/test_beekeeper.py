"""The Beekeeper (SPEC §7) behind its ERC-1967 proxy: meters, stablecoins, order books and
hives on HVT burn-and-stake. Every call goes through the proxy. Governance is an account
standing in for the Council here (the Council path is in tests/e2e and the demo)."""

import ape
import pytest

from scripts._beekeeper import deploy_beekeeper
from scripts._orderbook import ENT_LOT, ENT_MIN_SIZE, ENT_TICK
from tests.beekeeper_helpers import (
    COIN_FROZEN,
    COIN_LISTED,
    HIVE_ACTIVE,
    HIVE_COST,
    HIVE_FROZEN,
    HVT,
    METER_ACTIVE,
    METER_COST,
    METER_INACTIVE,
)
from tests.conftest import ZERO

SUPPLY = 100_000_000 * HVT
FUNDS = 10_000 * HVT


@pytest.fixture(scope="module")
def governance(deployer):
    return deployer


@pytest.fixture(scope="module")
def meters(accounts):
    """Meter accounts: 0-5 belong to alice, 6-8 to bob, 9 is never certified."""
    return [accounts[20 + i] for i in range(10)]


@pytest.fixture(scope="module")
def world(project, governance, treasury, alice, bob, meters):
    hvt = governance.deploy(project.HiveToken, treasury)
    ent = governance.deploy(project.EnergyLedger, governance)
    eeuro = governance.deploy(project.EEuro, governance)
    coin2 = governance.deploy(project.MockToken, "USD", 6)
    d = deploy_beekeeper(governance, governance, hvt, ent)
    bk = d.beekeeper
    bk.add_stablecoin(eeuro, "EUR", sender=governance)
    bk.add_stablecoin(coin2, "USD", sender=governance)
    for i, m in enumerate(meters[:9]):
        bk.add_meter(m, alice if i < 6 else bob, f"SN-{i}", "Acme", sender=governance)
    for who in (alice, bob):
        hvt.transfer(who, FUNDS, sender=treasury)
        hvt.approve(bk, 2**256 - 1, sender=who)
    return d, hvt, ent, eeuro, coin2


@pytest.fixture(scope="module")
def bk(world):
    return world[0].beekeeper


@pytest.fixture(scope="module")
def hvt(world):
    return world[1]


@pytest.fixture(scope="module")
def eeuro(world):
    return world[3]


@pytest.fixture(scope="module")
def coin2(world):
    return world[4]


def info_hash(serial: str, manufacturer: str) -> bytes:
    from eth_utils import keccak

    return keccak(keccak(text=serial) + keccak(text=manufacturer))


def assert_conserved(bk, hvt, holders):
    """HVT: supply = 100M - burned and = sum of balances; the Beekeeper holds the stakes."""
    assert hvt.totalSupply() == sum(hvt.balanceOf(h) for h in holders)
    staked = sum(bk.hive_info(h).staked for h in range(1, bk.hive_count() + 1))
    assert hvt.balanceOf(bk) == staked == bk.total_staked()


# ---------------------------------------------------------------- setup and proxy


def test_initialized_through_the_proxy(world, governance, hvt):
    d, _, ent, _, _ = world
    bk = d.beekeeper
    assert bk.implementation() == d.implementation.address
    assert bk.governance() == governance.address
    assert (bk.hvt(), bk.ent(), bk.book_blueprint()) == (hvt.address, ent.address, d.book_blueprint)
    assert (bk.hive_cost(), bk.meter_cost()) == (HIVE_COST, METER_COST)
    receipt = ape.chain.get_receipt(d.proxy.txn_hash)
    assert [e.event_name for e in receipt.events] == ["Upgraded", "PricesSet", "Initialized"]
    with ape.reverts("beekeeper: already initialized"):
        bk.initialize(governance, hvt, ent, d.book_blueprint, 1, 1, sender=governance)
    # The bare implementation is locked: nobody initializes it for themselves.
    with ape.reverts("beekeeper: already initialized"):
        d.implementation.initialize(governance, hvt, ent, d.book_blueprint, 1, 1, sender=governance)


def test_proxy_rejects_a_non_contract_implementation(project, deployer, alice):
    with ape.reverts("proxy: implementation not a contract"):
        deployer.deploy(project.BeekeeperProxy, alice, b"")


def test_set_prices(bk, governance, alice, bob, attacker):
    tx = bk.set_prices(2_000 * HVT, 50 * HVT, sender=governance)
    assert tx.events == [bk.PricesSet(hive_cost=2_000 * HVT, meter_cost=50 * HVT)]
    for who in (alice, bob, attacker):
        with ape.reverts("beekeeper: not governance"):
            bk.set_prices(1, 1, sender=who)
    with ape.reverts("beekeeper: price too high"):
        bk.set_prices(10**27 + 1, 1, sender=governance)


# ---------------------------------------------------------------- meters


def test_add_meter(bk, governance, alice, bob, attacker, meters):
    m = meters[9]
    tx = bk.add_meter(m, bob, "SN-X", "Hive Labs", sender=governance)
    h = info_hash("SN-X", "Hive Labs")
    assert tx.events == [
        bk.MeterAdded(meter=m, owner=bob, serial="SN-X", manufacturer="Hive Labs", info_hash=h)
    ]
    assert bk.meter_info(m) == (bob.address, METER_ACTIVE, 0, h)
    with ape.reverts("beekeeper: meter exists"):
        bk.add_meter(m, alice, "a", "b", sender=governance)
    with ape.reverts("beekeeper: zero address"):
        bk.add_meter(ZERO, alice, "a", "b", sender=governance)
    with ape.reverts("beekeeper: zero address"):
        bk.add_meter(attacker, ZERO, "a", "b", sender=governance)
    for who in (alice, bob, attacker):
        with ape.reverts("beekeeper: not governance"):
            bk.add_meter(attacker, who, "a", "b", sender=who)


def test_change_meter_status(bk, alice, bob, attacker, governance, meters):
    m = meters[0]
    tx = bk.change_meter_status(m, METER_INACTIVE, sender=alice)
    assert tx.events == [bk.MeterStatusChanged(meter=m, status=METER_INACTIVE)]
    assert bk.meter_info(m).status == METER_INACTIVE
    # The entry is edited, never deleted: everything else stays.
    assert bk.meter_info(m).owner == alice.address
    assert bk.meter_info(m).info_hash == info_hash("SN-0", "Acme")
    for who in (bob, attacker, governance):
        with ape.reverts("beekeeper: not meter owner"):
            bk.change_meter_status(m, METER_ACTIVE, sender=who)
    with ape.reverts("beekeeper: bad status"):
        bk.change_meter_status(m, 3, sender=alice)
    with ape.reverts("beekeeper: unknown meter"):
        bk.change_meter_status(meters[9], METER_ACTIVE, sender=alice)
    bk.change_meter_status(m, METER_ACTIVE, sender=alice)
    assert bk.meter_info(m).status == METER_ACTIVE


# ---------------------------------------------------------------- stablecoins and books


def test_add_and_freeze_stablecoin(project, bk, governance, alice, attacker):
    coin = governance.deploy(project.MockToken, "CHF", 18)
    for who in (alice, attacker):
        with ape.reverts("beekeeper: not governance"):
            bk.add_stablecoin(coin, "CHF", sender=who)
    tx = bk.add_stablecoin(coin, "CHF", sender=governance)
    # The eligibility check's zero transfer to itself, then the listing.
    assert tx.events == [
        coin.Transfer(sender=bk, receiver=bk, value=0),
        bk.StablecoinAdded(token=coin, code="CHF", decimals=18),
    ]
    assert bk.stablecoin_info(coin) == (COIN_LISTED, 18, "CHF", ZERO)
    with ape.reverts("beekeeper: stablecoin exists"):
        bk.add_stablecoin(coin, "CHF", sender=governance)
    for who in (alice, attacker):
        with ape.reverts("beekeeper: not governance"):
            bk.freeze_stablecoin(coin, sender=who)
    tx = bk.freeze_stablecoin(coin, sender=governance)
    assert tx.events == [bk.StablecoinFrozen(token=coin)]
    assert bk.stablecoin_info(coin).status == COIN_FROZEN
    with ape.reverts("beekeeper: stablecoin frozen"):
        bk.freeze_stablecoin(coin, sender=governance)
    with ape.reverts("beekeeper: unknown stablecoin"):
        bk.freeze_stablecoin(attacker, sender=governance)


@pytest.mark.parametrize(
    "mode,reason",
    [
        (1, "beekeeper: decimals failed"),
        (2, "beekeeper: transfer failed"),
        (3, "beekeeper: balanceOf failed"),
        (4, "beekeeper: transfer misbehaves"),
    ],
)
def test_ineligible_stablecoin(project, bk, governance, mode, reason):
    coin = governance.deploy(project.BrokenCoin, mode)
    with ape.reverts(reason):
        bk.add_stablecoin(coin, "BAD", sender=governance)


def test_stablecoin_must_be_a_contract(bk, governance, attacker):
    with ape.reverts("beekeeper: stablecoin not a contract"):
        bk.add_stablecoin(attacker, "EOA", sender=governance)
    with ape.reverts("beekeeper: empty code"):
        bk.add_stablecoin(attacker, "", sender=governance)


def test_create_book(project, world, bk, governance, eeuro, alice, attacker):
    ent = world[2]
    for who in (alice, attacker):
        with ape.reverts("beekeeper: not governance"):
            bk.create_book(eeuro, ENT_TICK, ENT_LOT, ENT_MIN_SIZE, sender=who)
    tx = bk.create_book(eeuro, ENT_TICK, ENT_LOT, ENT_MIN_SIZE, sender=governance)
    book = project.OrderBook.at(bk.book_of(eeuro))
    assert tx.events[-1] == bk.BookCreated(stablecoin=eeuro, book=book)
    assert (book.BASE(), book.QUOTE(), book.owner()) == (
        ent.address,
        eeuro.address,
        governance.address,
    )
    assert bk.stablecoin_info(eeuro).book == book.address
    with ape.reverts("beekeeper: book exists"):
        bk.create_book(eeuro, ENT_TICK, ENT_LOT, ENT_MIN_SIZE, sender=governance)


def test_no_book_for_an_unlisted_or_frozen_coin(project, bk, governance, coin2):
    unlisted = governance.deploy(project.MockToken, "GBP", 6)
    with ape.reverts("beekeeper: unknown stablecoin"):
        bk.create_book(unlisted, ENT_TICK, ENT_LOT, ENT_MIN_SIZE, sender=governance)
    bk.freeze_stablecoin(coin2, sender=governance)
    with ape.reverts("beekeeper: stablecoin frozen"):
        bk.create_book(coin2, ENT_TICK, ENT_LOT, ENT_MIN_SIZE, sender=governance)


# ---------------------------------------------------------------- hives


def test_create_hive_burns_half_and_stakes_half(bk, hvt, eeuro, alice, treasury, bob, meters):
    paid = HIVE_COST + 2 * METER_COST
    tx = bk.create_hive(eeuro, [meters[0], meters[1]], sender=alice)
    assert tx.return_value == 1
    assert tx.events == [
        hvt.Transfer(sender=alice, receiver=bk, value=paid),
        hvt.Transfer(sender=bk, receiver=ZERO, value=paid // 2),
        bk.HiveCreated(
            hive=1,
            owner=alice,
            stablecoin=eeuro,
            meters=[meters[0], meters[1]],
            burned=paid // 2,
            staked=paid // 2,
        ),
    ]
    h = bk.hive_info(1)
    now = ape.chain.blocks.head.timestamp
    assert h == (alice.address, eeuro.address, paid // 2, HIVE_ACTIVE, 2, now, 0)
    assert bk.hive_meters(1) == [meters[0].address, meters[1].address]
    assert bk.meter_info(meters[0]).hive == 1
    assert bk.meter_stake(1, meters[1]) == METER_COST // 2
    assert bk.owner_stake(alice) == (paid // 2, now)
    assert hvt.totalSupply() == SUPPLY - paid // 2
    assert hvt.balanceOf(alice) == FUNDS - paid
    assert_conserved(bk, hvt, [treasury, alice, bob, bk])


@pytest.mark.parametrize(
    "pick,reason",
    [
        (lambda m: [m[9]], "beekeeper: unknown meter"),
        (lambda m: [m[0], m[6]], "beekeeper: not meter owner"),
        (lambda m: [m[0], m[0]], "beekeeper: meter in a hive"),
        (lambda m: [], "beekeeper: no meters"),
    ],
)
def test_create_hive_bad_meters(bk, eeuro, alice, meters, pick, reason):
    with ape.reverts(reason):
        bk.create_hive(eeuro, pick(meters), sender=alice)


def test_create_hive_bad_coin_or_meter_state(project, bk, eeuro, coin2, governance, alice, meters):
    unlisted = governance.deploy(project.MockToken, "GBP", 6)
    with ape.reverts("beekeeper: unknown stablecoin"):
        bk.create_hive(unlisted, [meters[0]], sender=alice)
    bk.freeze_stablecoin(coin2, sender=governance)
    with ape.reverts("beekeeper: stablecoin frozen"):
        bk.create_hive(coin2, [meters[0]], sender=alice)
    bk.change_meter_status(meters[0], METER_INACTIVE, sender=alice)
    with ape.reverts("beekeeper: meter inactive"):
        bk.create_hive(eeuro, [meters[0]], sender=alice)
    bk.create_hive(eeuro, [meters[1]], sender=alice)
    with ape.reverts("beekeeper: meter in a hive"):
        bk.create_hive(eeuro, [meters[1]], sender=alice)


def test_create_hive_needs_the_hvt(bk, hvt, eeuro, alice, bob, meters):
    hvt.transfer(bob, hvt.balanceOf(alice), sender=alice)
    with ape.reverts("erc20: transfer amount exceeds balance"):
        bk.create_hive(eeuro, [meters[0]], sender=alice)


@pytest.fixture
def hive(bk, eeuro, alice, bob, meters):
    """Alice's hive 1 with meters 0, 1, 2; bob's hive 2 with meter 6."""
    bk.create_hive(eeuro, [meters[0], meters[1], meters[2]], sender=alice)
    bk.create_hive(eeuro, [meters[6]], sender=bob)
    return 1


def test_add_and_drop_meter(bk, hvt, hive, alice, bob, treasury, meters):
    stake = METER_COST // 2
    tx = bk.add_meter_to_hive(hive, meters[3], sender=alice)
    assert tx.events == [
        hvt.Transfer(sender=alice, receiver=bk, value=METER_COST),
        hvt.Transfer(sender=bk, receiver=ZERO, value=stake),
        bk.MeterAddedToHive(hive=hive, meter=meters[3], burned=stake, staked=stake),
    ]
    assert bk.hive_info(hive).meter_count == 4
    before = hvt.balanceOf(alice)
    # Dropping a middle meter moves the last one into its slot.
    tx = bk.drop_meter_from_hive(hive, meters[1], sender=alice)
    assert tx.events == [
        hvt.Transfer(sender=bk, receiver=alice, value=stake),
        bk.MeterDroppedFromHive(hive=hive, meter=meters[1], returned=stake),
    ]
    assert hvt.balanceOf(alice) == before + stake
    assert bk.hive_meters(hive) == [m.address for m in (meters[0], meters[3], meters[2])]
    assert bk.meter_info(meters[1]).hive == 0
    assert bk.meter_stake(hive, meters[3]) == stake
    assert bk.hive_info(hive).staked == (HIVE_COST + 3 * METER_COST) // 2
    assert_conserved(bk, hvt, [treasury, alice, bob, bk])
    # The dropped meter can join a hive again.
    bk.add_meter_to_hive(hive, meters[1], sender=alice)
    assert bk.meter_info(meters[1]).hive == hive


def test_add_and_drop_bad_input(bk, hive, alice, bob, attacker, meters):
    with ape.reverts("beekeeper: unknown meter"):
        bk.add_meter_to_hive(hive, meters[9], sender=alice)
    with ape.reverts("beekeeper: not meter owner"):
        bk.add_meter_to_hive(hive, meters[7], sender=alice)
    with ape.reverts("beekeeper: meter in a hive"):
        bk.add_meter_to_hive(hive, meters[0], sender=alice)
    with ape.reverts("beekeeper: unknown hive"):
        bk.add_meter_to_hive(99, meters[3], sender=alice)
    with ape.reverts("beekeeper: unknown meter"):
        bk.drop_meter_from_hive(hive, meters[9], sender=alice)
    with ape.reverts("beekeeper: meter not in hive"):
        bk.drop_meter_from_hive(hive, meters[3], sender=alice)
    with ape.reverts("beekeeper: meter not in hive"):
        bk.drop_meter_from_hive(hive, meters[6], sender=alice)
    with ape.reverts("beekeeper: last meter"):
        bk.drop_meter_from_hive(2, meters[6], sender=bob)
    for who in (bob, attacker):
        with ape.reverts("beekeeper: not hive owner"):
            bk.add_meter_to_hive(hive, meters[3], sender=who)
        with ape.reverts("beekeeper: not hive owner"):
            bk.drop_meter_from_hive(hive, meters[0], sender=who)
        with ape.reverts("beekeeper: not hive owner"):
            bk.freeze_hive(hive, sender=who)
        with ape.reverts("beekeeper: not hive owner"):
            bk.split_hive(hive, [meters[0]], sender=who)
        with ape.reverts("beekeeper: not hive owner"):
            bk.merge_hives(2, hive, sender=who)


def test_freeze_hive_returns_the_stake_and_accepts_nothing(
    bk, hvt, hive, alice, bob, treasury, meters
):
    staked = (HIVE_COST + 3 * METER_COST) // 2
    before = hvt.balanceOf(alice)
    tx = bk.freeze_hive(hive, sender=alice)
    assert tx.events == [
        hvt.Transfer(sender=bk, receiver=alice, value=staked),
        bk.HiveFrozen(hive=hive, returned=staked),
    ]
    now = ape.chain.blocks.head.timestamp
    h = bk.hive_info(hive)
    assert (h.status, h.staked, h.end, h.meter_count) == (HIVE_FROZEN, 0, now, 3)
    assert hvt.balanceOf(alice) == before + staked
    assert bk.meter_info(meters[0]).hive == 0
    assert_conserved(bk, hvt, [treasury, alice, bob, bk])
    for call in (
        lambda: bk.add_meter_to_hive(hive, meters[3], sender=alice),
        lambda: bk.drop_meter_from_hive(hive, meters[0], sender=alice),
        lambda: bk.split_hive(hive, [meters[0]], sender=alice),
        lambda: bk.freeze_hive(hive, sender=alice),
    ):
        with ape.reverts("beekeeper: hive frozen"):
            call()
    # Its meters are free for a new hive.
    assert bk.create_hive(h.stablecoin, [meters[0]], sender=alice).return_value == 3


def test_frozen_coin_accepts_nothing_new_but_lets_owners_leave(
    bk, hvt, hive, governance, eeuro, alice, meters
):
    bk.create_hive(eeuro, [meters[4]], sender=alice)
    bk.freeze_stablecoin(eeuro, sender=governance)
    with ape.reverts("beekeeper: stablecoin frozen"):
        bk.add_meter_to_hive(hive, meters[3], sender=alice)
    with ape.reverts("beekeeper: stablecoin frozen"):
        bk.split_hive(hive, [meters[0]], sender=alice)
    with ape.reverts("beekeeper: stablecoin frozen"):
        bk.merge_hives(hive, 3, sender=alice)
    bk.drop_meter_from_hive(hive, meters[0], sender=alice)
    bk.freeze_hive(hive, sender=alice)
    assert bk.hive_info(hive).status == HIVE_FROZEN


def test_split_hive(bk, hvt, hive, alice, bob, treasury, meters):
    tx = bk.split_hive(hive, [meters[0], meters[2]], sender=alice)
    moved = METER_COST  # two meters, half each
    assert tx.return_value == 3
    assert tx.events == [
        bk.HiveSplit(hive=hive, new_hive=3, meters=[meters[0], meters[2]], stake_moved=moved)
    ]
    assert bk.hive_meters(hive) == [meters[1].address]
    assert bk.hive_meters(3) == [meters[0].address, meters[2].address]
    assert bk.hive_info(hive).staked == (HIVE_COST + METER_COST) // 2
    new = bk.hive_info(3)
    assert (new.owner, new.staked, new.status, new.meter_count) == (
        alice.address,
        moved,
        HIVE_ACTIVE,
        2,
    )
    assert bk.meter_info(meters[2]).hive == 3
    assert bk.meter_stake(3, meters[0]) == METER_COST // 2
    assert_conserved(bk, hvt, [treasury, alice, bob, bk])
    # The new hive is a full hive: its meters can be dropped, it can be frozen.
    bk.drop_meter_from_hive(3, meters[0], sender=alice)
    bk.freeze_hive(3, sender=alice)
    assert_conserved(bk, hvt, [treasury, alice, bob, bk])


def test_split_bad_input(bk, hive, alice, meters):
    with ape.reverts("beekeeper: cannot split every meter"):
        bk.split_hive(hive, [meters[0], meters[1], meters[2]], sender=alice)
    with ape.reverts("beekeeper: no meters"):
        bk.split_hive(hive, [], sender=alice)
    with ape.reverts("beekeeper: meter not in hive"):
        bk.split_hive(hive, [meters[0], meters[0]], sender=alice)
    with ape.reverts("beekeeper: meter not in hive"):
        bk.split_hive(hive, [meters[6]], sender=alice)
    with ape.reverts("beekeeper: unknown meter"):
        bk.split_hive(hive, [meters[9]], sender=alice)


def test_merge_hives(bk, hvt, hive, eeuro, alice, bob, treasury, meters):
    bk.create_hive(eeuro, [meters[3], meters[4]], sender=alice)
    staked = bk.hive_info(3).staked
    tx = bk.merge_hives(hive, 3, sender=alice)
    assert tx.events == [bk.HivesMerged(into=hive, merged=3, stake_moved=staked)]
    assert bk.hive_meters(hive) == [m.address for m in meters[:5]]
    assert bk.meter_info(meters[4]).hive == hive
    assert bk.hive_info(hive).staked == (2 * HIVE_COST + 5 * METER_COST) // 2
    merged = bk.hive_info(3)
    assert (merged.status, merged.staked, merged.meter_count) == (HIVE_FROZEN, 0, 0)
    assert_conserved(bk, hvt, [treasury, alice, bob, bk])
    # Every merged meter can be dropped from its new hive (indexes were rewritten).
    bk.drop_meter_from_hive(hive, meters[3], sender=alice)
    assert bk.hive_meters(hive) == [m.address for m in (meters[0], meters[1], meters[2], meters[4])]


def test_merge_bad_input(bk, hive, coin2, alice, meters):
    bk.create_hive(coin2, [meters[3]], sender=alice)
    with ape.reverts("beekeeper: different stablecoins"):
        bk.merge_hives(hive, 3, sender=alice)
    with ape.reverts("beekeeper: same hive"):
        bk.merge_hives(hive, hive, sender=alice)
    with ape.reverts("beekeeper: not hive owner"):
        bk.merge_hives(hive, 2, sender=alice)
    with ape.reverts("beekeeper: unknown hive"):
        bk.merge_hives(hive, 99, sender=alice)
