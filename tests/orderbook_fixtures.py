"""Helpers shared by the order book's unit and stateful tests (SPEC §5, issue 5).

`Market` wraps a deployed book with its two tokens and its traders: it places orders,
predicts the exact balance changes of every party from the trades a placement must make,
and checks conservation (the book holds exactly the escrow of its open orders, every token's
supply is the sum of its balances).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ape import chain
from eth_abi import decode
from web3.exceptions import ContractLogicError

from tests.conftest import assert_supply_conserved

ENT = 10**18  # one whole base token (ENT, or HVT standing in for it)
EEURO = 10**6  # one eEuro
MAX_UINT = 2**256 - 1
TICK = 1_000  # 0.001 eEuro per whole base token
LOT = 10**15  # 0.001 base token
MIN_SIZE = 10**16  # 0.01 base token

# `OrderClosed.reason`: below the minimum order size, immediate-or-cancel, still crossing.
BELOW_MINIMUM, IOC, CROSSING = 1, 2, 3


def eur(value: str | int) -> int:
    """eEuro base units of a decimal string: eur("10.5") == 10_500_000."""
    return int(Decimal(str(value)) * EEURO)


def ent(value: str | int) -> int:
    """Base-token base units of a decimal string: ent("1.9") == 1_900_000_000_000_000_000."""
    return int(Decimal(str(value)) * ENT)


def quote_of(price: int, amount: int) -> int:
    """Quote paid for `amount` at `price`; exact by construction of tick and lot."""
    assert price * amount % ENT == 0, "inexact quote: tick and lot are wrong"
    return price * amount // ENT


def revert_reason(to: str | None, data: bytes, sender) -> str | None:
    """The revert reason of `data` sent by `sender` to `to` (None: a deployment), run as an
    `eth_call` on the latest block; None if it does not revert."""
    call = {"from": sender.address, "data": "0x" + bytes(data).hex()}
    if to is not None:
        call["to"] = to
    try:
        chain.provider.web3.eth.call(call)
    except ContractLogicError as err:
        return str(err.message).removeprefix("execution reverted: ")
    return None


def assert_reverts(reason: str, method, *args, sender) -> None:
    """What `with ape.reverts(reason): method(*args, sender=sender)` checks (the exact
    reason), without sending: Ape renders a call tree for every failed transaction, which
    costs seconds per revert, and the input matrices here have dozens of them."""
    data = method.encode_input(*args)
    assert revert_reason(method.contract.address, data, sender) == reason


def assert_deploy_reverts(reason: str, container, *args, sender) -> None:
    """`assert_reverts` for a deployment of `container` with constructor `args`."""
    code = bytes.fromhex(container.contract_type.deployment_bytecode.bytecode[2:])
    data = code + bytes(container.constructor.encode_input(*args))
    assert revert_reason(None, data, sender) == reason


@dataclass(frozen=True)
class Fill:
    """One expected trade: the maker's order, its owner, the price and the base amount. Also
    a maker order that a partial fill left below the minimum (`closed_maker`): its id, owner,
    price and the base amount closed and refunded."""

    maker_order_id: int
    maker: object
    price: int
    amount: int


def refund_of(is_buy: bool, closed: Fill) -> int:
    """What the book refunds to a maker closed below the minimum by a taker on side `is_buy`:
    base for an ask (the taker buys), the quote escrow for a bid."""
    return closed.amount if is_buy else quote_of(closed.price, closed.amount)


def make_id(is_buy: bool, price: int, index: int, seq: int = 0) -> int:
    """The id the book gives an order: `(seq << 1 | is_buy) << 56 | tick << 32 | index`."""
    assert price % TICK == 0
    return ((seq << 1 | int(is_buy)) << 56) | ((price // TICK) << 32) | index


def placed_id(receipt) -> int:
    """The id of the order a `place` receipt left resting."""
    (log,) = (log for log in receipt.events if log.event_name == "OrderPlaced")
    return log.order_id


def traded_id(receipt) -> int:
    """The taker order id of the trades in a `place` receipt."""
    ids = {log.taker_order_id for log in receipt.events if log.event_name == "Traded"}
    (order_id,) = ids
    return order_id


class Market:
    """A book, its base and quote tokens, and the accounts that trade on it."""

    def __init__(self, book, base, quote, traders):
        self.book = book
        self.base = base
        self.quote = quote
        self.traders = list(traders)

    # --- actions --------------------------------------------------------------------------

    def place(self, who, is_buy: bool, price: int, amount: int, ioc=False, max_fills=0):
        return self.book.place(is_buy, price, amount, ioc, max_fills, sender=who)

    def buy(self, who, price: int, amount: int, **kwargs):
        return self.place(who, True, price, amount, **kwargs)

    def sell(self, who, price: int, amount: int, **kwargs):
        return self.place(who, False, price, amount, **kwargs)

    def send_many(self, calls: list[tuple[object, bytes]], gas: int = 500_000) -> list[dict]:
        """Sends (sender, calldata) transactions to the book as raw `eth_sendTransaction`s
        (Anvil mines each as it arrives, in order), then reads all their receipts in one
        batch and asserts they succeeded. For building large books: an Ape transaction costs
        ~10x more test time."""
        web3 = chain.provider.web3
        book = self.book.address
        hashes = [
            web3.eth.send_transaction(
                {"from": sender.address, "to": book, "data": "0x" + bytes(data).hex(), "gas": gas}
            )
            for sender, data in calls
        ]
        web3.eth.wait_for_transaction_receipt(hashes[-1], timeout=60)  # mined in order
        with web3.batch_requests() as batch:
            for tx_hash in hashes:
                batch.add(web3.eth.get_transaction_receipt(tx_hash))
            receipts = batch.execute()
        assert [r["status"] for r in receipts] == [1] * len(calls), "a transaction failed"
        return receipts

    # --- balances -------------------------------------------------------------------------

    def parties(self) -> list:
        return [*self.traders, self.book]

    def _call_batch(self, calls: list[tuple[str, bytes]]) -> list[bytes]:
        """Raw `eth_call` results of (to, calldata) pairs, in one JSON-RPC batch."""
        web3 = chain.provider.web3
        with web3.batch_requests() as batch:
            for to, data in calls:
                batch.add(web3.eth.call({"to": to, "data": "0x" + bytes(data).hex()}))
            return [bytes(raw) for raw in batch.execute()]

    def state(self) -> tuple[dict[str, tuple[int, int]], list[tuple], list[tuple]]:
        """(balances, bids, asks) read in one JSON-RPC batch: (base, quote) of every trader
        and of the book by address; the levels of each side as (price, amount, orders),
        best first."""
        parties = [p.address for p in self.parties()]
        calls = [
            (token.address, bytes.fromhex("70a08231" + a[2:].lower().rjust(64, "0")))
            for a in parties
            for token in (self.base, self.quote)
        ]
        book = self.book.address
        calls += [(book, self.book.depth.encode_input(side, 0, 0)) for side in (True, False)]
        raw = self._call_batch(calls)
        values = [int.from_bytes(r, "big") for r in raw[: 2 * len(parties)]]
        balances = {a: (values[2 * i], values[2 * i + 1]) for i, a in enumerate(parties)}
        sides = []
        for side, r in zip((True, False), raw[2 * len(parties) :], strict=True):
            levels, cursor = decode(["(uint256,uint256,uint256)[]", "uint256"], r)
            levels = [tuple(level) for level in levels]
            while cursor:  # more than one page of levels
                more, cursor = self.book.depth(side, cursor, 0)
                levels += [tuple(level) for level in more]
            sides.append(levels)
        bids, asks = sides
        return balances, bids, asks

    def balances(self) -> dict[str, tuple[int, int]]:
        """(base, quote) of every trader and of the book, by address."""
        return self.state()[0]

    def expected_changes(
        self,
        taker,
        is_buy: bool,
        fills: list[Fill],
        rest_price: int = 0,
        rest_amount: int = 0,
        closed_maker: Fill | None = None,
    ) -> dict[str, tuple[int, int]]:
        """The exact (base, quote) change of every party for a placement by `taker` that makes
        `fills`, leaves `rest_amount` resting at `rest_price` and maybe closes a maker below
        the minimum (`closed_maker`).

        The taker pays each maker directly at the maker's price and receives the maker's
        escrow from the book; only the resting part is escrowed with the book; a closed
        maker gets the escrow of what it had left back from the book.
        """
        changes = {p.address: [0, 0] for p in self.parties()}
        book = self.book.address
        for fill in fills:
            paid = quote_of(fill.price, fill.amount)
            maker = fill.maker.address
            if is_buy:
                changes[taker.address][0] += fill.amount
                changes[taker.address][1] -= paid
                changes[maker][1] += paid
                changes[book][0] -= fill.amount
            else:
                changes[taker.address][0] -= fill.amount
                changes[taker.address][1] += paid
                changes[maker][0] += fill.amount
                changes[book][1] -= paid
        if rest_amount:
            if is_buy:
                escrow = quote_of(rest_price, rest_amount)
                changes[taker.address][1] -= escrow
                changes[book][1] += escrow
            else:
                changes[taker.address][0] -= rest_amount
                changes[book][0] += rest_amount
        if closed_maker is not None:
            refund = refund_of(is_buy, closed_maker)
            token = 0 if is_buy else 1
            changes[closed_maker.maker.address][token] += refund
            changes[book][token] -= refund
        return {k: (v[0], v[1]) for k, v in changes.items()}

    def assert_changes(self, before: dict, expected: dict) -> None:
        after = self.balances()
        for address, (base_before, quote_before) in before.items():
            got = (after[address][0] - base_before, after[address][1] - quote_before)
            assert got == expected.get(address, (0, 0)), f"balance change of {address}"

    def traded_events(self, taker, taker_order_id: int, fills: list[Fill]) -> list:
        return [
            self.book.Traded(
                maker=f.maker,
                taker=taker,
                maker_order_id=f.maker_order_id,
                taker_order_id=taker_order_id,
                price=f.price,
                amount=f.amount,
            )
            for f in fills
        ]

    def place_events(
        self,
        taker,
        is_buy: bool,
        taker_order_id: int,
        fills: list[Fill],
        rest_price: int = 0,
        rest_amount: int = 0,
        *,
        closed_maker: Fill | None = None,
        unrested: int = 0,
        reason: int = 0,
    ) -> list:
        """Every log a placement must emit, in order: the trades (the last one followed by
        the `OrderClosed` of a maker it left below the minimum), the resting order or the
        `OrderClosed` of the part that does not rest (`unrested`, for `reason`), then the
        token transfers (one per run of consecutive fills against the same maker, the makers'
        escrow to the taker, a closed maker's refund, the taker's escrow to the book)."""
        pay, receive = (self.quote, self.base) if is_buy else (self.base, self.quote)
        events = self.traded_events(taker, taker_order_id, fills)
        if closed_maker is not None:
            events.append(
                self.book.OrderClosed(
                    order_id=closed_maker.maker_order_id,
                    owner=closed_maker.maker,
                    amount=closed_maker.amount,
                    reason=BELOW_MINIMUM,
                )
            )
        if unrested:
            events.append(
                self.book.OrderClosed(
                    order_id=taker_order_id, owner=taker, amount=unrested, reason=reason
                )
            )
        if rest_amount:
            events.append(
                self.book.OrderPlaced(
                    order_id=taker_order_id,
                    owner=taker,
                    is_buy=is_buy,
                    price=rest_price,
                    amount=rest_amount,
                )
            )
        payments: list[list] = []
        for f in fills:
            value = quote_of(f.price, f.amount) if is_buy else f.amount
            if payments and payments[-1][0] == f.maker.address:
                payments[-1][1] += value
            else:
                payments.append([f.maker.address, value])
        events += [pay.Transfer(sender=taker, receiver=m, value=v) for m, v in payments]
        received = sum(f.amount if is_buy else quote_of(f.price, f.amount) for f in fills)
        if received:
            events.append(receive.Transfer(sender=self.book, receiver=taker, value=received))
        if closed_maker is not None:
            events.append(
                receive.Transfer(
                    sender=self.book,
                    receiver=closed_maker.maker,
                    value=refund_of(is_buy, closed_maker),
                )
            )
        if rest_amount:
            escrow = quote_of(rest_price, rest_amount) if is_buy else rest_amount
            events.append(pay.Transfer(sender=taker, receiver=self.book, value=escrow))
        return events

    def check_place(
        self,
        taker,
        is_buy: bool,
        price: int,
        amount: int,
        fills: list[Fill],
        rest: int,
        *,
        ioc: bool = False,
        max_fills: int = 0,
        order_id: int | None = None,
        closed_maker: Fill | None = None,
        reason: int = 0,
    ) -> int:
        """Places an order and asserts its trades, events and every party's exact balance
        change, then conservation. What neither trades nor rests must be reported by an
        `OrderClosed` for `reason`; a maker the last fill leaves below the minimum is
        `closed_maker`. Returns the order id (never 0: a placement trades or rests)."""
        before = self.balances()
        # What `place` returns, from an `eth_call` on the same state (receipts carry no
        # return value without a trace).
        returned = self.book.place.call(is_buy, price, amount, ioc, max_fills, sender=taker)
        tx = self.place(taker, is_buy, price, amount, ioc=ioc, max_fills=max_fills)
        taker_id = traded_id(tx) if fills else placed_id(tx)
        assert returned == taker_id != 0
        if order_id is not None:
            assert taker_id == order_id
        unrested = amount - sum(f.amount for f in fills) - rest
        assert (unrested != 0) == (reason != 0), "say why the rest does not rest"
        assert tx.events == self.place_events(
            taker,
            is_buy,
            taker_id,
            fills,
            price,
            rest,
            closed_maker=closed_maker,
            unrested=unrested,
            reason=reason,
        )
        changes = self.expected_changes(taker, is_buy, fills, price, rest, closed_maker)
        self.assert_changes(before, changes)
        if rest:
            order = self.book.order(taker_id)
            assert (order.owner, order.is_buy, order.price, order.amount) == (
                taker.address,
                is_buy,
                price,
                rest,
            )
        self.assert_conserved()
        return taker_id

    # --- the book's state -----------------------------------------------------------------

    def open_orders(self, page: int = 100) -> dict[int, tuple]:
        """Every open order, found through the paginated `open_orders` view of each trader."""
        found = {}
        for trader in self.traders:
            cursor = 0
            while True:
                orders, cursor = self.book.open_orders(trader, cursor, page)
                for o in orders:
                    order = self.book.order(o.order_id)
                    assert order.owner == trader.address
                    assert (o.is_buy, o.price, o.amount) == (
                        order.is_buy,
                        order.price,
                        order.amount,
                    )
                    assert o.order_id not in found
                    found[o.order_id] = (order.owner, order.is_buy, order.price, order.amount)
                if cursor == 0:
                    break
        return found

    def sides(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """(bids, asks) as lists of (price, amount, orders), best first."""
        _, bids, asks = self.state()
        return bids, asks

    def assert_conserved(self, *, orders: bool = False, supply: bool = False) -> None:
        """The book holds exactly the escrow of its resting orders (per level: one price, so
        the level's quote is exact), best prices are the top levels and the book is not
        crossed. With `orders`, every open order is also read one by one, must add up to the
        levels and must be at least the minimum size; with `supply`, each token's supply must
        equal the sum of its balances."""
        balances, bids, asks = self.state()
        held = balances[self.book.address]
        assert held == (
            sum(amount for _, amount, _ in asks),
            sum(quote_of(price, amount) for price, amount, _ in bids),
        ), "book balances != escrow of its open orders"
        assert self.book.best_bid() == (bids[0][0] if bids else 0)
        assert self.book.best_ask() == (asks[0][0] if asks else 0)
        if bids and asks:
            assert bids[0][0] < asks[0][0], "crossed book"
        if orders:
            found = self.open_orders().values()
            # No dust rests (issue 9). (Raising the minimum would leave older, smaller orders
            # resting; no test leaves one behind.)
            minimum = self.book.min_size()
            assert all(amount >= minimum for *_, amount in found), "an order below the minimum"
            for levels, is_buy in ((bids, True), (asks, False)):
                by_price: dict[int, list[int]] = {}
                for _, side, price, amount in found:
                    if side == is_buy:
                        by_price.setdefault(price, []).append(amount)
                assert [(p, a, n) for p, a, n in levels] == [
                    (p, sum(by_price[p]), len(by_price[p])) for p, _, _ in levels
                ]
                assert set(by_price) == {p for p, _, _ in levels}
        if supply:
            assert_supply_conserved(self.base)
            assert_supply_conserved(self.quote)
