"""CDA order book (SPEC §5, issue 5): matching, escrow, cancellation, options and reverts.

Base is HVT standing in for ENT (18 decimals), quote is eEuro (6 decimals); the book uses the
ENT / eEuro rules of `scripts/_orderbook.py`: tick 0.001 eEuro, lot 0.001, minimum 0.01.
Every test that moves tokens ends with `Market.assert_conserved` (the book holds exactly the
escrow of its open orders, supplies equal the sums of balances).
"""

import ape
import pytest

from scripts._orderbook import ENT_LOT, ENT_MIN_SIZE, ENT_TICK, deploy_orderbook
from tests.orderbook_fixtures import (
    BELOW_MINIMUM,
    CROSSING,
    EEURO,
    ENT,
    IOC,
    LOT,
    MAX_UINT,
    MIN_SIZE,
    TICK,
    Fill,
    Market,
    assert_deploy_reverts,
    assert_reverts,
    ent,
    eur,
    make_id,
    placed_id,
    quote_of,
)


@pytest.fixture(scope="module")
def erin(accounts):
    return accounts[9]


@pytest.fixture(scope="module")
def frank(accounts):
    return accounts[10]


@pytest.fixture(scope="module")
def book(deployer, hvt, eeuro_banked):
    return deploy_orderbook(deployer, hvt, eeuro_banked, deployer)


@pytest.fixture(scope="module")
def market(book, hvt, eeuro_banked, banker, treasury, alice, bob, carol, dave, erin, frank):
    """Six funded traders that approved the book for the maximum."""
    traders = [alice, bob, carol, dave, erin, frank]
    for trader in traders:
        hvt.transfer(trader, 1_000 * ENT, sender=treasury)
        eeuro_banked.mint(trader, 10_000 * EEURO, sender=banker)
        hvt.approve(book, MAX_UINT, sender=trader)
        eeuro_banked.approve(book, MAX_UINT, sender=trader)
    return Market(book, hvt, eeuro_banked, traders)


@pytest.fixture(scope="module", autouse=True)
def roles(deployer, banker, alice, bob, attacker, treasury, council_stand_in, carol, dave, erin):
    """Every role exists before the first test, so Ape's chain isolation never has to rebase."""


@pytest.fixture(autouse=True)
def conserved_after(request):
    """After every test that trades: the book holds exactly the escrow of its open orders
    (read order by order) and each token's supply is the sum of its balances."""
    start = ape.chain.blocks.height
    yield
    if "market" in request.fixturenames and ape.chain.blocks.height != start:
        request.getfixturevalue("market").assert_conserved(orders=True, supply=True)


# --- deployment -----------------------------------------------------------------------------


def test_deployment(market, book, hvt, eeuro_banked, deployer):
    assert book.BASE() == hvt.address
    assert book.QUOTE() == eeuro_banked.address
    assert book.BASE_ONE() == ENT
    assert (book.PRICE_UNIT(), book.AMOUNT_UNIT()) == (ENT_TICK, ENT_LOT)
    assert (book.tick_size(), book.lot_size(), book.min_size()) == (TICK, LOT, MIN_SIZE)
    assert MIN_SIZE == ENT_MIN_SIZE
    assert book.owner() == deployer
    assert (book.best_bid(), book.best_ask(), book.order_seq()) == (0, 0, 0)
    assert book.depth(True, 0, 10) == book.depth(False, 0, 10) == ([], 0)
    assert book.open_orders(deployer, 0, 10) == ([], 0)
    receipt = ape.chain.get_receipt(book.txn_hash)
    rules = [log for log in receipt.events if log.event_name == "RulesSet"]
    assert rules == [book.RulesSet(tick_size=TICK, lot_size=LOT, min_size=MIN_SIZE)]


def test_deploys_with_separate_governance(project, deployer, hvt, eeuro_banked, council_stand_in):
    book = deployer.deploy(
        project.OrderBook, hvt, eeuro_banked, TICK, LOT, MIN_SIZE, council_stand_in
    )
    assert book.owner() == council_stand_in


