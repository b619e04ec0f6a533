"""Stateful property test of the order book (SPEC §5, issue 5) against a reference model.

Random traders place (sometimes IOC, sometimes with a fill cap), cancel and try to cancel each
other's orders on a narrow band of prices, so that orders cross often. A plain-Python
continuous double auction (price then time priority, fills at the maker's price) predicts
every step; after every step:

- the trades (maker order, maker, taker, price, amount) and the ids are the model's;
- every party's balances changed exactly as the trades and the escrow say, so a trade moves
  value only between its two parties (and the book);
- the book's token balances equal the escrow of its open orders, its best prices and depth
  are the model's, and it is never crossed;

and at the end of every example everything is cancelled and the book holds nothing.

50 examples x 30 steps by default; set POWERHIVE_FUZZ_EXAMPLES for more. Each example starts
from a chain snapshot, so examples are independent and cheap to reset.
"""

import os
from dataclasses import dataclass, field

import pytest
from ape import chain
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from scripts._orderbook import deploy_orderbook
from tests.orderbook_fixtures import (
    EEURO,
    ENT,
    MAX_UINT,
    MIN_SIZE,
    TICK,
    Fill,
    Market,
    assert_reverts,
    make_id,
    quote_of,
)

EXAMPLES = int(os.environ.get("POWERHIVE_FUZZ_EXAMPLES", "50"))
TRADED = keccak(text="Traded(address,address,uint256,uint256,uint256,uint256)")
PLACED = keccak(text="OrderPlaced(uint256,address,bool,uint256,uint256)")
CANCELLED = keccak(text="OrderCancelled(uint256,address,uint256)")
TRANSFER = keccak(text="Transfer(address,address,uint256)")
STEPS = 30
TICKS = range(95, 106)  # 0.095 .. 0.105 eEuro: a narrow band, so that orders cross often
MAX_FILLS = 64
TRADERS = 4


def send(sender, method, *args) -> list[tuple]:
    """Sends `method(*args)` from `sender` straight to the node (Anvil's test accounts are
    unlocked) and returns the receipt's logs as `(address, topic0, topics, words)`.

    Ape's own transaction path (gas estimation, receipt decoding) is ~5x slower, and this
    test sends thousands of transactions; the unit tests use Ape's path.
    """
    web3 = chain.provider.web3
    tx = {
        "from": sender.address,
        "to": method.contract.address,
        "data": "0x" + bytes(method.encode_input(*args)).hex(),
        "gas": hex(3_000_000),
    }
    response = web3.provider.make_request("eth_sendTransaction", [tx])
    assert "result" in response, response
    receipt = web3.eth.wait_for_transaction_receipt(response["result"], poll_latency=0.005)
    assert receipt["status"] == 1, f"{method} reverted"
    return [_log(entry) for entry in receipt["logs"]]


def _log(entry) -> tuple:
    topics = [bytes(t) for t in entry["topics"]]
    data = bytes(entry["data"])
    words = tuple(int.from_bytes(data[i : i + 32], "big") for i in range(0, len(data), 32))
    return (
        entry["address"].lower(),
        topics[0],
        tuple(int.from_bytes(t, "big") for t in topics[1:]),
        words,
    )


def _int(account) -> int:
    return int(account.address, 16)


def expected_logs(market, taker, is_buy, order_id, fills, price, rest) -> list[tuple]:
    """The logs of a placement, in the form `send` returns (see `Market.place_events`)."""
    book, base, quote = (c.address.lower() for c in (market.book, market.base, market.quote))
    pay, receive = (quote, base) if is_buy else (base, quote)
    logs = [
        (
            book,
            TRADED,
            (_int(f.maker), _int(taker), f.maker_order_id),
            (order_id, f.price, f.amount),
        )
        for f in fills
    ]
    if rest:
        logs.append((book, PLACED, (order_id, _int(taker)), (int(is_buy), price, rest)))
    payments: list[list[int]] = []
    for f in fills:
        value = quote_of(f.price, f.amount) if is_buy else f.amount
        if payments and payments[-1][0] == _int(f.maker):
            payments[-1][1] += value
        else:
            payments.append([_int(f.maker), value])
    logs += [(pay, TRANSFER, (_int(taker), maker), (value,)) for maker, value in payments]
    received = sum(f.amount if is_buy else quote_of(f.price, f.amount) for f in fills)
    if received:
        logs.append((receive, TRANSFER, (int(book, 16), _int(taker)), (received,)))
    if rest:
        escrow = quote_of(price, rest) if is_buy else rest
        logs.append((pay, TRANSFER, (_int(taker), int(book, 16)), (escrow,)))
    return logs


