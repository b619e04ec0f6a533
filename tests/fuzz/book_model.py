"""The reference model of the order book for `test_orderbook_stateful.py`: a plain-Python
continuous double auction (price then time priority, fills at the maker's price) that
predicts every trade, order id, resting order and escrow (SPEC §5, issue 5).

Free of Ape (unlike `tests/orderbook_fixtures.py`, whose constants and id layout it repeats),
so that the titanoboa test imports neither Ape nor a node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENT = 10**18  # one whole base token (HVT standing in for ENT)
EEURO = 10**6  # one eEuro
MAX_UINT = 2**256 - 1
TICK = 1_000  # 0.001 eEuro per whole base token
LOT = 10**15  # 0.001 base token
MIN_SIZE = 10**16  # 0.01 base token
MAX_FILLS = 64  # the book's fill cap when `max_fills` is 0


def quote_of(price: int, amount: int) -> int:
    """Quote paid for `amount` at `price`; exact by construction of tick and lot."""
    assert price * amount % ENT == 0, "inexact quote: tick and lot are wrong"
    return price * amount // ENT


def make_id(is_buy: bool, price: int, index: int, seq: int = 0) -> int:
    """The id the book gives an order: `(seq << 1 | is_buy) << 56 | tick << 32 | index`."""
    assert price % TICK == 0
    return ((seq << 1 | int(is_buy)) << 56) | ((price // TICK) << 32) | index


@dataclass(frozen=True)
class Fill:
    """One expected trade: the maker's order, its owner (an address), price and base amount."""

    maker_order_id: int
    maker: str
    price: int
    amount: int


@dataclass
class Resting:
    owner: str
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
        """Applies a placement; returns (fills, rest, order id), or None for a self trade (the
        model is then left half-applied: place on a `copy()`)."""
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

    def copy(self) -> Model:
        """An independent copy."""
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
        """(price, amount, orders) of each non-empty level of one side, best first."""
        found = [
            (p, sum(self.orders[i].amount for i in q), len(q))
            for (side, p), q in self.queues.items()
            if side == is_buy and q
        ]
        return sorted(found, reverse=is_buy)

    def escrow(self) -> tuple[int, int]:
        """(base, quote) the book must hold for its open orders."""
        base = sum(o.amount for o in self.orders.values() if not o.is_buy)
        quote = sum(quote_of(o.price, o.amount) for o in self.orders.values() if o.is_buy)
        return base, quote
