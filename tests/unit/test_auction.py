"""The energy auction (SPEC §10, issue 14 part 2) as deployed by the protocol: exact events and
reverts, every role, every time edge (a bid exactly at the end, exactly at the anti-sniping
window's boundary, at the extension cap), rounding per SPEC §0, and conservation after every
test: the house holds exactly the ENT of its open auctions, and exactly the free balances plus
the highest escrow of every open auction in eEuro.
"""

import ape
import pytest
from ape import chain

from scripts._auction import CAP, EUR, INCREMENT, KWH, WAD, WH, WINDOW, escrow_of, min_next
from scripts._protocol import deploy_protocol, governed
from tests.conftest import ZERO, assert_supply_conserved
from tests.orderbook_fixtures import assert_deploy_reverts, assert_reverts

HOUR = 3_600
NOT_OWNER = "ownable: caller is not the owner"


@pytest.fixture(scope="module")
def unit(accounts):
    return accounts[40]


@pytest.fixture(scope="module")
def unit_owner(accounts):
    return accounts[41]


@pytest.fixture(scope="module")
def seller(alice):
    return alice


@pytest.fixture(scope="module")
def protocol(deployer, banker, unit, unit_owner, alice, bob, carol, dave):
    p = deploy_protocol(deployer)
    governed(p, [deployer], p.EEuro, "set_banker", banker)
    governed(p, [deployer], p.EnergyLedger, "register_storage_unit", unit, unit_owner)
    ledger, eeuro, house = p.EnergyLedger, p.EEuro, p.EnergyAuction
    # Alice and dave sell: 1,000 kWh stored for each, 800 ENT after the storage fee.
    for who in (alice, dave):
        ledger.energy_produced(who, 1_000_000, ledger.last_seq(unit) + 1, sender=unit)
        ledger.approve(house, 2**256 - 1, sender=who)
    for who in (bob, carol, dave):
        eeuro.mint(who, 10_000 * EUR, sender=banker)
        eeuro.approve(house, 2**256 - 1, sender=who)
    return p


@pytest.fixture(scope="module")
def house(protocol):
    return protocol.EnergyAuction


@pytest.fixture(scope="module")
def ent(protocol):
    return protocol.EnergyLedger


@pytest.fixture(scope="module")
def eeuro(protocol):
    return protocol.EEuro


@pytest.fixture(autouse=True)
def _conserved(request):
    yield
    if "house" in request.fixturenames:
        h = request.getfixturevalue("house")
        assert_house_conserved(h, request.getfixturevalue("ent"), request.getfixturevalue("eeuro"))


def assert_house_conserved(house, ent, eeuro):
    """ENT held = ENT of open auctions; eEuro held = free balances + highest escrows of open
    auctions; each token's supply = the sum of its balances."""
    count = house.auction_count()
    views = [house.auction(i) for i in range(1, count + 1)]
    open_ = [v for v in views if v.status == house.STATUS_OPEN()]
    assert ent.balanceOf(house) == sum(v.amount for v in open_)
    accounts = {log.account for log in house.Deposited.range(0, chain.blocks.height + 1)}
    accounts |= {log.outbid for log in house.BidPlaced.range(0, chain.blocks.height + 1)}
    accounts.discard(ZERO)
    credits = sum(house.credit_of(a) for a in accounts)
    assert eeuro.balanceOf(house) == credits + sum(v.escrow for v in open_)
    assert_supply_conserved(eeuro)


def at(timestamp: int) -> None:
    """The next transaction is mined at `timestamp`."""
    chain.pending_timestamp = timestamp


def create(house, seller, kwh=10, reserve=100_000, duration=HOUR):
    """An auction of `kwh` ENT at a reserve of `reserve` eEuro base units per kWh; returns
    (id, ends_at, receipt)."""
    ends_at = chain.pending_timestamp + duration
    tx = house.create(kwh * KWH, reserve, ends_at, sender=seller)
    return tx.return_value, ends_at, tx


