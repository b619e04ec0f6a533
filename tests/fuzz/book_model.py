"""The reference model of the order book for `test_orderbook_stateful.py`: a plain-Python
continuous double auction (price then time priority, fills at the maker's price) that
predicts every trade, order id, resting order, closed order, revert and escrow (SPEC §5,
issues 5 and 9).

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
MAX_SKIPS = 128  # cancelled orders one placement steps over
MAX_COMPACT = 1_024  # cancelled orders one `compact` clears when `max_slots` is 0
M32 = 2**32 - 1
# `OrderClosed.reason`: below the minimum order size, immediate-or-cancel, still crossing.
BELOW_MINIMUM, IOC, CROSSING = 1, 2, 3


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
class Placement:
    """What a successful placement does: its trades, what rests, the maker the last fill left
    below the minimum (closed and refunded: `Fill(id, owner, price, amount closed)`), and
    what neither traded nor rested (`unrested`, reported for `reason`)."""

    fills: list[Fill]
    rest: int
    order_id: int
    closed_maker: Fill | None = None
    unrested: int = 0
    reason: int = 0


@dataclass
class Model:
    """The book as it should be: open orders, FIFO queues per (side, price), the queue tail
    and head of every tick (order ids are built from the tail; the head is where matching
    and `compact` resume past cancelled orders) and the sequence of crossing orders.

    Rules (issue 9): no order below `min_size` rests (a taker's smaller remainder is not
    rested, a maker left below it by a partial fill is closed and refunded); a placement
    trades, rests or reverts, never a silent no-op."""

    orders: dict[int, Resting] = field(default_factory=dict)
    queues: dict[tuple[bool, int], list[int]] = field(default_factory=dict)
    tails: dict[int, int] = field(default_factory=dict)
    heads: dict[int, int] = field(default_factory=dict)
    seq: int = 0
    min_size: int = MIN_SIZE

    def best(self, is_buy: bool) -> int | None:
        prices = [p for (side, p), q in self.queues.items() if side == is_buy and q]
        if not prices:
            return None
        return max(prices) if is_buy else min(prices)

    def crosses(self, is_buy: bool, price: int) -> bool:
        best = self.best(not is_buy)
        return best is not None and (best <= price if is_buy else best >= price)

    def place(
        self, taker, is_buy: bool, price: int, amount: int, ioc: bool, max_fills: int
    ) -> Placement | str:
        """Applies a placement; returns what it does, or the reason it reverts (the model is
        then left half-applied: place on a `copy()`)."""
        crossing = self.crosses(is_buy, price)
        if ioc and not crossing:
            return "book: ioc order does not cross"
        if crossing:
            self.seq += 1
        tick = price // TICK
        order_id = make_id(is_buy, price, self.tails.get(tick, 0), self.seq * crossing)
        done = Placement([], 0, order_id)
        remaining, skips = amount, 0
        while remaining and len(done.fills) < (max_fills or MAX_FILLS):
            if not self.crosses(is_buy, price):
                break
            best = self.best(not is_buy)
            best_tick = best // TICK
            queue = self.queues[(not is_buy, best)]
            index = queue[0] & M32
            # Cancelled orders ahead of the first open one: at most MAX_SKIPS per call.
            holes = index - self.heads.get(best_tick, 0)
            if holes >= MAX_SKIPS - skips:
                self.heads[best_tick] = self.heads.get(best_tick, 0) + MAX_SKIPS - skips
                break
            skips += holes
            self.heads[best_tick] = index
            maker = self.orders[queue[0]]
            if maker.owner == taker:
                return "book: self trade"
            fill = min(remaining, maker.amount)
            done.fills.append(Fill(queue[0], maker.owner, best, fill))
            maker.amount -= fill
            remaining -= fill
            if maker.amount < self.min_size:
                if maker.amount:
                    done.closed_maker = Fill(queue[0], maker.owner, best, maker.amount)
                del self.orders[queue.pop(0)]
                self.heads[best_tick] = index + 1 if queue else self.tails[best_tick]
        if crossing and not done.fills:
            return "book: too many cancelled orders ahead"
        if remaining:
            if ioc:
                done.reason = IOC
            elif self.crosses(is_buy, price):
                done.reason = CROSSING
            elif remaining < self.min_size:
                done.reason = BELOW_MINIMUM
            if done.reason:
                done.unrested = remaining
            else:
                done.rest = remaining
                self.orders[order_id] = Resting(taker, is_buy, price, remaining)
                self.queues.setdefault((is_buy, price), []).append(order_id)
                self.tails[tick] = self.tails.get(tick, 0) + 1
        return done

    def copy(self) -> Model:
        """An independent copy."""
        return Model(
            {i: Resting(o.owner, o.is_buy, o.price, o.amount) for i, o in self.orders.items()},
            {k: list(q) for k, q in self.queues.items()},
            dict(self.tails),
            dict(self.heads),
            self.seq,
            self.min_size,
        )

    def cancel(self, order_id: int) -> Resting:
        order = self.orders.pop(order_id)
        queue = self.queues[(order.is_buy, order.price)]
        queue.remove(order_id)
        tick, index = order.price // TICK, order_id & M32
        if not queue:
            self.heads[tick] = self.tails[tick]
        elif index == self.heads.get(tick, 0):
            self.heads[tick] = index + 1
        return order

    def holes_at_head(self, tick: int) -> int:
        """How many cancelled slots lead `tick`'s queue (what `compact` would clear)."""
        head, tail = self.heads.get(tick, 0), self.tails.get(tick, 0)
        queue = self.queues.get((True, tick * TICK)) or self.queues.get((False, tick * TICK))
        return (queue[0] & M32 if queue else tail) - head

    def compact(self, tick: int, max_slots: int) -> int:
        """Clears cancelled slots at the head of `tick`'s queue (0: none, `compact` reverts)."""
        cleared = min(self.holes_at_head(tick), max_slots or MAX_COMPACT)
        self.heads[tick] = self.heads.get(tick, 0) + cleared
        return cleared

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
