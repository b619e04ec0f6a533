"""Stateful property test of the order book (SPEC §5, issue 5) against a reference model, run
in process by titanoboa (see `boa_env.py`).

Random traders place (sometimes IOC, sometimes with a fill cap), cancel, try to cancel each
other's orders and compact price levels on a narrow band of prices, so that orders cross
often; amounts are not always multiples of the minimum, so that partial fills leave dust.
A plain-Python continuous double auction (`book_model.py`) predicts every step; after every
step:

- the logs of every placement and cancel, across the book and both tokens and in order, are
  exactly the model's (trades with maker order, maker, taker, price and amount; the resting
  order or the `OrderClosed` of what does not rest; the `OrderClosed` of a maker left below
  the minimum; one transfer per run of fills against one maker, the makers' escrow to the
  taker, a closed maker's refund, the taker's escrow to the book), and so is the id `place`
  returns;
- a placement is never a silent no-op: it trades or rests (what is neither traded nor
  rested is reported by `OrderClosed`) and returns a non-zero id, or it reverts with the
  model's reason ("book: ioc order does not cross", "book: self trade", ...);
- every party's balances changed exactly as the trades and the escrow say, so a trade moves
  value only between its two parties (and the book);
- a trade against one's own order reverts "book: self trade", cancelling someone else's order
  reverts "book: not owner";
- the book's token balances equal the escrow of its open orders, its levels (price, amount,
  orders; also queue heads and tails, best prices, sequence and tick bitmap) and every open
  order's storage word (owner, amount, id tag) are the model's, no open order is below the
  minimum size, and the book is never crossed.

At the end of every example the views (`depth` of both sides, in full pages and in pages
of two levels through its cursor, `open_orders` of every trader with each order's side,
price and amount, `order` of every open order, `best_bid`, `best_ask`) are the model's,
everyone cancels everything, the views then show an empty book, the book holds nothing, and
each token's supply is the sum of the balances of every address its Transfer events name.

Each example deploys a fresh book (HVT standing in for ENT, quote eEuro) and its tokens
inside a `boa.env.anchor()`, so examples are independent and the EVM state does not grow.
Calls go through `boa.env.execute_code` with calldata built here (boa's contract wrappers
rebuild a source map on every deployment). The per-step checks read balances and the book's
words from storage: a `balanceOf` call per party and the `depth` view cost more EVM time than
the step itself (`depth` after every step makes the run ~1.5x longer). Teardown checks the
storage reads against `balanceOf()` and the views against the model.
"""

from __future__ import annotations

import contextlib
import copy
import sys

import boa
from eth_abi import decode, encode
from eth_utils import keccak
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.fuzz import boa_env
from tests.fuzz.book_model import (
    BELOW_MINIMUM,
    EEURO,
    ENT,
    LOT,
    MAX_UINT,
    MIN_SIZE,
    TICK,
    Fill,
    Model,
    Placement,
    quote_of,
)

TICKS = range(95, 106)  # 0.095 .. 0.105 eEuro: a narrow band, so that orders cross often
assert TICKS[0] >> 8 == TICKS[-1] >> 8, "the band must lie in one bitmap leaf word"
TRADERS = 4
GAS = 3_000_000  # per call, as the Anvil version sent
# Amounts: 1..n minimum sizes, sometimes plus a few lots (so that fills leave dust).
EXTRA_LOTS = st.sampled_from([0, 0, 1, 5, 9])


def amounts(low: int, high: int):
    return st.builds(
        lambda n, extra: n * MIN_SIZE + extra * LOT, st.integers(low, high), EXTRA_LOTS
    )


# The book's storage words (docs/orderbook.md, the layout comments of contracts/OrderBook.vy).
M24, M32, M56, M96 = 2**24 - 1, 2**32 - 1, 2**56 - 1, 2**96 - 1
ASK_SHIFT, SEQ_SHIFT, RULES_SHIFT = 24, 48, 80  # header: bid | ask | seq | rules
TAIL_SHIFT, LOTS_SHIFT, COUNT_SHIFT = 32, 64, 160  # level: head | tail | lots | count