def test_deployed_and_wired(protocol, house, ent, eeuro):
    assert house.owner() == protocol.Council.address
    assert house.ENT() == ent.address and house.COIN() == eeuro.address
    assert house.BEEKEEPER() == protocol.Beekeeper.address
    assert house.parameters() == (INCREMENT, WINDOW, CAP)
    assert house.auction_count() == 0
    assert "EnergyAuction" in protocol.to_deployment("test").contracts


def test_constructor_checks(project, deployer, protocol, ent, eeuro):
    keeper, hvt = protocol.Beekeeper, protocol.HiveToken
    args = (ent, eeuro, keeper, deployer, INCREMENT, WINDOW, CAP)
    bad = [
        ("auction: zero token", (ZERO,) + args[1:]),
        ("auction: zero token", (ent, ZERO) + args[2:]),
        ("auction: ent is coin", (ent, ent) + args[2:]),
        ("auction: zero governance", args[:3] + (ZERO,) + args[4:]),
        ("auction: coin not listed", (ent, hvt) + args[2:]),
        ("auction: bad increment", args[:4] + (0, WINDOW, CAP)),
        ("auction: bad increment", args[:4] + (WAD + 1, WINDOW, CAP)),
        ("auction: window too long", args[:4] + (INCREMENT, 86_401, CAP)),
        ("auction: cap too long", args[:4] + (INCREMENT, WINDOW, 7 * 86_400 + 1)),
    ]
    for reason, a in bad:
        assert_deploy_reverts(reason, project.EnergyAuction, *a, sender=deployer)


def test_create_escrows_the_ent(house, ent, seller):
    before = ent.balanceOf(seller)
    auction_id, ends_at, tx = create(house, seller, kwh=10, reserve=150_000)
    assert auction_id == 1 and house.auction_count() == 1
    assert tx.events == [
        house.AuctionCreated(
            auction_id=1,
            seller=seller,
            amount=10 * KWH,
            reserve=150_000,
            ends_at=ends_at,
            max_ends_at=ends_at + CAP,
            window=WINDOW,
            increment=INCREMENT,
        ),
        ent.Transfer(sender=seller, receiver=house, value=10 * KWH),
    ]
    assert ent.balanceOf(seller) == before - 10 * KWH
    v = house.auction(1)
    assert (v.status, v.seller, v.amount, v.reserve) == (1, seller, 10 * KWH, 150_000)
    assert (v.bidder, v.price, v.escrow, v.ends_at) == (ZERO, 0, 0, ends_at)
    assert house.min_bid(1) == 150_000


def test_create_rejects_bad_terms(house, seller, bob):
    now = chain.pending_timestamp
    # eth_call runs on the latest block: its timestamp is `now` at the latest.
    latest = chain.blocks.head.timestamp
    bad = [
        ("auction: zero amount", (0, 1, now + HOUR), seller),
        ("auction: amount not whole Wh", (WH + 1, 1, now + HOUR), seller),
        ("auction: amount too large", (2**64 * WH, 1, now + HOUR), seller),
        ("auction: zero reserve", (KWH, 0, now + HOUR), seller),
        ("auction: price too large", (KWH, 2**96, now + HOUR), seller),
        ("auction: end not in the future", (KWH, 1, latest), seller),
        ("auction: end too far", (KWH, 1, latest + 90 * 86_400 + 1), seller),
        # Bob holds no ENT and gave no allowance: the ledger refuses the pull.
        ("erc20: insufficient allowance", (KWH, 1, now + HOUR), bob),
    ]
    for reason, args, who in bad:
        assert_reverts(reason, house.create, *args, sender=who)
    # The far edge is allowed: exactly MAX_DURATION from the block's time.
    at(now + 10)
    tx = house.create(WH, 1, now + 10 + 90 * 86_400, sender=seller)
    assert tx.return_value == 1