@dataclass
class Resting:
    owner: object
    is_buy: bool
    price: int
    amount: int


@dataclass
class Model:
    """The book as it should be: open orders, FIFO queues per (side, price), the queue tail
    of every tick (it is what order ids are built from) and the sequence of crossing orders."""

    orders: dict[int, Resting] = field(default_factory=dict)
    queues: dict[tuple[bool, int], list[int]] = field(default_factory=dict)
    tails: dict[int, int] = field(default_factory=dict)
    seq: int = 0

    def best(self, is_buy: bool) -> int | None:
        prices = [p for (side, p), q in self.queues.items() if side == is_buy and q]
        if not prices:
            return None
        return max(prices) if is_buy else min(prices)

    def crosses(self, is_buy: bool, price: int) -> bool:
        best = self.best(not is_buy)
        return best is not None and (best <= price if is_buy else best >= price)

    def place(self, taker, is_buy: bool, price: int, amount: int, ioc: bool, max_fills: int):
        """Applies a placement; returns (fills, rest, order id), or None for a self trade."""
        crossing = self.crosses(is_buy, price)
        if crossing:
            self.seq += 1
        order_id = make_id(is_buy, price, self.tails.get(price // TICK, 0), self.seq * crossing)
        fills: list[Fill] = []
        remaining = amount
        while remaining and len(fills) < (max_fills or MAX_FILLS) and self.crosses(is_buy, price):
            best = self.best(not is_buy)
            queue = self.queues[(not is_buy, best)]
            maker = self.orders[queue[0]]
            if maker.owner == taker:
                return None
            fill = min(remaining, maker.amount)
            fills.append(Fill(queue[0], maker.owner, best, fill))
            maker.amount -= fill
            remaining -= fill
            if maker.amount == 0:
                del self.orders[queue.pop(0)]
        rest = remaining if remaining and not ioc and not self.crosses(is_buy, price) else 0
        if rest:
            self.orders[order_id] = Resting(taker, is_buy, price, rest)
            self.queues.setdefault((is_buy, price), []).append(order_id)
            self.tails[price // TICK] = self.tails.get(price // TICK, 0) + 1
        return fills, rest, order_id

    def copy(self) -> "Model":
        """An independent copy (accounts are shared, not copied)."""
        return Model(
            {i: Resting(o.owner, o.is_buy, o.price, o.amount) for i, o in self.orders.items()},
            {k: list(q) for k, q in self.queues.items()},
            dict(self.tails),
            self.seq,
        )

    def cancel(self, order_id: int) -> Resting:
        order = self.orders.pop(order_id)
        self.queues[(order.is_buy, order.price)].remove(order_id)
        return order

    def levels(self, is_buy: bool) -> list[tuple[int, int, int]]:
        found = [
            (p, sum(self.orders[i].amount for i in q), len(q))
            for (side, p), q in self.queues.items()
            if side == is_buy and q
        ]
        return sorted(found, reverse=is_buy)

    def escrow(self) -> tuple[int, int]:
        base = sum(o.amount for o in self.orders.values() if not o.is_buy)
        quote = sum(quote_of(o.price, o.amount) for o in self.orders.values() if o.is_buy)
        return base, quote


class BookMachine(RuleBasedStateMachine):
    """Set `market` before running."""

    market: Market

    def __init__(self):
        super().__init__()
        self.snapshot = chain.snapshot()
        self.model = Model()

    @rule(
        who=st.integers(0, TRADERS - 1),
        is_buy=st.booleans(),
        tick=st.sampled_from(TICKS),
        lots=st.integers(1, 4),
        max_fills=st.sampled_from([0, 0, 1, 2, 3]),
    )
    def place(self, who, is_buy, tick, lots, max_fills):
        self._place(who, is_buy, tick, lots, False, max_fills)

    @rule(
        who=st.integers(0, TRADERS - 1),
        is_buy=st.booleans(),
        tick=st.sampled_from(TICKS),
        lots=st.integers(1, 8),
        max_fills=st.sampled_from([0, 1, 2]),
    )
    def place_ioc(self, who, is_buy, tick, lots, max_fills):
        self._place(who, is_buy, tick, lots, True, max_fills)

    @initialize(lots=st.lists(st.integers(1, 3), min_size=12, max_size=12))
    def ladder(self, lots):
        """Start from a book with depth: asks 0.101..0.105 and bids 0.099..0.095, two orders
        at the innermost prices, owned by the first three traders in turn."""
        ticks = [(False, t) for t in (101, 101, 102, 103, 104, 105)]
        ticks += [(True, t) for t in (99, 99, 98, 97, 96, 95)]
        for i, ((is_buy, tick), n) in enumerate(zip(ticks, lots, strict=True)):
            self._place(i % 3, is_buy, tick, n, False, 0)

    @rule(
        data=st.data(),
        is_buy=st.booleans(),
        lots=st.integers(4, 20),
        ioc=st.booleans(),
        max_fills=st.sampled_from([0, 0, 2, 3, 5]),
    )
    def sweep(self, data, is_buy, lots, ioc, max_fills):
        """A large order at the far end of the band, mostly by a trader with no order on the
        other side (so that it takes several orders and levels rather than hitting its own)."""
        clear = [
            i
            for i, trader in enumerate(self.market.traders)
            if all(o.owner != trader or o.is_buy == is_buy for o in self.model.orders.values())
        ]
        who = data.draw(st.sampled_from(clear or range(TRADERS)))
        tick = TICKS[-1] if is_buy else TICKS[0]
        self._place(who, is_buy, tick, lots, ioc, max_fills)

    def _place(self, who, is_buy, tick, lots, ioc, max_fills):
        market, model = self.market, self.model
        taker = market.traders[who]
        price, amount = tick * TICK, lots * MIN_SIZE
        predicted = model.copy().place(taker, is_buy, price, amount, ioc, max_fills)
        if predicted is None:
            args = (is_buy, price, amount, ioc, max_fills)
            assert_reverts("book: self trade", market.book.place, *args, sender=taker)
            return
        fills, rest, order_id = model.place(taker, is_buy, price, amount, ioc, max_fills)
        before = market.balances()
        logs = send(taker, market.book.place, is_buy, price, amount, ioc, max_fills)
        assert logs == expected_logs(market, taker, is_buy, order_id, fills, price, rest)
        market.assert_changes(before, market.expected_changes(taker, is_buy, fills, price, rest))

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data())
    def cancel(self, data):
        order_id = data.draw(st.sampled_from(sorted(self.model.orders)))
        order = self.model.cancel(order_id)
        before = self.market.balances()
        logs = send(order.owner, self.market.book.cancel, order_id)
        refund = quote_of(order.price, order.amount) if order.is_buy else order.amount
        book = self.market.book.address.lower()
        token = (self.market.quote if order.is_buy else self.market.base).address.lower()
        assert logs == [
            (book, CANCELLED, (order_id, _int(order.owner)), (order.amount,)),
            (token, TRANSFER, (int(book, 16), _int(order.owner)), (refund,)),
        ]
        changes = {self.market.book.address: (0, -refund) if order.is_buy else (-refund, 0)}
        changes[order.owner.address] = (0, refund) if order.is_buy else (refund, 0)
        self.market.assert_changes(before, changes)

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data(), who=st.integers(0, TRADERS - 1))
    def cancel_someone_elses(self, data, who):
        others = [i for i, o in self.model.orders.items() if o.owner != self.market.traders[who]]
        if not others:
            return
        order_id = data.draw(st.sampled_from(sorted(others)))
        caller = self.market.traders[who]
        assert_reverts("book: not owner", self.market.book.cancel, order_id, sender=caller)

    @invariant()
    def book_matches_model(self):
        market, model = self.market, self.model
        balances, bids, asks = market.state()
        assert bids == model.levels(True)
        assert asks == model.levels(False)
        held = balances[market.book.address]
        assert held == model.escrow(), "book balances != escrow of its open orders"
        if bids and asks:
            assert bids[0][0] < asks[0][0], "crossed book"

    def teardown(self):
        try:
            # Everyone cancels everything: the book must then hold nothing.
            for order_id, order in list(self.model.orders.items()):
                send(order.owner, self.market.book.cancel, order_id)
                self.model.cancel(order_id)
            balances, bids, asks = self.market.state()
            assert balances[self.market.book.address] == (0, 0)
            assert (bids, asks) == ([], [])
        finally:
            chain.restore(self.snapshot)


@pytest.fixture(scope="module")
def market(deployer, hvt, eeuro_banked, banker, treasury, alice, bob, carol, dave):
    book = deploy_orderbook(deployer, hvt, eeuro_banked, deployer)
    traders = [alice, bob, carol, dave]
    for trader in traders:
        hvt.transfer(trader, 100 * ENT, sender=treasury)
        eeuro_banked.mint(trader, 100 * EEURO, sender=banker)
        hvt.approve(book, MAX_UINT, sender=trader)
        eeuro_banked.approve(book, MAX_UINT, sender=trader)
    return Market(book, hvt, eeuro_banked, traders)


def test_order_book_stateful(market):
    BookMachine.market = market
    run_state_machine_as_test(
        BookMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    market.assert_conserved(orders=True, supply=True)