def _topic(signature: str) -> int:
    return int.from_bytes(keccak(text=signature), "big")


TRADED = _topic("Traded(address,address,uint256,uint256,uint256,uint256)")
PLACED = _topic("OrderPlaced(uint256,address,bool,uint256,uint256)")
CANCELLED = _topic("OrderCancelled(uint256,address,uint256)")
CLOSED = _topic("OrderClosed(uint256,address,uint256,uint256)")
COMPACTED = _topic("Compacted(uint256,uint256)")
TRANSFER = _topic("Transfer(address,address,uint256)")
ERROR = keccak(text="Error(string)")[:4]


class Fn:
    """Calldata of one external function: `Fn("f(uint256)")(7)`."""

    def __init__(self, signature: str):
        self.selector = keccak(text=signature)[:4]
        self.types = [t for t in signature[signature.index("(") + 1 : -1].split(",") if t]

    def __call__(self, *args) -> bytes:
        return self.selector + encode(self.types, args)


PLACE = Fn("place(bool,uint256,uint256,bool,uint256)")
CANCEL = Fn("cancel(uint256)")
COMPACT = Fn("compact(uint256,uint256)")
DEPTH = Fn("depth(bool,uint256,uint256)")
ORDER = Fn("order(uint256)")
OPEN_ORDERS = Fn("open_orders(address,uint256,uint256)")
BEST_BID = Fn("best_bid()")
BEST_ASK = Fn("best_ask()")
TRANSFER_TO = Fn("transfer(address,uint256)")
APPROVE = Fn("approve(address,uint256)")
MINT = Fn("mint(address,uint256)")
SET_BANKER = Fn("set_banker(address)")
BALANCE_OF = Fn("balanceOf(address)")
TOTAL_SUPPLY = Fn("totalSupply()")


def _words(*values: int) -> bytes:
    return b"".join(v.to_bytes(32, "big") for v in values)


def _slot(contract: str, *path: str) -> int:
    """The storage slot of a variable of `contracts/<contract>.vy` (`path` through modules)."""
    entry = boa_env.deployer(contract).compiler_data.storage_layout["storage_layout"]
    for name in path:
        entry = entry[name]
    return entry["slot"]


def _key(slot: int, key) -> int:
    """The slot of `map[key]` for a HashMap at `slot`: keccak(slot . key) in Vyper."""
    key = key if isinstance(key, int) else int(key, 16)
    return int.from_bytes(keccak(_words(slot, key)), "big")


def _refund(is_buy: bool, closed: Fill) -> int:
    """What the book refunds a maker closed below the minimum by a taker on side `is_buy`:
    base for an ask (the taker buys), the quote escrow for a bid."""
    return closed.amount if is_buy else quote_of(closed.price, closed.amount)


def _uint(output: bytes) -> int:
    return int.from_bytes(output[:32], "big")


def _reason(output: bytes) -> str | None:
    """The reason string of an `Error(string)` revert, else None."""
    if output[:4] != ERROR:
        return None
    return decode(["string"], output[4:])[0]