def test_first_bid_must_reach_the_reserve(house, eeuro, seller, bob):
    auction_id, ends_at, _ = create(house, seller, kwh=10, reserve=150_000)
    assert_reverts("auction: below reserve", house.bid, *(auction_id, 149_999), sender=bob)
    before = eeuro.balanceOf(bob)
    tx = house.bid(auction_id, 150_000, sender=bob)
    escrow = 10 * 150_000
    assert tx.events == [
        house.BidPlaced(
            auction_id=auction_id,
            bidder=bob,
            outbid=ZERO,
            price=150_000,
            escrow=escrow,
            refund=0,
            ends_at=ends_at,
        ),
        eeuro.Transfer(sender=bob, receiver=house, value=escrow),
    ]
    assert eeuro.balanceOf(bob) == before - escrow
    v = house.auction(auction_id)
    assert (v.bidder, v.price, v.escrow) == (bob, 150_000, escrow)
    assert house.min_bid(auction_id) == min_next(150_000) == 153_000


def test_outbid_credits_the_refund_and_withdraw_pulls_it(house, eeuro, seller, bob, carol):
    auction_id, ends_at, _ = create(house, seller, kwh=10, reserve=150_000)
    house.bid(auction_id, 150_000, sender=bob)
    assert_reverts("auction: bid too low", house.bid, *(auction_id, 152_999), sender=carol)
    tx = house.bid(auction_id, 153_000, sender=carol)
    assert tx.events == [
        house.BidPlaced(
            auction_id=auction_id,
            bidder=carol,
            outbid=bob,
            price=153_000,
            escrow=1_530_000,
            refund=1_500_000,
            ends_at=ends_at,
        ),
        eeuro.Transfer(sender=carol, receiver=house, value=1_530_000),
    ]
    # Pull: nothing was sent to bob; his refund waits in his free balance.
    assert house.credit_of(bob) == 1_500_000
    assert_reverts("auction: zero amount", house.withdraw, 0, sender=bob)
    assert_reverts("auction: exceeds balance", house.withdraw, 1_500_001, sender=bob)
    assert_reverts("auction: exceeds balance", house.withdraw, 1, sender=carol)
    tx = house.withdraw(500_000, sender=bob)
    assert tx.events == [
        house.Withdrawn(account=bob, amount=500_000, balance=1_000_000),
        eeuro.Transfer(sender=house, receiver=bob, value=500_000),
    ]
    # Bob re-bids: his free balance pays first, only the rest is pulled.
    price = min_next(153_000)
    tx = house.bid(auction_id, price, sender=bob)
    escrow = escrow_of(10 * KWH, price)
    assert tx.events == [
        house.BidPlaced(
            auction_id=auction_id,
            bidder=bob,
            outbid=carol,
            price=price,
            escrow=escrow,
            refund=1_530_000,
            ends_at=ends_at,
        ),
        eeuro.Transfer(sender=bob, receiver=house, value=escrow - 1_000_000),
    ]
    assert house.credit_of(bob) == 0 and house.credit_of(carol) == 1_530_000


def test_bid_from_a_deposit_moves_no_token(house, eeuro, seller, bob, carol):
    assert_reverts("auction: zero amount", house.deposit, 0, sender=bob)
    tx = house.deposit(5 * EUR, sender=bob)
    assert tx.events == [
        house.Deposited(account=bob, amount=5 * EUR, balance=5 * EUR),
        eeuro.Transfer(sender=bob, receiver=house, value=5 * EUR),
    ]
    auction_id, ends_at, _ = create(house, seller, kwh=2, reserve=100_000)
    tx = house.bid(auction_id, 100_000, sender=bob)
    assert tx.events == [
        house.BidPlaced(
            auction_id=auction_id,
            bidder=bob,
            outbid=ZERO,
            price=100_000,
            escrow=200_000,
            refund=0,
            ends_at=ends_at,
        )
    ]
    assert house.credit_of(bob) == 5 * EUR - 200_000
    # The leader may raise its own bid: its old escrow comes back to its balance first.
    tx = house.bid(auction_id, 102_000, sender=bob)
    assert [e.event_name for e in tx.events] == ["BidPlaced"]
    assert house.credit_of(bob) == 5 * EUR - 204_000