@pytest.mark.parametrize(
    "args, reason",
    [
        (("ZERO", "quote", TICK, LOT, MIN_SIZE, "gov"), "book: zero token"),
        (("base", "ZERO", TICK, LOT, MIN_SIZE, "gov"), "book: zero token"),
        (("base", "base", TICK, LOT, MIN_SIZE, "gov"), "book: base is quote"),
        (("base", "quote", TICK, LOT, MIN_SIZE, "ZERO"), "book: zero governance"),
        (("base", "quote", 0, LOT, MIN_SIZE, "gov"), "book: zero tick size"),
        (("base", "quote", TICK, 0, MIN_SIZE, "gov"), "book: zero lot size"),
        # 0.001 eEuro x 0.0001 base = 0.1 eEuro base unit: a fill could not be exact.
        (("base", "quote", TICK, LOT // 10, MIN_SIZE, "gov"), "book: tick x lot not exact"),
        (("base", "quote", TICK, LOT, LOT * 3 // 2, "gov"), "book: min size not a lot multiple"),
        (("base", "quote", TICK, LOT, 0, "gov"), "book: min size not a lot multiple"),
        # Units so large that a quote amount could overflow (prices < 2**184, quote < 2**248).
        (("base", "quote", 2**160 + ENT, ENT, ENT, "gov"), "book: units too large"),
        (("base", "quote", 2**100, 2**80 * ENT, 2**80 * ENT, "gov"), "book: units too large"),
    ],
)
def test_bad_deployment_reverts(project, deployer, hvt, eeuro_banked, args, reason):
    names = {"ZERO": "0x" + "00" * 20, "base": hvt, "quote": eeuro_banked, "gov": deployer}
    resolved = [names.get(a, a) if isinstance(a, str) else a for a in args]
    assert_deploy_reverts(reason, project.OrderBook, *resolved, sender=deployer)


def test_other_decimals_pair(project, deployer, alice, bob):
    """A 6-decimals base priced in an 18-decimals quote: exactness follows the base's
    decimals (tick x lot must be a multiple of 10**6 here)."""
    base = deployer.deploy(project.MockToken, "KWH", 6)
    quote = deployer.deploy(project.MockToken, "Q18", 18)
    # 10**3 x 10**2 = 10**5 is not a multiple of 10**6 (one whole 6-decimals base).
    assert_deploy_reverts(
        "book: tick x lot not exact",
        project.OrderBook,
        *(base, quote, 10**3, 10**2, 10**3, deployer),
        sender=deployer,
    )
    # tick 0.000001 quote per unit, lot 0.001 base: one lot at one tick = 10**9 quote units.
    book = deployer.deploy(project.OrderBook, base, quote, 10**12, 10**3, 10**4, deployer)
    for trader in (alice, bob):
        base.mint(trader, 100 * 10**6, sender=trader)
        quote.mint(trader, 100 * 10**18, sender=trader)
        base.approve(book, MAX_UINT, sender=trader)
        quote.approve(book, MAX_UINT, sender=trader)
    market = Market(book, base, quote, [alice, bob])
    price = 2_500_000 * 10**12  # 2.5 quote per whole base
    book.place(False, price, 3 * 10**6, False, 0, sender=alice)
    before = market.balances()
    book.place(True, price, 10**6, False, 0, sender=bob)
    after = market.balances()
    assert after[bob.address][0] - before[bob.address][0] == 10**6
    assert before[bob.address][1] - after[bob.address][1] == 25 * 10**17
    assert after[alice.address][1] - before[alice.address][1] == 25 * 10**17
    assert base.balanceOf(book) == 2 * 10**6
    assert quote.balanceOf(book) == 0


# --- the classic example --------------------------------------------------------------------


def test_classic_example(market, book, alice, bob, carol, dave, erin, frank):
    """Buys 10.5x5, 10.0x3, 9.9x4, 9.8x5 against sells 10.2x3, 10.5x1, 10.8x4, 11.1x3, entered
    in this order:

        1. alice buys 3 at 10.0     rests
        2. bob sells 4 at 10.8      rests
        3. carol buys 4 at 9.9      rests
        4. dave sells 3 at 10.2     rests
        5. erin buys 5 at 10.5      takes dave's 3 at 10.2, 2 rest at 10.5
        6. frank sells 1 at 10.5    takes 1 of erin's at 10.5 (the maker's price)
        7. alice buys 5 at 9.8      rests
        8. bob sells 3 at 11.1      rests
    """
    b, s = True, False
    ids = {}
    ids[1] = market.check_place(alice, b, eur("10.0"), ent(3), [], ent(3))
    assert ids[1] == make_id(b, eur("10.0"), 0)
    ids[2] = market.check_place(bob, s, eur("10.8"), ent(4), [], ent(4))
    assert ids[2] == make_id(s, eur("10.8"), 0)
    ids[3] = market.check_place(carol, b, eur("9.9"), ent(4), [], ent(4))
    ids[4] = market.check_place(dave, s, eur("10.2"), ent(3), [], ent(3))
    assert (book.best_bid(), book.best_ask()) == (eur("10.0"), eur("10.2"))

    # Trade 1: 3 at 10.2 (dave's price, not erin's 10.5); erin pays 30.6 and escrows 21.
    fills = [Fill(ids[4], dave, eur("10.2"), ent(3))]
    ids[5] = market.check_place(erin, b, eur("10.5"), ent(5), fills, ent(2))
    assert ids[5] == make_id(b, eur("10.5"), 0, seq=1)
    assert (book.best_bid(), book.best_ask()) == (eur("10.5"), eur("10.8"))

    # Trade 2: frank's sell crosses erin's resting bid and trades at erin's 10.5.
    fills = [Fill(ids[5], erin, eur("10.5"), ent(1))]
    ids[6] = market.check_place(frank, s, eur("10.5"), ent(1), fills, 0)
    assert ids[6] == make_id(s, eur("10.5"), 1, seq=2)

    ids[7] = market.check_place(alice, b, eur("9.8"), ent(5), [], ent(5))
    ids[8] = market.check_place(bob, s, eur("11.1"), ent(3), [], ent(3))

    bids, asks = market.sides()
    assert bids == [
        (eur("10.5"), ent(1), 1),
        (eur("10.0"), ent(3), 1),
        (eur("9.9"), ent(4), 1),
        (eur("9.8"), ent(5), 1),
    ]
    assert asks == [(eur("10.8"), ent(4), 1), (eur("11.1"), ent(3), 1)]
    assert market.open_orders() == {
        ids[5]: (erin.address, True, eur("10.5"), ent(1)),
        ids[1]: (alice.address, True, eur("10.0"), ent(3)),
        ids[3]: (carol.address, True, eur("9.9"), ent(4)),
        ids[7]: (alice.address, True, eur("9.8"), ent(5)),
        ids[2]: (bob.address, False, eur("10.8"), ent(4)),
        ids[8]: (bob.address, False, eur("11.1"), ent(3)),
    }
    assert book.order(ids[4]).amount == 0  # filled
    assert book.order(ids[6]).amount == 0  # never rested
    # Escrow: 3 + 4 + 3 base for sells... 4 + 3 = 7 base; bids 10.5 + 30 + 39.6 + 49 eEuro.
    assert market.base.balanceOf(book) == ent(7)
    assert market.quote.balanceOf(book) == eur("10.5") + eur("30") + eur("39.6") + eur("49")


def test_price_improvement_is_never_stranded(market, book, alice, bob):
    """A buy at 1.00 for 10 against a resting sell of 1.9 at 0.50: 1.9 trade at 0.50, the buyer
    pays 0.95 (not 1.90) and 8.1 rest at 1.00 with exactly 8.10 escrowed."""
    sell_id = market.check_place(alice, False, eur("0.50"), ent("1.9"), [], ent("1.9"))
    before = market.balances()
    fills = [Fill(sell_id, alice, eur("0.50"), ent("1.9"))]
    buy_id = market.check_place(bob, True, eur("1.00"), ent(10), fills, ent("8.1"))
    after = market.balances()
    assert before[bob.address][1] - after[bob.address][1] == eur("0.95") + eur("8.10")
    assert after[alice.address][1] - before[alice.address][1] == eur("0.95")
    assert market.quote.balanceOf(book) == eur("8.10")
    assert market.base.balanceOf(book) == 0
    # Cancelling returns exactly the 8.10 escrow: the buyer spent 0.95 for 1.9 in total.
    book.cancel(buy_id, sender=bob)
    assert market.quote.balanceOf(bob) == before[bob.address][1] - eur("0.95")
    assert market.base.balanceOf(bob) == before[bob.address][0] + ent("1.9")
    market.assert_conserved()


# --- matching -------------------------------------------------------------------------------


def test_sell_sweeps_bids_best_price_first(market, book, alice, bob, carol, dave):
    low = market.check_place(alice, True, eur("0.20"), ent(2), [], ent(2))
    high = market.check_place(bob, True, eur("0.25"), ent(1), [], ent(1))
    mid = market.check_place(carol, True, eur("0.22"), ent(3), [], ent(3))
    fills = [
        Fill(high, bob, eur("0.25"), ent(1)),
        Fill(mid, carol, eur("0.22"), ent(3)),
        Fill(low, alice, eur("0.20"), ent(1)),
    ]
    market.check_place(dave, False, eur("0.19"), ent(5), fills, 0)
    assert market.sides() == ([(eur("0.20"), ent(1), 1)], [])
    assert book.order(low).amount == ent(1)


def test_time_priority_inside_a_level(market, book, alice, bob, carol, dave):
    """Three sells at one price fill in the order they were placed, partially at the end."""
    first = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    second = market.check_place(carol, False, eur("0.30"), ent(2), [], ent(2))
    third = market.check_place(dave, False, eur("0.30"), ent(3), [], ent(3))
    assert book.depth(False, 0, 1)[0][0].orders == 3
    # Same block or not, ids grow with the queue: FIFO is the queue index.
    assert first & (2**32 - 1) == 0 and second & (2**32 - 1) == 1 and third & (2**32 - 1) == 2
    fills = [
        Fill(first, bob, eur("0.30"), ent(1)),
        Fill(second, carol, eur("0.30"), ent(2)),
        Fill(third, dave, eur("0.30"), ent("0.5")),
    ]
    market.check_place(alice, True, eur("0.30"), ent("3.5"), fills, 0)
    assert book.order(third).amount == ent("2.5")
    assert market.sides() == ([], [(eur("0.30"), ent("2.5"), 1)])
    # A later order at the same price queues behind the partially filled one.
    fourth = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    fills = [Fill(third, dave, eur("0.30"), ent("2.5")), Fill(fourth, bob, eur("0.30"), ent(1))]
    market.check_place(alice, True, eur("0.31"), ent("3.5"), fills, 0)


def test_ties_in_one_block_keep_submission_order(market, book, chain, alice, bob, carol):
    """Orders mined in the same block still queue in transaction order."""
    start = chain.blocks.height + 1
    chain.provider.auto_mine = False
    try:
        # An explicit gas limit: Ape's local default (the block limit) fits one tx per block.
        book.place(False, eur("0.40"), ent(1), False, 0, sender=bob, gas_limit=300_000)
        book.place(False, eur("0.40"), ent(1), False, 0, sender=carol, gas_limit=300_000)
        chain.mine()
    finally:
        chain.provider.auto_mine = True
    logs = list(book.OrderPlaced.range(start, chain.blocks.height + 1))
    assert [log.owner for log in logs] == [bob.address, carol.address]
    assert logs[0].block_number == logs[1].block_number
    first, second = (log.order_id for log in logs)
    assert (first & (2**32 - 1), second & (2**32 - 1)) == (0, 1)
    market.check_place(alice, True, eur("0.40"), ent(1), [Fill(first, bob, eur("0.40"), ent(1))], 0)
    assert book.order(second).amount == ent(1)


def test_consecutive_fills_against_one_maker_pay_once(market, book, alice, bob):
    a = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    b = market.check_place(bob, False, eur("0.30"), ent(2), [], ent(2))
    c = market.check_place(bob, False, eur("0.31"), ent(1), [], ent(1))
    fills = [
        Fill(a, bob, eur("0.30"), ent(1)),
        Fill(b, bob, eur("0.30"), ent(2)),
        Fill(c, bob, eur("0.31"), ent(1)),
    ]
    # `place_events` expects one eEuro transfer to bob for the three fills.
    market.check_place(alice, True, eur("0.31"), ent(4), fills, 0)


def test_buy_fully_filled_at_better_prices(market, book, alice, bob, carol):
    a = market.check_place(bob, False, eur("0.10"), ent(1), [], ent(1))
    b = market.check_place(carol, False, eur("0.11"), ent(1), [], ent(1))
    fills = [Fill(a, bob, eur("0.10"), ent(1)), Fill(b, carol, eur("0.11"), ent(1))]
    before = market.balances()
    market.check_place(alice, True, eur("0.50"), ent(2), fills, 0)
    # The buyer's limit 0.50 x 2 = 1.00 was never pulled; it paid 0.21.
    assert before[alice.address][1] - market.quote.balanceOf(alice) == eur("0.21")
    assert market.sides() == ([], [])


def test_order_rests_at_the_price_a_used_up_level_had(market, book, alice, bob):
    """A buy that uses up the asks at its own price rests there as a bid (the tick changes
    side) with the next queue index."""
    ask = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    fills = [Fill(ask, bob, eur("0.30"), ent(1))]
    bid = market.check_place(alice, True, eur("0.30"), ent(3), fills, ent(2))
    assert bid == make_id(True, eur("0.30"), 1, seq=1)
    assert market.sides() == ([(eur("0.30"), ent(2), 1)], [])


# --- immediate-or-cancel and the fill cap ---------------------------------------------------


def test_ioc_trades_what_crosses_and_takes_nothing_else(market, book, alice, bob):
    ask = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    market.check_place(bob, False, eur("0.40"), ent(1), [], ent(1))
    fills = [Fill(ask, bob, eur("0.30"), ent(1))]
    # The 4 not taken are reported: OrderClosed(reason IOC), nothing escrowed.
    market.check_place(alice, True, eur("0.35"), ent(5), fills, 0, ioc=True, reason=IOC)
    assert market.sides() == ([], [(eur("0.40"), ent(1), 1)])


def test_ioc_that_does_not_cross_reverts(market, book, alice, bob):
    """Never a silent no-op: an order that could neither trade nor rest is refused."""
    market.check_place(bob, False, eur("0.40"), ent(1), [], ent(1))
    before = market.balances()
    with ape.reverts("book: ioc order does not cross"):
        market.buy(alice, eur("0.35"), ent(5), ioc=True)
    assert_reverts(
        "book: ioc order does not cross",
        book.place,
        *(False, eur("0.40"), ent(1), True, 0),
        sender=alice,
    )
    assert market.balances() == before
    assert book.order_seq() == 0


def test_fill_cap_returns_a_rest_that_still_crosses(market, book, alice, bob, carol, dave):
    a = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    b = market.check_place(carol, False, eur("0.30"), ent(1), [], ent(1))
    market.check_place(dave, False, eur("0.30"), ent(1), [], ent(1))
    fills = [Fill(a, bob, eur("0.30"), ent(1)), Fill(b, carol, eur("0.30"), ent(1))]
    # 2 fills, then the third ask still crosses: the 3 left are not taken (a resting bid at
    # 0.30 would cross the book), and an OrderClosed says so.
    market.check_place(alice, True, eur("0.30"), ent(5), fills, 0, max_fills=2, reason=CROSSING)
    assert market.sides() == ([], [(eur("0.30"), ent(1), 1)])


def test_fill_cap_rests_a_rest_that_no_longer_crosses(market, book, alice, bob, carol):
    a = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    b = market.check_place(carol, False, eur("0.31"), ent(1), [], ent(1))
    market.check_place(carol, False, eur("0.40"), ent(1), [], ent(1))
    fills = [Fill(a, bob, eur("0.30"), ent(1)), Fill(b, carol, eur("0.31"), ent(1))]
    market.check_place(alice, True, eur("0.35"), ent(3), fills, ent(1), max_fills=2)
    assert market.sides() == ([(eur("0.35"), ent(1), 1)], [(eur("0.40"), ent(1), 1)])


def test_fill_cap_bounds(market, book, alice):
    assert book.MAX_FILLS() == 64
    assert_reverts(
        "book: fill cap too high",
        book.place,
        *(True, eur("0.30"), ent(1), False, 65),
        sender=alice,
    )
    market.check_place(alice, True, eur("0.30"), ent(1), [], ent(1), max_fills=64)


# --- no dust in the book (issue 9, finding 6) ------------------------------------------------


@pytest.mark.parametrize("is_buy", [True, False])
def test_taker_remainder_below_minimum_is_not_rested(market, book, alice, bob, is_buy):
    """1.005 against 1 resting: the 0.005 left (below the 0.01 minimum) is not rested and
    not escrowed; OrderClosed(reason 1) reports it."""
    maker = market.check_place(bob, not is_buy, eur("0.30"), ent(1), [], ent(1))
    fills = [Fill(maker, bob, eur("0.30"), ent(1))]
    taker = market.check_place(
        alice, is_buy, eur("0.30"), ent("1.005"), fills, 0, reason=BELOW_MINIMUM
    )
    assert tuple(book.order(taker)) == ("0x" + "00" * 20, False, 0, 0)
    assert market.sides() == ([], [])
    assert market.base.balanceOf(book) == market.quote.balanceOf(book) == 0


@pytest.mark.parametrize("is_buy", [True, False])
def test_taker_remainder_at_the_minimum_rests(market, book, alice, bob, is_buy):
    maker = market.check_place(bob, not is_buy, eur("0.30"), ent(1), [], ent(1))
    fills = [Fill(maker, bob, eur("0.30"), ent(1))]
    market.check_place(alice, is_buy, eur("0.30"), ent(1) + MIN_SIZE, fills, MIN_SIZE)


def test_maker_left_below_minimum_is_closed_and_refunded(market, book, alice, bob, carol):
    """An ask of 1.005: a buy of 1 leaves 0.005, below the minimum; the ask is closed and its
    0.005 base refunded in the same transaction (events: the trade, OrderClosed, the
    payment, the taker's base, the refund)."""
    ask = market.check_place(bob, False, eur("0.30"), ent("1.005"), [], ent("1.005"))
    behind = market.check_place(carol, False, eur("0.30"), ent(1), [], ent(1))
    fills = [Fill(ask, bob, eur("0.30"), ent(1))]
    closed = Fill(ask, bob, eur("0.30"), ent("0.005"))
    market.check_place(alice, True, eur("0.30"), ent(1), fills, 0, closed_maker=closed)
    assert book.order(ask).amount == 0
    assert_reverts("book: unknown order", book.cancel, ask, sender=bob)
    # The level keeps the order behind it, now at its head.
    assert market.sides() == ([], [(eur("0.30"), ent(1), 1)])
    market.check_place(
        alice, True, eur("0.30"), ent(1), [Fill(behind, carol, eur("0.30"), ent(1))], 0
    )


def test_bid_left_below_minimum_is_closed_and_its_quote_refunded(market, book, alice, bob):
    """The issue's case: a bid of 11 Wh at the lowest tick (0.001 eEuro/kWh); a sell of 10 Wh
    would leave 1 Wh escrowing 1 eEuro base unit. The bid is closed and the unit refunded."""
    bid = market.check_place(alice, True, TICK, ent("0.011"), [], ent("0.011"))
    assert market.quote.balanceOf(book) == 11
    fills = [Fill(bid, alice, TICK, ent("0.010"))]
    closed = Fill(bid, alice, TICK, ent("0.001"))
    before = market.quote.balanceOf(alice)
    market.check_place(bob, False, TICK, ent("0.010"), fills, 0, closed_maker=closed)
    assert market.quote.balanceOf(alice) - before == 1
    assert market.sides() == ([], [])
    assert market.base.balanceOf(book) == market.quote.balanceOf(book) == 0


def test_maker_left_at_the_minimum_rests(market, book, alice, bob):
    ask = market.check_place(bob, False, eur("0.30"), ent(1) + MIN_SIZE, [], ent(1) + MIN_SIZE)
    market.check_place(alice, True, eur("0.30"), ent(1), [Fill(ask, bob, eur("0.30"), ent(1))], 0)
    assert book.order(ask).amount == MIN_SIZE
    assert market.sides() == ([], [(eur("0.30"), MIN_SIZE, 1)])


def test_sweep_closes_a_dust_maker_at_its_end(market, book, alice, bob, carol, dave):
    """A sweep across levels whose last fill leaves a maker below the minimum: the level is
    used up by the close, and the best price moves on."""
    a = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    b = market.check_place(carol, False, eur("0.31"), ent("0.509"), [], ent("0.509"))
    market.check_place(carol, False, eur("0.40"), ent(1), [], ent(1))
    fills = [Fill(a, bob, eur("0.30"), ent(1)), Fill(b, carol, eur("0.31"), ent("0.5"))]
    closed = Fill(b, carol, eur("0.31"), ent("0.009"))
    market.check_place(dave, True, eur("0.35"), ent("1.5"), fills, 0, closed_maker=closed)
    assert (book.best_bid(), book.best_ask()) == (0, eur("0.40"))
    assert market.sides() == ([], [(eur("0.40"), ent(1), 1)])


# --- never a silent no-op (issue 9, finding 7) -----------------------------------------------


def _queue_with_holes(market, price: int, maker, holes: int, ahead=None, behind=None) -> list:
    """At `price`, a new ask level: `ahead`'s order (if any), then `holes` orders of `maker`,
    all cancelled from the back (so each cancel but the first one's leaves a hole inside the
    queue), then `behind`'s order. Returns the ids of `ahead` (or None) and `behind`."""
    book = market.book
    assert price not in [lv.price for lv in book.depth(False, 0, 0)[0]]
    order = book.place.encode_input(False, price, MIN_SIZE, False, 0)
    senders = ([ahead] if ahead is not None else []) + [maker] * holes + [behind]
    market.send_many([(sender, order) for sender in senders])
    ids = [make_id(False, price, i) for i in range(len(senders))]
    first = 1 if ahead is not None else 0
    assert book.order(ids[first]).owner == maker.address
    market.send_many([(maker, book.cancel.encode_input(i)) for i in reversed(ids[first:-1])])
    assert book.depth(False, 0, 0)[0][0].orders == len(senders) - holes
    return [ids[0] if ahead is not None else None, ids[-1]]


def test_many_cancelled_orders_ahead_revert_with_a_reason_and_compact_clears_them(
    market, book, alice, bob, carol, dave
):
    """The issue's case: 129 cancelled orders at one price (the head's cancel moves the head,
    so 128 holes are left ahead of an open order), then a normal buy at that price. It used
    to return 0, emit nothing and use an id: matching stepped over `MAX_SKIPS` (128) holes,
    stopped before its first fill, and the rest still crossed so it did not rest either.
    Now it reverts with a reason (sent for real it would take Ape seconds to render), and
    anyone can `compact` the holes away."""
    assert (book.MAX_SKIPS(), book.MAX_COMPACT()) == (128, 1_024)
    price = eur("0.30")
    _, live = _queue_with_holes(market, price, bob, 129, behind=carol)
    assert market.sides() == ([], [(price, MIN_SIZE, 1)])
    seq = book.order_seq()
    for ioc in (False, True):
        assert_reverts(
            "book: too many cancelled orders ahead",
            book.place,
            *(True, price, MIN_SIZE, ioc, 0),
            sender=alice,
        )
    assert book.order_seq() == seq  # no id used
    # Anyone may compact; it stops at the first open order.
    assert_reverts("book: bad price", book.compact, *(price + 1, 0), sender=dave)
    assert book.compact.call(price, 5, sender=dave) == 5
    tx = book.compact(price, 0, sender=dave)
    assert tx.events == [book.Compacted(price=price, cleared=128)]
    assert_reverts("book: no cancelled orders at the head", book.compact, *(price, 0), sender=dave)
    assert market.sides() == ([], [(price, MIN_SIZE, 1)])
    market.check_place(alice, True, price, MIN_SIZE, [Fill(live, carol, price, MIN_SIZE)], 0)
    # An empty level has nothing to compact.
    assert_reverts("book: no cancelled orders at the head", book.compact, *(price, 0), sender=dave)


def test_holes_after_a_fill_stop_matching_and_the_next_order_goes_on(
    market, book, alice, bob, carol, erin
):
    """An open order, 129 holes, an open order: a buy of both fills the first, steps over
    `MAX_SKIPS` holes and stops; the rest still crosses, so it is reported (OrderClosed,
    reason 3) and not taken. The head advanced for good: the next buy reaches the last."""
    price = eur("0.30")
    first, last = _queue_with_holes(market, price, bob, 129, ahead=erin, behind=carol)
    fills = [Fill(first, erin, price, MIN_SIZE)]
    market.check_place(alice, True, price, 2 * MIN_SIZE, fills, 0, reason=CROSSING)
    market.check_place(
        alice, True, price, 2 * MIN_SIZE, [Fill(last, carol, price, MIN_SIZE)], MIN_SIZE
    )
    assert market.sides() == ([(price, MIN_SIZE, 1)], [])


# --- cancellation ---------------------------------------------------------------------------


def test_cancel_refunds_a_buy(market, book, alice):
    before = market.balances()
    order_id = market.check_place(alice, True, eur("0.25"), ent(4), [], ent(4))
    tx = book.cancel(order_id, sender=alice)
    assert tx.events == [
        book.OrderCancelled(order_id=order_id, owner=alice, amount=ent(4)),
        market.quote.Transfer(sender=book, receiver=alice, value=eur("1.00")),
    ]
    assert market.balances() == before
    assert book.order(order_id).amount == 0
    assert market.sides() == ([], [])
    market.assert_conserved()


def test_cancel_refunds_a_sell(market, book, bob):
    before = market.balances()
    order_id = market.check_place(bob, False, eur("0.25"), ent("2.5"), [], ent("2.5"))
    tx = book.cancel(order_id, sender=bob)
    assert tx.events == [
        book.OrderCancelled(order_id=order_id, owner=bob, amount=ent("2.5")),
        market.base.Transfer(sender=book, receiver=bob, value=ent("2.5")),
    ]
    assert market.balances() == before
    market.assert_conserved()


def test_cancel_a_partly_filled_order_refunds_the_rest(market, book, alice, bob):
    bid = market.check_place(alice, True, eur("0.25"), ent(4), [], ent(4))
    fills = [Fill(bid, alice, eur("0.25"), ent(1))]
    market.check_place(bob, False, eur("0.25"), ent(1), fills, 0)
    before = market.balances()
    tx = book.cancel(bid, sender=alice)
    assert tx.events == [
        book.OrderCancelled(order_id=bid, owner=alice, amount=ent(3)),
        market.quote.Transfer(sender=book, receiver=alice, value=eur("0.75")),
    ]
    after = market.balances()
    assert after[alice.address][1] - before[alice.address][1] == eur("0.75")
    market.assert_conserved()


def test_cancel_inside_a_queue_leaves_a_hole_the_next_taker_steps_over(
    market, book, alice, bob, carol, dave
):
    a = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    b = market.check_place(carol, False, eur("0.30"), ent(1), [], ent(1))
    c = market.check_place(dave, False, eur("0.30"), ent(1), [], ent(1))
    book.cancel(b, sender=carol)
    assert market.sides() == ([], [(eur("0.30"), ent(2), 2)])
    market.assert_conserved()
    fills = [Fill(a, bob, eur("0.30"), ent(1)), Fill(c, dave, eur("0.30"), ent(1))]
    market.check_place(alice, True, eur("0.30"), ent(2), fills, 0, max_fills=2)
    assert market.sides() == ([], [])


def test_cancel_of_the_best_level_moves_the_best_price(market, book, alice, bob):
    low = market.check_place(alice, True, eur("0.20"), ent(1), [], ent(1))
    high = market.check_place(alice, True, eur("0.25"), ent(1), [], ent(1))
    ask_far = market.check_place(bob, False, eur("0.40"), ent(1), [], ent(1))
    ask_near = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    book.cancel(high, sender=alice)
    book.cancel(ask_near, sender=bob)
    assert (book.best_bid(), book.best_ask()) == (eur("0.20"), eur("0.40"))
    book.cancel(low, sender=alice)
    book.cancel(ask_far, sender=bob)
    assert (book.best_bid(), book.best_ask()) == (0, 0)
    market.assert_conserved()
    assert market.base.balanceOf(book) == market.quote.balanceOf(book) == 0


def test_cancel_someone_elses_order_reverts(market, book, alice, bob, attacker, deployer):
    order_id = market.check_place(alice, True, eur("0.25"), ent(1), [], ent(1))
    with ape.reverts("book: not owner"):
        book.cancel(order_id, sender=bob)
    for caller in (attacker, deployer):
        assert_reverts("book: not owner", book.cancel, order_id, sender=caller)
    assert book.order(order_id).amount == ent(1)
    market.assert_conserved()


def test_cancel_unknown_filled_or_cancelled_order_reverts(market, book, alice, bob):
    order_id = market.check_place(alice, True, eur("0.25"), ent(1), [], ent(1))
    # Nothing there, the right place with the wrong side or sequence: all unknown.
    for bogus in (0, order_id + 1, order_id ^ (1 << 56), order_id + (2 << 56), order_id | 1 << 200):
        assert_reverts("book: unknown order", book.cancel, bogus, sender=alice)
    book.cancel(order_id, sender=alice)
    with ape.reverts("book: unknown order"):
        book.cancel(order_id, sender=alice)
    sell = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    market.check_place(alice, True, eur("0.30"), ent(1), [Fill(sell, bob, eur("0.30"), ent(1))], 0)
    assert_reverts("book: unknown order", book.cancel, sell, sender=bob)
    market.assert_conserved()


# --- input checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "price, amount, reason",
    [
        (eur("0.25"), 0, "book: zero amount"),
        (0, ent(1), "book: zero price"),
        (eur("0.2505"), ent(1), "book: price not on tick"),
        (1, ent(1), "book: price not on tick"),
        (2**24 * TICK, ent(1), "book: price out of range"),
        (eur("0.25"), ent(1) + 1, "book: amount not on lot"),
        (eur("0.25"), LOT // 2, "book: amount not on lot"),
        (eur("0.25"), MIN_SIZE - LOT, "book: amount below minimum"),
        (eur("0.25"), 2**64 * LOT, "book: amount too large"),
    ],
)
@pytest.mark.parametrize("is_buy", [True, False])
def test_bad_orders_revert(market, book, alice, is_buy, price, amount, reason):
    assert_reverts(reason, book.place, *(is_buy, price, amount, False, 0), sender=alice)


def test_highest_tick_and_minimum_size_are_accepted(market, book, alice, bob):
    top = (2**24 - 1) * TICK
    market.check_place(bob, False, top, MIN_SIZE, [], MIN_SIZE)
    market.check_place(alice, True, TICK, MIN_SIZE, [], MIN_SIZE)
    assert (book.best_bid(), book.best_ask()) == (TICK, top)


def test_self_trade_reverts(market, book, alice, bob):
    mine = market.check_place(alice, False, eur("0.30"), ent(1), [], ent(1))
    market.check_place(bob, False, eur("0.31"), ent(1), [], ent(1))
    before = market.balances()
    with ape.reverts("book: self trade"):
        market.buy(alice, eur("0.31"), ent(2))
    assert_reverts(
        "book: self trade", book.place, *(True, eur("0.30"), ent(1), True, 0), sender=alice
    )
    assert market.balances() == before
    book.cancel(mine, sender=alice)
    market.assert_conserved()


def test_self_trade_only_when_reached(market, book, alice, bob):
    """Another maker ahead of one's own order at the same price can be taken; reaching one's
    own order reverts the whole placement."""
    theirs = market.check_place(bob, False, eur("0.30"), ent(1), [], ent(1))
    mine = market.check_place(alice, False, eur("0.30"), ent(1), [], ent(1))
    assert_reverts(
        "book: self trade", book.place, *(True, eur("0.30"), ent(2), False, 0), sender=alice
    )
    market.check_place(
        alice, True, eur("0.30"), ent(1), [Fill(theirs, bob, eur("0.30"), ent(1))], 0
    )
    assert book.order(mine).amount == ent(1)


def test_missing_allowance_or_balance_reverts(market, book, alice, attacker):
    args = (True, eur("0.30"), ent(1), False, 0)
    with ape.reverts("erc20: insufficient allowance"):
        market.buy(attacker, eur("0.30"), ent(1))
    market.quote.approve(book, MAX_UINT, sender=attacker)
    assert_reverts("erc20: transfer amount exceeds balance", book.place, *args, sender=attacker)
    market.quote.approve(book, 0, sender=alice)
    assert_reverts("erc20: insufficient allowance", book.place, *args, sender=alice)
    market.assert_conserved()


# --- permit ---------------------------------------------------------------------------------


def test_place_with_permit(market, book, eeuro_banked, banker, attacker):
    from tests.conftest import sign_permit

    eeuro_banked.mint(attacker, 10 * EEURO, sender=banker)
    escrow = quote_of(eur("0.25"), ent(4))
    deadline = ape.chain.pending_timestamp + 3600
    v, r, s = sign_permit(eeuro_banked, attacker, book, escrow, deadline)
    tx = book.place_with_permit(
        True, eur("0.25"), ent(4), False, 0, escrow, deadline, v, r, s, sender=attacker
    )
    order_id = placed_id(tx)
    assert tx.events == [
        eeuro_banked.Approval(owner=attacker, spender=book, value=escrow),
        book.OrderPlaced(
            order_id=order_id, owner=attacker, is_buy=True, price=eur("0.25"), amount=ent(4)
        ),
        eeuro_banked.Approval(owner=attacker, spender=book, value=0),
        eeuro_banked.Transfer(sender=attacker, receiver=book, value=escrow),
    ]
    assert eeuro_banked.allowance(attacker, book) == 0
    # A replayed (now invalid) permit is ignored; without allowance the pull fails.
    with ape.reverts("erc20: insufficient allowance"):
        book.place_with_permit(
            True, eur("0.25"), ent(4), False, 0, escrow, deadline, v, r, s, sender=attacker
        )
    book.cancel(order_id, sender=attacker)
    assert eeuro_banked.balanceOf(attacker) == 10 * EEURO


# --- views ----------------------------------------------------------------------------------


def test_depth_and_best_prices(market, book, alice, bob, carol):
    for price, amount in (("0.20", 1), ("0.21", 2), ("0.19", 3), ("0.21", 4)):
        market.check_place(alice, True, eur(price), ent(amount), [], ent(amount))
    for price, amount in (("0.30", 1), ("0.29", 2), ("0.35", 3)):
        market.check_place(bob, False, eur(price), ent(amount), [], ent(amount))
    assert (book.best_bid(), book.best_ask()) == (eur("0.21"), eur("0.29"))
    levels, cursor = book.depth(True, 0, 2)
    assert [tuple(lv) for lv in levels] == [(eur("0.21"), ent(6), 2), (eur("0.20"), ent(1), 1)]
    assert cursor == eur("0.19")  # the price of the next level
    levels, cursor = book.depth(True, cursor, 2)
    assert [tuple(lv) for lv in levels] == [(eur("0.19"), ent(3), 1)] and cursor == 0
    levels, cursor = book.depth(False, 0, 0)
    assert [tuple(lv) for lv in levels] == [
        (eur("0.29"), ent(2), 1),
        (eur("0.30"), ent(1), 1),
        (eur("0.35"), ent(3), 1),
    ]
    assert cursor == 0


def test_levels_far_apart_are_found(market, book, alice, bob):
    """Levels in different bitmap words (and mid words) are still walked in price order."""
    prices = [TICK, 255 * TICK, 256 * TICK, 70_000 * TICK, 2**24 * TICK - TICK]
    for price in prices:
        market.check_place(bob, False, price, MIN_SIZE, [], MIN_SIZE)
    assert [lv.price for lv in book.depth(False, 0, 0)[0]] == prices
    fills = [(p, MIN_SIZE) for p in prices]
    tx = market.buy(alice, prices[-1], MIN_SIZE * 5)
    assert [(log.price, log.amount) for log in tx.events if log.event_name == "Traded"] == fills
    assert market.sides() == ([], [])
    for price in reversed(prices):
        market.check_place(alice, True, price, MIN_SIZE, [], MIN_SIZE)
    assert [lv.price for lv in book.depth(True, 0, 0)[0]] == list(reversed(prices))
    # Pages of one level walk the bitmap words too.
    found, cursor = [], 0
    while True:
        page, cursor = book.depth(True, cursor, 1)
        found += [lv.price for lv in page]
        if cursor == 0:
            break
    assert found == list(reversed(prices))
    market.assert_conserved()


def test_open_orders_pages_through_the_book(market, book, alice, bob, carol):
    """Each open order comes with its side, price and remaining amount."""
    mine = []
    for i in range(7):
        price = eur("0.20") - i * TICK
        order_id = market.check_place(alice, True, price, ent(1), [], ent(1))
        mine.append((order_id, True, price, ent(1)))
        market.check_place(bob, True, price, ent(1), [], ent(1))
    sell = market.check_place(alice, False, eur("0.50"), ent(2), [], ent(2))
    # A partial fill: the view shows what is left.
    market.check_place(
        carol, True, eur("0.50"), ent("0.5"), [Fill(sell, alice, eur("0.50"), ent("0.5"))], 0
    )
    mine.append((sell, False, eur("0.50"), ent("1.5")))
    page, cursor = book.open_orders(alice, 0, 3)
    assert [tuple(o) for o in page] == mine[:3] and cursor != 0
    page2, cursor = book.open_orders(alice, cursor, 3)
    assert [tuple(o) for o in page2] == mine[3:6] and cursor != 0
    page3, cursor = book.open_orders(alice, cursor, 3)
    assert [tuple(o) for o in page3] == mine[6:] and cursor == 0
    everything, cursor = book.open_orders(alice, 0, 0)
    assert [tuple(o) for o in everything] == mine and cursor == 0
    assert [o.order_id for o in everything] == [o[0] for o in mine]
    assert len(book.open_orders(bob, 0, 100)[0]) == 7
    empty, cursor = book.open_orders(book, 0, 10)
    assert list(empty) == [] and cursor == 0


def test_depth_pages_through_more_than_a_page_of_levels(market, book, alice, bob):
    """105 bid levels: `depth` returns `MAX_PAGE` (100) of them and the price of the next as
    the cursor, then the rest with cursor 0 (it used to stop at 100, with no cursor)."""
    assert book.MAX_PAGE() == 100
    prices = [eur("0.50") - i * TICK for i in range(105)]
    market.send_many(
        [(alice, book.place.encode_input(True, p, MIN_SIZE, False, 0)) for p in prices]
    )
    market.send_many([(bob, book.place.encode_input(False, eur("0.60"), MIN_SIZE, False, 0))])
    page, cursor = book.depth(True, 0, 0)
    assert [lv.price for lv in page] == prices[:100] and cursor == prices[100]
    page, cursor = book.depth(True, cursor, 500)  # larger than a page: a page
    assert [lv.price for lv in page] == prices[100:] and cursor == 0
    assert all(tuple(lv)[1:] == (MIN_SIZE, 1) for lv in page)
    page, cursor = book.depth(True, prices[7], 3)
    assert [lv.price for lv in page] == prices[7:10] and cursor == prices[10]
    # A cursor whose level is gone: the page starts at the next level beyond it.
    order_id = make_id(True, prices[10], 0)
    book.cancel(order_id, sender=alice)
    page, cursor = book.depth(True, prices[10], 2)
    assert [lv.price for lv in page] == prices[11:13] and cursor == prices[13]
    # A cursor better than the best price (the best moved): the page starts at the best.
    page, _ = book.depth(True, eur("0.55"), 1)
    assert [lv.price for lv in page] == prices[:1]
    # Asks: the cursor never leaks into the other side.
    assert book.depth(False, prices[50], 0) == ([(eur("0.60"), MIN_SIZE, 1)], 0)
    assert book.depth(False, eur("0.70"), 0) == ([], 0)
    for bad in (1, eur("0.30") + 1, 2**24 * TICK):
        assert_reverts("book: bad cursor", book.depth, *(True, bad, 0), sender=alice)
    # The market helper follows the cursor: conservation covers all 104 bid levels.
    bids, asks = market.sides()
    assert len(bids) == 104 and len(asks) == 1


def test_order_view(market, book, alice):
    order_id = market.check_place(alice, False, eur("0.33"), ent(2), [], ent(2))
    assert tuple(book.order(order_id)) == (alice.address, False, eur("0.33"), ent(2))
    assert tuple(book.order(order_id + 1)) == ("0x" + "00" * 20, False, 0, 0)


# --- governance -----------------------------------------------------------------------------


def test_governance_sets_rules_for_new_orders(market, book, deployer, alice, bob):
    old = market.check_place(bob, False, eur("0.301"), ent("0.011"), [], ent("0.011"))
    tx = book.set_rules(10 * TICK, 10 * LOT, 100 * LOT, sender=deployer)
    assert tx.events == [book.RulesSet(tick_size=10 * TICK, lot_size=10 * LOT, min_size=100 * LOT)]
    assert (book.tick_size(), book.lot_size(), book.min_size()) == (10 * TICK, 10 * LOT, 100 * LOT)
    for price, amount, reason in (
        (eur("0.301"), ent("0.1"), "book: price not on tick"),
        (eur("0.31"), ent("0.105"), "book: amount not on lot"),
        (eur("0.31"), ent("0.09"), "book: amount below minimum"),
    ):
        assert_reverts(reason, book.place, *(True, price, amount, False, 0), sender=alice)
    # The old order keeps its finer terms and still fills exactly; the 0.089 left of the
    # buy are below the new minimum (0.1): not rested, nothing escrowed.
    fills = [Fill(old, bob, eur("0.301"), ent("0.011"))]
    market.check_place(alice, True, eur("0.31"), ent("0.1"), fills, 0, reason=BELOW_MINIMUM)
    # A maker the new minimum's partial fill leaves below it is closed and refunded.
    maker = market.check_place(bob, False, eur("0.31"), ent("0.15"), [], ent("0.15"))
    closed = Fill(maker, bob, eur("0.31"), ent("0.05"))
    fills = [Fill(maker, bob, eur("0.31"), ent("0.1"))]
    market.check_place(alice, True, eur("0.31"), ent("0.1"), fills, 0, closed_maker=closed)
    assert market.sides() == ([], [])


@pytest.mark.parametrize(
    "rules, reason",
    [
        ((0, LOT, MIN_SIZE), "book: tick not a price unit multiple"),
        ((TICK + 1, LOT, MIN_SIZE), "book: tick not a price unit multiple"),
        ((TICK // 2, LOT, MIN_SIZE), "book: tick not a price unit multiple"),
        ((TICK, 0, MIN_SIZE), "book: lot not an amount unit multiple"),
        ((TICK, LOT + 1, MIN_SIZE), "book: lot not an amount unit multiple"),
        ((TICK, 2 * LOT, 3 * LOT), "book: min size not a lot multiple"),
        ((TICK, 2 * LOT, LOT), "book: min size not a lot multiple"),
        ((2**32 * TICK, LOT, MIN_SIZE), "book: step too large"),
        ((TICK, 2**32 * LOT, 2**32 * LOT), "book: step too large"),
        ((TICK, LOT, 2**64 * LOT), "book: min size too large"),
    ],
)
def test_bad_rules_revert(book, deployer, rules, reason):
    assert_reverts(reason, book.set_rules, *rules, sender=deployer)
    assert (book.tick_size(), book.lot_size(), book.min_size()) == (TICK, LOT, MIN_SIZE)


@pytest.mark.parametrize(
    "role", ["alice", "bob", "carol", "dave", "attacker", "banker", "treasury", "council_stand_in"]
)
def test_governance_calls_by_others_revert(book, role, request):
    """Every role but governance, on every governance entry point (see also the hand-over
    test, which sends the reverting transaction for real)."""
    caller = request.getfixturevalue(role)
    reason = "ownable: caller is not the owner"
    assert_reverts(reason, book.set_rules, *(10 * TICK, LOT, MIN_SIZE), sender=caller)
    assert_reverts(reason, book.transfer_ownership, caller, sender=caller)
    assert (book.tick_size(), book.lot_size(), book.min_size()) == (TICK, LOT, MIN_SIZE)


def test_governance_hands_over_to_council(book, deployer, council_stand_in):
    tx = book.transfer_ownership(council_stand_in, sender=deployer)
    assert tx.events == [
        book.OwnershipTransferred(previous_owner=deployer, new_owner=council_stand_in)
    ]
    with ape.reverts("ownable: caller is not the owner"):
        book.set_rules(2 * TICK, LOT, MIN_SIZE, sender=deployer)
    book.set_rules(2 * TICK, LOT, MIN_SIZE, sender=council_stand_in)
    assert book.tick_size() == 2 * TICK
    with ape.reverts("ownable: new owner is the zero address"):
        book.transfer_ownership("0x" + "00" * 20, sender=council_stand_in)
    assert not hasattr(book, "renounce_ownership")