def _levels(output: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """`depth`'s output: its `DynArray[Level, MAX_PAGE]` as (price, amount, orders) tuples,
    and the cursor."""
    cursor = int.from_bytes(output[32:64], "big")
    n = int.from_bytes(output[64:96], "big")
    w = [int.from_bytes(output[i : i + 32], "big") for i in range(96, 96 + 96 * n, 32)]
    return [(w[i], w[i + 1], w[i + 2]) for i in range(0, 3 * n, 3)], cursor


class Market:
    """A fresh book, its base (HVT) and quote (eEuro) tokens and funded traders, driven by raw
    messages through boa's environment (the boa counterpart of `orderbook_fixtures.Market`).

    Every Transfer log of every call is recorded, so that conservation can sum the balances
    of every address a token ever named.
    """

    def __init__(self, traders: list[boa.util.abi.Address], admins: list):
        deployer, banker, treasury = admins
        self.env = boa.env
        self.holders: dict[bytes, set[int]] = {}
        self.base = self.deploy("HiveToken", deployer, ["address"], [treasury])
        self.quote = self.deploy("EEuro", deployer, ["address"], [deployer])
        self.send(deployer, self.quote, SET_BANKER(banker))
        types = ["address", "address", "uint256", "uint256", "uint256", "address"]
        args = [self.base, self.quote, TICK, LOT, MIN_SIZE, deployer]
        self.book = self.deploy("OrderBook", deployer, types, args)
        self.traders = traders
        for trader in traders:
            self.send(treasury, self.base, TRANSFER_TO(trader, 100 * ENT))
            self.send(banker, self.quote, MINT(trader, 100 * EEURO))
            self.send(trader, self.base, APPROVE(self.book, MAX_UINT))
            self.send(trader, self.quote, APPROVE(self.book, MAX_UINT))
        self.parties = [*traders, self.book]
        self.slots = [
            (
                _key(_slot("HiveToken", "erc20", "balanceOf"), p),
                _key(_slot("EEuro", "erc20", "balanceOf"), p),
            )
            for p in self.parties
        ]
        self.book_slots = [_slot("OrderBook", "header")]
        self.book_slots += [_key(_slot("OrderBook", "levels"), t) for t in TICKS]
        self.book_slots += [
            _slot("OrderBook", "book_ticks", "root"),
            _key(_slot("OrderBook", "book_ticks", "mids"), TICKS[0] >> 16),
            _key(_slot("OrderBook", "book_ticks", "leaves"), TICKS[0] >> 8),
        ]
        self.orders_slot = _slot("OrderBook", "orders")
        self.rules = self.book_words()[0] >> RULES_SHIFT

    def fork(self) -> Market:
        """This market for one example: the same contracts, its own record of holders."""
        market = copy.copy(self)
        market.holders = {address: set(seen) for address, seen in self.holders.items()}
        return market

    # --- the EVM ----------------------------------------------------------------------

    def deploy(self, name: str, sender, types: list[str], args: list):
        initcode = boa_env.deployer(name).compiler_data.bytecode + encode(types, args)
        address, computation = self.env.deploy(sender=sender, gas=10**8, bytecode=initcode)
        assert not computation.is_error, f"{name}: {_reason(computation.output)}"
        self._record(computation)
        return address

    def call(self, sender, to, data: bytes):
        """The computation of message `data` from `sender` to `to` (a reverted one included:
        it changes nothing)."""
        return self.env.execute_code(to_address=to, sender=sender, gas=GAS, data=data)

    def send(self, sender, to, data: bytes) -> tuple:
        """Sends `data`, which must not revert; returns the logs in order, across contracts,
        as (address, topics, data)."""
        computation = self.call(sender, to, data)
        assert not computation.is_error, f"reverted: {_reason(computation.output)}"
        return self._record(computation)

    def _record(self, computation) -> tuple:
        logs = computation.get_log_entries()
        for address, topics, _ in logs:
            if topics[0] == TRANSFER:
                self.holders.setdefault(address, set()).update(topics[1:3])
        self.output = computation.output
        return logs

    def view(self, to, data: bytes) -> bytes:
        computation = self.env.execute_code(to_address=to, data=data, is_modifying=False)
        assert not computation.is_error, f"view reverted: {_reason(computation.output)}"
        return computation.output

    def assert_reverts(self, reason: str, sender, to, data: bytes) -> None:
        computation = self.call(sender, to, data)
        assert computation.is_error, f"did not revert (expected {reason!r})"
        assert _reason(computation.output) == reason

    # --- balances and the book ---------------------------------------------------------

    def balances(self) -> list[tuple[int, int]]:
        """(base, quote) of every party (the traders, then the book), from storage."""
        storage = self.env.evm.vm.state.get_storage
        base, quote = self.base.canonical_address, self.quote.canonical_address
        return [(storage(base, b), storage(quote, q)) for b, q in self.slots]

    def book_words(self) -> list[int]:
        """The book's header, the level word of every tick of `TICKS`, and the bitmap words
        (root, mid, leaf) that cover them, from storage."""
        storage = self.env.evm.vm.state.get_storage
        book = self.book.canonical_address
        return [storage(book, slot) for slot in self.book_slots]

    def order_word(self, order_id: int) -> int:
        """The storage word of the order at `order_id`'s location (0: none)."""
        storage = self.env.evm.vm.state.get_storage
        return storage(self.book.canonical_address, _key(self.orders_slot, order_id & M56))

    def sides(self, page: int = 0) -> tuple[list[tuple], list[tuple]]:
        """(bids, asks) from `depth`, as (price, amount, orders), best first; `page` levels
        per call, following the cursor."""
        sides = []
        for is_buy in (True, False):
            levels, cursor = _levels(self.view(self.book, DEPTH(is_buy, 0, page)))
            while cursor:
                assert page and len(levels) % page == 0, "a short page with a cursor"
                more, cursor = _levels(self.view(self.book, DEPTH(is_buy, cursor, page)))
                levels += more
            sides.append(levels)
        return sides[0], sides[1]

    def expected_changes(self, taker, is_buy, fills, rest_price, rest_amount, closed=None) -> list:
        """The exact (base, quote) change of every party for a placement by `taker` that makes
        `fills`, leaves `rest_amount` resting at `rest_price` and maybe closes a maker below
        the minimum (`closed`): the taker pays each maker directly at the maker's price and
        receives the maker's escrow from the book; only the resting part is escrowed with the
        book; a closed maker gets its escrow back from the book."""
        index = {p: i for i, p in enumerate(self.parties)}
        changes = [[0, 0] for _ in self.parties]
        t, book = changes[index[taker]], changes[-1]
        for fill in fills:
            paid = quote_of(fill.price, fill.amount)
            maker = changes[index[fill.maker]]
            if is_buy:
                t[0] += fill.amount
                t[1] -= paid
                maker[1] += paid
                book[0] -= fill.amount
            else:
                t[0] -= fill.amount
                t[1] += paid
                maker[0] += fill.amount
                book[1] -= paid
        if rest_amount:
            if is_buy:
                escrow = quote_of(rest_price, rest_amount)
                t[1] -= escrow
                book[1] += escrow
            else:
                t[0] -= rest_amount
                book[0] += rest_amount
        if closed is not None:
            token = 0 if is_buy else 1
            refund = _refund(is_buy, closed)
            changes[index[closed.maker]][token] += refund
            book[token] -= refund
        return [tuple(c) for c in changes]

    def assert_changes(self, before: list, expected: list) -> None:
        """Asserts every party's (base, quote) change since `before`."""
        after = self.balances()
        got = [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)]
        assert got == expected, f"balance changes of {self.parties}"

    def expected_logs(self, taker, is_buy, price, done: Placement) -> list[tuple]:
        """Every log a placement must emit, in order: the trades (the last one followed by
        the `OrderClosed` of a maker it left below the minimum), the resting order or the
        `OrderClosed` of what does not rest, then the token transfers (one per run of
        consecutive fills against the same maker, the makers' escrow to the taker, a closed
        maker's refund, the taker's escrow to the book)."""
        book = self.book.canonical_address
        pay, receive = (self.quote, self.base) if is_buy else (self.base, self.quote)
        pay, receive = pay.canonical_address, receive.canonical_address
        taker_int, book_int = int(taker, 16), int(self.book, 16)
        order_id, fills, rest, closed = done.order_id, done.fills, done.rest, done.closed_maker
        logs = [
            (
                book,
                (TRADED, int(f.maker, 16), taker_int, f.maker_order_id),
                _words(order_id, f.price, f.amount),
            )
            for f in fills
        ]
        if closed is not None:
            topics = (CLOSED, closed.maker_order_id, int(closed.maker, 16))
            logs.append((book, topics, _words(closed.amount, BELOW_MINIMUM)))
        if done.unrested:
            topics = (CLOSED, order_id, taker_int)
            logs.append((book, topics, _words(done.unrested, done.reason)))
        if rest:
            logs.append((book, (PLACED, order_id, taker_int), _words(int(is_buy), price, rest)))
        payments: list[list[int]] = []
        for f in fills:
            value = quote_of(f.price, f.amount) if is_buy else f.amount
            if payments and payments[-1][0] == int(f.maker, 16):
                payments[-1][1] += value
            else:
                payments.append([int(f.maker, 16), value])
        logs += [(pay, (TRANSFER, taker_int, maker), _words(v)) for maker, v in payments]
        received = sum(f.amount if is_buy else quote_of(f.price, f.amount) for f in fills)
        if received:
            logs.append((receive, (TRANSFER, book_int, taker_int), _words(received)))
        if closed is not None:
            topics = (TRANSFER, book_int, int(closed.maker, 16))
            logs.append((receive, topics, _words(_refund(is_buy, closed))))
        if rest:
            escrow = quote_of(price, rest) if is_buy else rest
            logs.append((pay, (TRANSFER, taker_int, book_int), _words(escrow)))
        return logs

    def cancel(self, order_id: int, order) -> None:
        """Cancels `order` (already removed from the model) as its owner and checks the logs
        and every party's balance change."""
        before = self.balances()
        logs = self.send(order.owner, self.book, CANCEL(order_id))
        refund = quote_of(order.price, order.amount) if order.is_buy else order.amount
        token = self.quote if order.is_buy else self.base
        owner = int(order.owner, 16)
        assert list(logs) == [
            (self.book.canonical_address, (CANCELLED, order_id, owner), _words(order.amount)),
            (token.canonical_address, (TRANSFER, int(self.book, 16), owner), _words(refund)),
        ]
        changes = [(0, 0)] * len(self.parties)
        changes[self.parties.index(order.owner)] = (0, refund) if order.is_buy else (refund, 0)
        changes[-1] = (0, -refund) if order.is_buy else (-refund, 0)
        self.assert_changes(before, changes)

    def open_orders(self) -> dict[int, tuple]:
        """Every open order, through the paginated `open_orders` view of each trader, each
        checked against the `order` view."""
        found = {}
        for trader in self.traders:
            cursor = 0
            while True:
                out = self.view(self.book, OPEN_ORDERS(trader, cursor, 100))
                orders, cursor = decode(["(uint256,bool,uint256,uint256)[]", "uint256"], out)
                for order_id, is_buy, price, amount in orders:
                    owner, *rest = decode(
                        ["(address,bool,uint256,uint256)"], self.view(self.book, ORDER(order_id))
                    )[0]
                    assert int(owner, 16) == int(trader, 16)
                    assert tuple(rest) == (is_buy, price, amount), "open_orders != order"
                    assert order_id not in found, "an order shown twice"
                    found[order_id] = (trader, is_buy, price, amount)
                if cursor == 0:
                    break
        return found

    def assert_conserved(self) -> None:
        """Each token's supply is the sum of the `balanceOf` of every address it ever named,
        and the parties' `balanceOf` are the storage slots `balances` reads."""
        by_view = {}
        for i, token in enumerate((self.base, self.quote)):
            holders = self.holders[token.canonical_address] - {0}
            holders |= {int(p, 16) for p in self.parties}
            held = {h: _uint(self.view(token, BALANCE_OF(h.to_bytes(20, "big")))) for h in holders}
            assert _uint(self.view(token, TOTAL_SUPPLY())) == sum(held.values()), "supply"
            by_view[i] = [held[int(p, 16)] for p in self.parties]
        assert self.balances() == list(zip(by_view[0], by_view[1], strict=True))