def test_rounding_favours_the_seller_and_refunds_are_exact(house, eeuro, seller, bob, carol):
    # 1.5 kWh (1,500 Wh) at 1,001 base units per kWh: 1,501.5 escrows 1,502 (rounded up).
    tx = house.create(1_500 * WH, 1_001, chain.pending_timestamp + HOUR, sender=seller)
    auction_id = tx.return_value
    assert house.escrow_for(auction_id, 1_001) == 1_502 == escrow_of(1_500 * WH, 1_001)
    house.bid(auction_id, 1_001, sender=bob)
    # 2% of 1,001 is 20.02: the step rounds up to 21, so 1,021 is too low and 1,022 the minimum.
    assert house.min_bid(auction_id) == 1_022 == min_next(1_001)
    assert_reverts("auction: bid too low", house.bid, *(auction_id, 1_021), sender=carol)
    house.bid(auction_id, 1_022, sender=carol)
    # The refund is exactly what bob escrowed.
    assert house.credit_of(bob) == 1_502
    # 1 Wh at 1 base unit per kWh escrows 1 (0.001 rounded up), never 0.
    tx = house.create(WH, 1, chain.pending_timestamp + HOUR, sender=seller)
    assert house.escrow_for(tx.return_value, 1) == 1
    # A tiny price still has to move: 2% of 1 rounds up to 1.
    house.bid(tx.return_value, 1, sender=bob)
    assert house.min_bid(tx.return_value) == 2


def test_bid_on_no_auction_or_too_large(house, seller, bob, attacker):
    assert_reverts("auction: not open", house.bid, *(1, 100), sender=attacker)
    auction_id, _, _ = create(house, seller)
    assert_reverts("auction: price too large", house.bid, *(auction_id, 2**96), sender=bob)
    # Without eEuro (or allowance) the pull fails and nothing changes.
    with ape.reverts():
        house.bid(auction_id, 100_000, sender=attacker)
    assert house.auction(auction_id).bidder == ZERO


def test_a_bid_exactly_at_the_end_is_too_late(house, ent, eeuro, seller, bob, carol, attacker):
    auction_id, ends_at, _ = create(house, seller, kwh=10, reserve=100_000, duration=2 * HOUR)
    at(ends_at - 1)
    tx = house.bid(auction_id, 100_000, sender=bob)  # in the window: the end moves
    ends_at = ends_at - 1 + WINDOW
    assert tx.events[0].ends_at == ends_at == house.auction(auction_id).ends_at
    # Settling one second early is refused; exactly at the end bidding is too late, and
    # anyone settles.
    at(ends_at - 1)
    with ape.reverts("auction: not ended"):
        house.settle(auction_id, sender=attacker)
    at(ends_at)
    with ape.reverts("auction: ended"):
        house.bid(auction_id, 200_000, sender=carol)
    if chain.blocks.head.timestamp < ends_at:
        at(ends_at)
    ent_before, eur_before = ent.balanceOf(bob), eeuro.balanceOf(seller)
    tx = house.settle(auction_id, sender=attacker)
    assert tx.events == [
        house.AuctionSettled(
            auction_id=auction_id,
            seller=seller,
            winner=bob,
            amount=10 * KWH,
            price=100_000,
            payment=1_000_000,
        ),
        ent.Transfer(sender=house, receiver=bob, value=10 * KWH),
        eeuro.Transfer(sender=house, receiver=seller, value=1_000_000),
    ]
    assert ent.balanceOf(bob) == ent_before + 10 * KWH
    assert eeuro.balanceOf(seller) == eur_before + 1_000_000
    assert house.auction(auction_id).status == house.STATUS_CLOSED()
    assert_reverts("auction: not open", house.settle, auction_id, sender=attacker)
    assert_reverts("auction: not open", house.bid, *(auction_id, 10**6), sender=carol)
    assert_reverts("auction: not open", house.cancel, auction_id, sender=seller)