class BookMachine(RuleBasedStateMachine):
    """Set `traders`, `admins` and `depth` before running."""

    traders: list
    admins: list
    base: Market | None = None  # the deployed, funded contracts every example starts from
    depth: boa_env.Depth

    def __init__(self):
        super().__init__()
        self.depth.example()
        self.model = Model()
        if BookMachine.base is None:
            # The tokens and the book are deployed and funded once, outside every example's
            # anchor; each example starts from that state (boa reverts it at the anchor's end)
            # with its own copy of the Python side.
            BookMachine.base = Market(self.traders, self.admins)
        self.anchor = contextlib.ExitStack()
        self.anchor.enter_context(boa.env.anchor())
        self.market = BookMachine.base.fork()

    @initialize(sizes=st.lists(amounts(1, 3), min_size=12, max_size=12))
    def ladder(self, sizes):
        """Start from a book with depth: asks 0.101..0.105 and bids 0.099..0.095, two orders
        at the innermost prices, owned by the first three traders in turn."""
        ticks = [(False, t) for t in (101, 101, 102, 103, 104, 105)]
        ticks += [(True, t) for t in (99, 99, 98, 97, 96, 95)]
        for i, ((is_buy, tick), amount) in enumerate(zip(ticks, sizes, strict=True)):
            self._place(i % 3, is_buy, tick, amount, False, 0)

    @rule(
        who=st.integers(0, TRADERS - 1),
        is_buy=st.booleans(),
        tick=st.sampled_from(TICKS),
        amount=amounts(1, 4),
        max_fills=st.sampled_from([0, 0, 1, 2, 3]),
    )
    def place(self, who, is_buy, tick, amount, max_fills):
        self.depth.step()
        self._place(who, is_buy, tick, amount, False, max_fills)

    @rule(
        who=st.integers(0, TRADERS - 1),
        is_buy=st.booleans(),
        tick=st.sampled_from(TICKS),
        amount=amounts(1, 8),
        max_fills=st.sampled_from([0, 1, 2]),
    )
    def place_ioc(self, who, is_buy, tick, amount, max_fills):
        self.depth.step()
        self._place(who, is_buy, tick, amount, True, max_fills)

    @rule(
        data=st.data(),
        is_buy=st.booleans(),
        amount=amounts(4, 20),
        ioc=st.booleans(),
        max_fills=st.sampled_from([0, 0, 2, 3, 5]),
    )
    def sweep(self, data, is_buy, amount, ioc, max_fills):
        """A large order at the far end of the band, mostly by a trader with no order on the
        other side (so that it takes several orders and levels rather than hitting its own)."""
        self.depth.step()
        clear = [
            i
            for i, trader in enumerate(self.traders)
            if all(o.owner != trader or o.is_buy == is_buy for o in self.model.orders.values())
        ]
        who = data.draw(st.sampled_from(clear or range(TRADERS)))
        tick = TICKS[-1] if is_buy else TICKS[0]
        self._place(who, is_buy, tick, amount, ioc, max_fills)

    @rule(who=st.integers(0, TRADERS - 1), is_buy=st.booleans(), dust=st.integers(1, 9))
    def take_level_plus_dust(self, who, is_buy, dust):
        """Takes the whole best opposite level and `dust` lots more at its price: the dust
        (below the minimum) must not rest."""
        self.depth.step()
        best = self.model.best(not is_buy)
        if best is None:
            return
        (_, amount, _), *_ = self.model.levels(not is_buy)
        self._place(who, is_buy, best // TICK, amount + dust * LOT, False, 0)

    @rule(
        data=st.data(),
        who=st.integers(0, TRADERS - 1),
        is_buy=st.booleans(),
        n=st.integers(3, 4),
    )
    def queue_with_holes(self, data, who, is_buy, n):
        """`n` orders of one trader at an empty price of its side (the one nearest to the
        other side), then all but one cancelled, the first one last: holes inside the queue
        and at its head, for takers and `compact`."""
        self.depth.step()
        used = {p // TICK for (_, p), q in self.model.queues.items() if q}
        free = [t for t in TICKS if t not in used and not self.model.crosses(is_buy, t * TICK)]
        if not free:
            return
        tick = max(free) if is_buy else min(free)
        placed = []
        for _ in range(n):
            before = set(self.model.orders)
            self._place(who, is_buy, tick, MIN_SIZE, False, 0)
            placed += sorted(set(self.model.orders) - before)
        survivor = data.draw(st.sampled_from(placed))
        for order_id in sorted(set(placed) - {survivor}, reverse=True):
            self.market.cancel(order_id, self.model.cancel(order_id))

    def _place(self, who, is_buy, tick, amount, ioc, max_fills):
        market = self.market
        taker = self.traders[who]
        price = tick * TICK
        data = PLACE(is_buy, price, amount, ioc, max_fills)
        model = self.model.copy()
        done = model.place(taker, is_buy, price, amount, ioc, max_fills)
        if isinstance(done, str):
            # A placement that can neither trade nor rest reverts, with the model's reason.
            market.assert_reverts(done, taker, market.book, data)
            return
        self.model = model
        before = market.balances()
        logs = market.send(taker, market.book, data)
        assert list(logs) == market.expected_logs(taker, is_buy, price, done)
        assert _uint(market.output) == done.order_id != 0, "returned id"
        # Never a silent no-op: it traded or rested, and every unit is accounted for.
        traded = sum(f.amount for f in done.fills)
        assert traded or done.rest, "a placement that neither traded nor rested"
        assert traded + done.rest + done.unrested == amount
        changes = market.expected_changes(
            taker, is_buy, done.fills, price, done.rest, done.closed_maker
        )
        market.assert_changes(before, changes)

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data())
    def cancel(self, data):
        self.depth.step()
        order_id = data.draw(st.sampled_from(sorted(self.model.orders)))
        self.market.cancel(order_id, self.model.cancel(order_id))

    @rule(data=st.data(), who=st.integers(0, TRADERS), limit=st.sampled_from([0, 0, 1]))
    def compact(self, data, who, limit):
        """Anyone compacts a level (mostly one with cancelled orders at its queue's head): it
        clears them, or reverts if there are none."""
        self.depth.step()
        market, caller = self.market, (self.traders + self.admins[:1])[who]
        holed = [t for t in TICKS if self.model.holes_at_head(t)]
        tick = data.draw(st.sampled_from(holed) if holed else st.sampled_from(TICKS))
        data_ = COMPACT(tick * TICK, limit)
        cleared = self.model.compact(tick, limit)
        if not cleared:
            reason = "book: no cancelled orders at the head"
            market.assert_reverts(reason, caller, market.book, data_)
            return
        logs = market.send(caller, market.book, data_)
        assert _uint(market.output) == cleared
        book = market.book.canonical_address
        assert list(logs) == [(book, (COMPACTED,), _words(tick * TICK, cleared))]

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data(), who=st.integers(0, TRADERS - 1))
    def cancel_someone_elses(self, data, who):
        self.depth.step()
        caller = self.traders[who]
        others = [i for i, o in self.model.orders.items() if o.owner != caller]
        if not others:
            return
        order_id = data.draw(st.sampled_from(sorted(others)))
        self.market.assert_reverts("book: not owner", caller, self.market.book, CANCEL(order_id))

    @invariant()
    def book_matches_model(self):
        """The book's words in storage are the model's: best prices, sequence, every level's
        amount, order count and queue tail, the bitmap of occupied ticks; its balances are the
        escrow of its open orders; it is not crossed. (Read from storage: the `depth` view
        would cost more than the step itself; teardown checks the views against the model.)"""
        market, model = self.market, self.model
        header, *words, root, mid, leaf = market.book_words()
        bid, ask = (header & M24) * TICK, ((header >> ASK_SHIFT) & M24) * TICK
        assert (bid, ask) == (model.best(True) or 0, model.best(False) or 0), "best prices"
        assert (header >> SEQ_SHIFT) & M32 == model.seq, "order sequence"
        assert header >> RULES_SHIFT == market.rules, "trading rules changed"
        bids, asks, occupied = [], [], 0
        for tick, word in zip(TICKS, words, strict=True):
            head, tail = word & M32, (word >> TAIL_SHIFT) & M32
            lots, count = (word >> LOTS_SHIFT) & M96, word >> COUNT_SHIFT
            assert tail == model.tails.get(tick, 0), f"queue tail of tick {tick}"
            assert head == model.heads.get(tick, 0), f"queue head of tick {tick}"
            if lots:
                occupied |= 1 << tick
                (bids if tick * TICK <= bid else asks).append((tick * TICK, lots * LOT, count))
            else:
                assert (count, head) == (0, tail), f"empty level {tick} not reset"
        assert bids[::-1] == model.levels(True)
        assert asks == model.levels(False)
        assert (leaf, mid, root) == (occupied, int(occupied != 0), int(occupied != 0)), "bitmap"
        held = market.balances()[-1]
        assert held == model.escrow(), "book balances != escrow of its open orders"
        if bid and ask:
            assert bid < ask, "crossed book"

    @invariant()
    def no_dust_rests(self):
        """Every open order's storage word is the model's (owner, amount, id tag), and no open
        order is below the minimum size (issue 9: a taker's smaller remainder is not rested,
        a maker left below it is closed and refunded)."""
        for order_id, order in self.model.orders.items():
            assert order.amount >= MIN_SIZE, f"order {order_id:#x} below the minimum rests"
            word = (order_id >> 56) << 224 | (order.amount // LOT) << 160 | int(order.owner, 16)
            assert self.market.order_word(order_id) == word, f"order {order_id:#x} in storage"

    def teardown(self):
        try:
            if isinstance(sys.exc_info()[1], Exception):
                # A step failed (hypothesis tears down in a `finally`): report that failure
                # alone, not its aftermath as a second, "distinct" one that slows shrinking.
                return
            market, model = self.market, self.model
            # The views: every level, every open order read one by one, the best prices.
            self._assert_views(paged=True)
            # Everyone cancels everything: the book must then hold nothing.
            for order_id in list(model.orders):
                market.cancel(order_id, model.cancel(order_id))
            assert market.balances()[-1] == (0, 0)
            self._assert_views()  # now: no levels, no open orders, no best prices
            market.assert_conserved()
        finally:
            self.anchor.close()

    def _assert_views(self, paged: bool = False):
        """`depth`, `open_orders` (with each order's side, price and amount), `order`,
        `best_bid` and `best_ask` agree with the model; if `paged`, also `depth` in pages of
        2 levels, through its cursor."""
        market, model = self.market, self.model
        levels = (model.levels(True), model.levels(False))
        assert market.sides() == levels
        orders = {i: (o.owner, o.is_buy, o.price, o.amount) for i, o in model.orders.items()}
        assert market.open_orders() == orders
        if paged:
            assert market.sides(page=2) == levels
        assert _uint(market.view(market.book, BEST_BID())) == (model.best(True) or 0)
        assert _uint(market.view(market.book, BEST_ASK())) == (model.best(False) or 0)


def test_order_book_stateful(record_property):
    depth = boa_env.Depth()
    BookMachine.traders = boa_env.accounts(TRADERS, "trader")
    BookMachine.admins = boa_env.accounts(3, "book-admin")  # deployer, banker, treasury
    BookMachine.depth = depth
    BookMachine.base = None  # deployed by the first example (tests/fuzz/conftest.py: gc)
    # Without the explain phase: once a failure is found it traces every line executed while
    # shrinking, which makes py-evm ~5x slower and shrinking hit hypothesis' time limit.
    phases = [p for p in boa_env.settings_for().phases if p != Phase.explain]
    run_state_machine_as_test(BookMachine, settings=settings(boa_env.settings_for(), phases=phases))
    depth.check_and_record(record_property, "order book", boa_env.EXAMPLES)