def test_window_boundary(house, seller, bob, carol):
    auction_id, ends_at, _ = create(house, seller, duration=2 * HOUR)
    # Exactly `window` before the end: not inside the window, the end stays.
    at(ends_at - WINDOW)
    tx = house.bid(auction_id, 100_000, sender=bob)
    assert tx.events[0].ends_at == ends_at
    # One second later: inside, the end moves to window seconds after the bid.
    at(ends_at - WINDOW + 1)
    tx = house.bid(auction_id, min_next(100_000), sender=carol)
    assert tx.events[0].ends_at == ends_at + 1 == house.auction(auction_id).ends_at


def test_extensions_stop_at_the_cap(house, seller, bob, carol):
    auction_id, ends_at, _ = create(house, seller, duration=HOUR)
    max_ends = ends_at + CAP
    assert house.auction(auction_id).max_ends_at == max_ends
    price, bidders, end = 100_000, (bob, carol), ends_at
    # Bid one second before each end: every bid extends by window - 1 until the cap binds.
    step = 0
    while end < max_ends:
        at(end - 1)
        tx = house.bid(auction_id, price, sender=bidders[step % 2])
        new_end = tx.events[0].ends_at
        assert new_end == min(end - 1 + WINDOW, max_ends)
        end, price, step = new_end, min_next(price), step + 1
    assert end == max_ends and step == -(-CAP // (WINDOW - 1))
    # At the cap, a bid in the window no longer moves the end ...
    at(max_ends - 1)
    tx = house.bid(auction_id, price, sender=bidders[step % 2])
    assert tx.events[0].ends_at == max_ends
    # ... and exactly at it bidding is over.
    at(max_ends)
    with ape.reverts("auction: ended"):
        house.bid(auction_id, min_next(price), sender=bidders[(step + 1) % 2])


def test_settle_without_a_bid_returns_the_ent(house, ent, seller, attacker):
    auction_id, ends_at, _ = create(house, seller, kwh=3)
    before = ent.balanceOf(seller)
    at(ends_at)
    tx = house.settle(auction_id, sender=attacker)
    assert tx.events == [
        house.AuctionSettled(
            auction_id=auction_id, seller=seller, winner=ZERO, amount=3 * KWH, price=0, payment=0
        ),
        ent.Transfer(sender=house, receiver=seller, value=3 * KWH),
    ]
    assert ent.balanceOf(seller) == before + 3 * KWH


def test_only_the_seller_cancels_and_only_before_the_first_bid(
    house, ent, seller, bob, attacker, deployer, dave
):
    auction_id, _, _ = create(house, seller, kwh=4)
    for who in (attacker, bob, deployer, dave):
        assert_reverts("auction: not seller", house.cancel, auction_id, sender=who)
    before = ent.balanceOf(seller)
    tx = house.cancel(auction_id, sender=seller)
    assert tx.events == [
        house.AuctionCancelled(auction_id=auction_id, seller=seller, amount=4 * KWH),
        ent.Transfer(sender=house, receiver=seller, value=4 * KWH),
    ]
    assert ent.balanceOf(seller) == before + 4 * KWH
    assert house.auction(auction_id).status == house.STATUS_CLOSED()
    assert_reverts("auction: not open", house.cancel, auction_id, sender=seller)
    second, _, _ = create(house, seller)
    house.bid(second, 100_000, sender=bob)
    assert_reverts("auction: has a bid", house.cancel, second, sender=seller)


def test_parameters_only_by_council_vote_and_never_for_open_auctions(
    protocol, house, seller, deployer, banker, alice, bob, carol, attacker
):
    for who in (deployer, banker, alice, bob, attacker):
        assert_reverts(NOT_OWNER, house.set_parameters, *(WAD // 10, 0, 0), sender=who)
        assert_reverts(NOT_OWNER, house.transfer_ownership, attacker, sender=who)
    old_id, old_end, _ = create(house, seller, duration=2 * HOUR)
    tx = governed(protocol, [deployer], house, "set_parameters", WAD // 10, 0, 0)
    assert house.ParametersSet(increment=WAD // 10, window=0, cap=0) in tx.events
    assert house.parameters() == (WAD // 10, 0, 0)
    # The open auction keeps 2%, its window and its cap ...
    house.bid(old_id, 100_000, sender=bob)
    at(old_end - 1)
    tx = house.bid(old_id, min_next(100_000, INCREMENT), sender=carol)
    assert tx.events[0].ends_at == old_end - 1 + WINDOW
    # ... a new one gets 10%, no window and no cap.
    new_id, new_end, _ = create(house, seller, duration=2 * HOUR)
    v = house.auction(new_id)
    assert (v.increment, v.window, v.max_ends_at) == (WAD // 10, 0, new_end)
    house.bid(new_id, 100_000, sender=bob)
    assert house.min_bid(new_id) == 110_000
    at(new_end - 1)
    tx = house.bid(new_id, 110_000, sender=carol)
    assert tx.events[0].ends_at == new_end


def test_parameter_bounds(project, deployer, ent, eeuro):
    solo = deployer.deploy(project.EnergyAuction, ent, eeuro, ZERO, deployer, INCREMENT, 0, 0)
    for reason, args in [
        ("auction: bad increment", (0, WINDOW, CAP)),
        ("auction: bad increment", (WAD + 1, WINDOW, CAP)),
        ("auction: window too long", (INCREMENT, 86_401, CAP)),
        ("auction: cap too long", (INCREMENT, WINDOW, 7 * 86_400 + 1)),
    ]:
        assert_reverts(reason, solo.set_parameters, *args, sender=deployer)
    tx = solo.set_parameters(WAD, 86_400, 7 * 86_400, sender=deployer)
    assert tx.events == [solo.ParametersSet(increment=WAD, window=86_400, cap=7 * 86_400)]


def test_a_frozen_coin_stops_new_auctions_not_open_ones(protocol, house, deployer, seller, bob):
    auction_id, ends_at, _ = create(house, seller)
    governed(protocol, [deployer], protocol.Beekeeper, "freeze_stablecoin", protocol.EEuro)
    assert_reverts(
        "auction: coin frozen",
        house.create,
        *(KWH, 1, chain.blocks.head.timestamp + HOUR),
        sender=seller,
    )
    house.bid(auction_id, 100_000, sender=bob)
    at(ends_at)
    house.settle(auction_id, sender=bob)


def test_open_auctions_pages(house, seller, dave, bob):
    ids = [create(house, who, kwh=1 + i)[0] for i, who in enumerate([seller, dave] * 3)]
    house.cancel(ids[1], sender=dave)
    house.cancel(ids[4], sender=seller)
    house.bid(ids[2], 100_000, sender=bob)
    open_ids = [ids[0], ids[2], ids[3], ids[5]]
    page, cursor = house.open_auctions(0, 0)
    assert [v.auction_id for v in page] == open_ids and cursor == 0
    seen, cursor = [], 1
    while True:
        page, cursor = house.open_auctions(cursor, 2)
        seen += [v.auction_id for v in page]
        assert len(page) <= 2
        if cursor == 0:
            break
    assert seen == open_ids
    v = house.open_auctions(ids[2], 1)[0][0]
    assert (v.seller, v.amount, v.bidder, v.price, v.escrow) == (
        seller,
        3 * KWH,
        bob,
        100_000,
        300_000,
    )
    assert house.auction(ids[1]).status == house.STATUS_CLOSED()
    assert house.auction(0).status == house.auction(99).status == house.STATUS_NONE()
    assert_reverts("auction: not open", house.min_bid, ids[1], sender=bob)
    assert_reverts("auction: not open", house.escrow_for, *(ids[1], 1), sender=bob)
