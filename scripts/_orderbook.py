"""The ENT / eEuro order book: deployment, the community demo and the gas measurement.

Not an `ape run` entry point (the leading underscore hides it). `scripts/orderbook_gas.py`
runs `measure_orderbook_gas`; the shared deploy, demo and gas scripts call the rest.

Parameters for ENT (18 decimals, 1 ENT = 1 kWh) priced in eEuro (6 decimals):

- tick 0.001 eEuro/kWh (1,000 eEuro base units): a tenth of a cent per kWh is finer than
  any retail or community tariff, and with 24-bit ticks prices reach 16,777 eEuro/kWh;
- lot 1 Wh (10**15 ENT base units), the resolution of the energy ledger (SPEC §0);
- minimum order 10 Wh (0.01 ENT): a trade worth at least 0.001 eEuro at the lowest tick,
  which keeps one-tick dust orders out of the book.

tick * lot = 10**3 * 10**15 = 10**18 = 10**decimals(ENT): one lot at one tick costs exactly
one eEuro base unit, so every fill is an exact number of eEuro base units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ape import chain, project
from ape.api import AccountAPI
from ape.contracts import ContractInstance
from rich.console import Console
from rich.table import Table

from powerhive.market import collect_pages
from powerhive.units import EEURO_DECIMALS, format_kwh, format_units, parse_price

ENT_TICK = 1_000  # 0.001 eEuro per kWh
ENT_LOT = 10**15  # 1 Wh
ENT_MIN_SIZE = 10**16  # 10 Wh

ONE_ENT = 10**18
ONE_EEURO = 10**6
MAX_UINT = 2**256 - 1

# Gas targets of issue 9 (full-transaction gas, at every measured depth), replacing issue 5's.
TARGET_REST_EXISTING = 77_000
TARGET_REST_NEW = 100_000
TARGET_FILL_1_KEEPS_LEVEL = 76_000
TARGET_FILL_1_EMPTIES_LEVEL = 87_000
TARGET_FILL_10_ONE_PRICE = 192_000
TARGET_FILL_10_PRICES = 264_000
TARGET_CANCEL = 48_000
TARGET_CANCEL_LAST = 60_000
# Flat: gas at depth 1,000 at most this much above depth 10, for every operation.
TARGET_GROWTH = 0.005
# The reference contract this market replaces (issue 5), gas per order by book depth.
REFERENCE_GAS = {1: 222_497, 100: 1_507_683, 200: 3_275_569}
DEPTHS = (0, 10, 100, 1_000)


def deploy_orderbook(
    deployer: AccountAPI, base, quote, governance, *, tick_size: int = ENT_TICK
) -> ContractInstance:
    """Deploy the book for `base` (an 18-decimals token such as ENT) priced in `quote` (eEuro).

    `governance` (the Council) is the only address that may later change the rules.
    """
    return deployer.deploy(
        project.OrderBook, base, quote, tick_size, ENT_LOT, ENT_MIN_SIZE, governance
    )


def placed_id(receipt) -> int:
    """The id of the order a `place` receipt left resting."""
    (log,) = (log for log in receipt.events if log.event_name == "OrderPlaced")
    return log.order_id


def _ent(amount: int) -> str:
    return format_kwh(amount)


def _eur(amount: int) -> str:
    return format_units(amount, EEURO_DECIMALS, min_places=3)


def all_levels(book: ContractInstance, is_buy: bool, page: int = 0) -> list:
    """Every price level of one side, best first, through `depth`'s cursor (`page` levels
    per call; 0: the book's largest page)."""
    return collect_pages(lambda cursor: book.depth(is_buy, cursor, page))


def all_open_orders(book: ContractInstance, account, page: int = 0) -> list:
    """Every open order of `account` (id, side, price, remaining amount) through
    `open_orders`' cursor: bids best first, then asks."""
    return collect_pages(lambda cursor: book.open_orders(account, cursor, page))


def book_table(book: ContractInstance, title: str, levels: int = 10) -> Table:
    """The top `levels` price levels of both sides, asks above bids."""
    table = Table(title=title)
    table.add_column("side")
    table.add_column("price (eEuro/kWh)", justify="right")
    table.add_column("amount (kWh)", justify="right")
    table.add_column("orders", justify="right")
    asks, _ = book.depth(False, 0, levels)
    bids, _ = book.depth(True, 0, levels)
    for level in reversed(asks):
        table.add_row("ask", _eur(level.price), _ent(level.amount), str(level.orders))
    table.add_section()
    for level in bids:
        table.add_row("bid", _eur(level.price), _ent(level.amount), str(level.orders))
    return table


def open_orders_table(book: ContractInstance, people: dict, title: str) -> Table:
    """Every member's open orders, from the `open_orders` view."""
    table = Table(title=title)
    for column in ("member", "order id", "side", "price (eEuro/kWh)", "left (kWh)"):
        table.add_column(column, justify="left" if column in ("member", "side") else "right")
    for name, account in people.items():
        for order in all_open_orders(book, account):
            side = "bid" if order.is_buy else "ask"
            table.add_row(name, f"{order.order_id:#x}", side, _eur(order.price), _ent(order.amount))
    return table


def demo_orderbook(
    book: ContractInstance,
    base: ContractInstance,
    quote: ContractInstance,
    members: Sequence[AccountAPI],
    fund: Callable[[AccountAPI, int, int], None],
) -> None:
    """Members trade energy: producers offer, consumers bid, a taker sweeps, one cancels.

    `members` needs at least four accounts; `fund(account, base_amount, quote_amount)` gives
    an account ENT and eEuro the legitimate way (the caller knows how).
    """
    console = Console()
    names = ["producer A", "producer B", "consumer C", "consumer D"]
    people = dict(zip(names, members[:4], strict=True))
    for account in people.values():
        fund(account, 50 * ONE_ENT, 50 * ONE_EEURO)
        base.approve(book, MAX_UINT, sender=account)
        quote.approve(book, MAX_UINT, sender=account)
    who = {account.address: name for name, account in people.items()}

    def price(eur: str) -> int:
        return parse_price(eur)

    steps = [
        ("producer A", False, "0.210", 10 * ONE_ENT, False, "offers 10 kWh at 0.210"),
        ("producer B", False, "0.200", 5 * ONE_ENT, False, "offers 5 kWh at 0.200"),
        ("producer A", False, "0.230", 8 * ONE_ENT, False, "offers 8 kWh at 0.230"),
        ("consumer C", True, "0.180", 6 * ONE_ENT, False, "bids 6 kWh at 0.180"),
        ("consumer D", True, "0.190", 4 * ONE_ENT, False, "bids 4 kWh at 0.190"),
        ("consumer C", True, "0.220", 12 * ONE_ENT, False, "buys 12 kWh up to 0.220"),
        ("producer B", False, "0.185", 7 * ONE_ENT, True, "sells 7 kWh down to 0.185, IOC"),
    ]
    trades = Table(title="Trades")
    for column in ("step", "maker", "taker", "price (eEuro/kWh)", "kWh", "eEuro"):
        trades.add_column(column, justify="left" if column in ("maker", "taker") else "right")
    placed: dict[int, int] = {}
    for number, (name, is_buy, eur, amount, ioc, text) in enumerate(steps, start=1):
        receipt = book.place(is_buy, price(eur), amount, ioc, 0, sender=people[name])
        console.print(f"{number}. {name} {text}")
        for log in receipt.events:
            if log.event_name == "Traded":
                trades.add_row(
                    str(number),
                    who[log.maker],
                    who[log.taker],
                    _eur(log.price),
                    _ent(log.amount),
                    _eur(log.price * log.amount // ONE_ENT),
                )
            elif log.event_name == "OrderPlaced":
                placed[number] = log.order_id
    console.print(book_table(book, "Book after the trading steps"))
    console.print(trades)
    console.print(open_orders_table(book, people, "Open orders"))

    # Producer A withdraws its remaining offer at 0.230 (found through `open_orders`).
    (order,) = (o for o in all_open_orders(book, people["producer A"]) if o.order_id == placed[3])
    order_id, remaining = order.order_id, order.amount
    book.cancel(order_id, sender=people["producer A"])
    console.print(f"8. producer A cancels order {order_id:#x}: {_ent(remaining)} kWh refunded")
    console.print(book_table(book, "Book after the cancellation"))

    balances = Table(title="Balances")
    for column in ("member", "ENT (kWh)", "eEuro"):
        balances.add_column(column, justify="left" if column == "member" else "right")
    for name, account in people.items():
        balances.add_row(name, _ent(base.balanceOf(account)), _eur(quote.balanceOf(account)))
    balances.add_row("book (escrow)", _ent(base.balanceOf(book)), _eur(quote.balanceOf(book)))
    console.print(balances)


class _GasBench:
    """A fresh ENT-like / eEuro book and the accounts that trade on it."""

    AMOUNT = ONE_ENT  # every measured order: 1 kWh
    BID_DEEP, ASK_DEEP = 400, 600  # ticks of the two deep levels
    SPREAD_BID, SPREAD_ASK = 450, 500  # new levels inside the spread used by the operations

    def __init__(self, deployer: AccountAPI, accounts: Sequence[AccountAPI]):
        if len(accounts) < 12:
            raise ValueError("measure_orderbook_gas needs 12 accounts")
        self.deployer = deployer
        self.makers = [a for a in accounts if a.address != deployer.address][:11]
        self.taker = self.makers.pop()
        base = deployer.deploy(project.HiveToken, deployer)  # 18 decimals, like ENT
        quote = deployer.deploy(project.EEuro, deployer)
        quote.set_banker(deployer, sender=deployer)
        self.book = deploy_orderbook(deployer, base, quote, deployer)
        for account in [*self.makers, self.taker]:
            # Every member already holds both tokens (no first-ever balance on the hot path).
            base.transfer(account, 100_000 * ONE_ENT, sender=deployer)
            quote.mint(account, 100_000 * ONE_EEURO, sender=deployer)
            base.approve(self.book, MAX_UINT, sender=account)
            quote.approve(self.book, MAX_UINT, sender=account)
        self.placed = 0  # background orders in the book
        self.bid_singles = 0
        self.ask_singles = 0

    def price(self, tick: int) -> int:
        return tick * ENT_TICK

    def place(self, account, is_buy: bool, tick: int, lots: int = 1, extra: int = 0):
        """`lots` kWh and `extra` base units more."""
        amount = lots * self.AMOUNT + extra
        return self.book.place(is_buy, self.price(tick), amount, False, 0, sender=account)

    def grow_to(self, depth: int) -> None:
        """Add background orders until `depth` rest: per side half in one deep level and half
        in single-order levels moving away from the spread."""
        while self.placed < depth:
            is_buy = self.placed % 2 == 0
            k = self.placed // 2  # orders already on this side
            owner = self.makers[self.placed % len(self.makers)]
            if k % 2 == 0:
                tick = self.BID_DEEP if is_buy else self.ASK_DEEP
            elif is_buy:
                self.bid_singles += 1
                tick = self.BID_DEEP - self.bid_singles
            else:
                self.ask_singles += 1
                tick = self.ASK_DEEP + self.ask_singles
            self.place(owner, is_buy, tick)
            self.placed += 1

    def measure(self, depth: int) -> list[dict]:
        m = self.makers
        lowest_bid = self.BID_DEEP - self.bid_singles
        operations: list[tuple[str, int, Callable]] = []

        def rest_existing():
            if depth == 0:
                self.place(m[0], True, self.BID_DEEP)
            return self.place(self.taker, True, self.BID_DEEP)

        def rest_new():
            if depth == 0:
                self.place(m[0], True, self.BID_DEEP)
            return self.place(self.taker, True, lowest_bid - 1)

        def rest_new_best():
            if depth == 0:
                self.place(m[0], True, self.BID_DEEP)
            return self.place(self.taker, True, self.SPREAD_BID)

        def fill_one_keeps_level():
            self.place(m[0], False, self.SPREAD_ASK)
            self.place(m[1], False, self.SPREAD_ASK)
            return self.place(self.taker, True, self.SPREAD_ASK)

        def fill_one_empties_level():
            self.place(m[0], False, self.SPREAD_ASK)
            return self.place(self.taker, True, self.SPREAD_ASK)

        def fill_ten_one_price():
            for maker in m[:10]:
                self.place(maker, False, self.SPREAD_ASK)
            self.place(m[0], False, self.SPREAD_ASK)  # an 11th order keeps the level
            return self.place(self.taker, True, self.SPREAD_ASK, 10)

        def fill_ten_prices():
            for i, maker in enumerate(m[:10]):
                self.place(maker, False, self.SPREAD_ASK - i)
            return self.place(self.taker, True, self.SPREAD_ASK, 10)

        def fill_one_closes_dust_maker():
            # 1.005 kWh rest; a 1 kWh buy leaves 5 Wh (< 10 Wh): closed and refunded.
            self.place(m[0], False, self.SPREAD_ASK, extra=5 * ENT_LOT)
            self.place(m[1], False, self.SPREAD_ASK)
            return self.place(self.taker, True, self.SPREAD_ASK)

        def fill_one_dust_remainder():
            # A 1.005 kWh buy fills 1 kWh; its 5 Wh remainder is not rested.
            self.place(m[0], False, self.SPREAD_ASK)
            return self.place(self.taker, True, self.SPREAD_ASK, extra=5 * ENT_LOT)

        def cancel_keeps_level():
            # At depth 0 the cancelled order is its level's head; deeper, it is inside the queue.
            first = placed_id(self.place(m[0], True, self.BID_DEEP))
            self.place(m[1], True, self.BID_DEEP)
            return self.book.cancel(first, sender=m[0])

        def cancel_empties_level():
            order_id = placed_id(self.place(m[0], True, self.SPREAD_BID))
            return self.book.cancel(order_id, sender=m[0])

        operations = [
            ("order that rests at an existing price level", TARGET_REST_EXISTING, rest_existing),
            ("order that rests at a new price level", TARGET_REST_NEW, rest_new),
            ("order that rests at a new best price level", TARGET_REST_NEW, rest_new_best),
            (
                "order filling 1 resting order (level keeps others)",
                TARGET_FILL_1_KEEPS_LEVEL,
                fill_one_keeps_level,
            ),
            (
                "order filling 1 resting order (empties its level)",
                TARGET_FILL_1_EMPTIES_LEVEL,
                fill_one_empties_level,
            ),
            (
                "order filling 10 resting orders at one price",
                TARGET_FILL_10_ONE_PRICE,
                fill_ten_one_price,
            ),
            (
                "order filling 10 resting orders across 10 prices",
                TARGET_FILL_10_PRICES,
                fill_ten_prices,
            ),
            ("cancel (level keeps others)", TARGET_CANCEL, cancel_keeps_level),
            ("cancel (last order of its level)", TARGET_CANCEL_LAST, cancel_empties_level),
            # The dust rule's own paths (no target: a refund transfer, or a remainder not
            # taken, on top of a fill).
            (
                "fill leaving its maker below the minimum (closed, refunded)",
                None,
                fill_one_closes_dust_maker,
            ),
            (
                "fill whose remainder is below the minimum (not rested)",
                None,
                fill_one_dust_remainder,
            ),
        ]
        rows = []
        for name, target, run in operations:
            snapshot = chain.snapshot()
            try:
                gas = int(run().gas_used)
            finally:
                chain.restore(snapshot)
            rows.append(
                {
                    "operation": name,
                    "depth": depth,
                    "gas": gas,
                    "target": target,
                    "ok": target is None or gas <= target,
                }
            )
        return rows


def measure_orderbook_gas(deployer: AccountAPI, accounts: Sequence[AccountAPI]) -> list[dict]:
    """Full-transaction gas (`receipt.gas_used`) of each book operation at depths 0, 10, 100
    and 1,000 resting orders. Needs 12 funded accounts (deployer included or not).

    Each operation runs from a chain snapshot of the book at that depth, so none of them
    changes the next. Every order is 1 kWh; members hold both tokens and approved the book
    for the maximum (so no allowance write, no first-ever balance).
    """
    bench = _GasBench(deployer, accounts)
    rows: list[dict] = []
    for depth in DEPTHS:
        bench.grow_to(depth)
        rows += bench.measure(depth)
    return rows


def _by_operation(rows: list[dict]) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for r in rows:
        entry = table.setdefault(r["operation"], {"target": r["target"], "gas": {}})
        entry["gas"][r["depth"]] = r["gas"]
    return table


def _growth_of(entry: dict) -> float | None:
    gas = entry["gas"]
    if 10 in gas and 1_000 in gas:
        return (gas[1_000] - gas[10]) / gas[10]
    return None


def _status(entry: dict) -> str:
    """ "met", or what was missed: the gas target at the worst depth, or flatness."""
    missed = []
    worst_depth, worst = max(entry["gas"].items(), key=lambda kv: kv[1])
    if entry["target"] is not None and worst > entry["target"]:
        over = worst - entry["target"]
        missed.append(f"missed by {over:,} ({over / entry['target']:.0%}) at depth {worst_depth:,}")
    growth = _growth_of(entry)
    if growth is not None and growth > TARGET_GROWTH:
        missed.append(f"not flat: {growth:+.2%} from depth 10 to 1,000")
    if missed:
        return "; ".join(missed)
    return "met" if entry["target"] is not None else "flat (no gas target)"


def _target(entry: dict) -> str:
    return f"≤ {entry['target']:,}" if entry["target"] is not None else "—"


def _growth(entry: dict) -> str:
    growth = _growth_of(entry)
    return "—" if growth is None else f"{growth:+.2%}"


def gas_markdown(rows: list[dict]) -> str:
    """docs/gas-orderbook.md: gas per operation by depth, targets, and the reference."""
    depths = sorted({r["depth"] for r in rows})
    table = _by_operation(rows)
    out = [
        "# Order book gas by book depth",
        "",
        "Full-transaction gas (`receipt.gas_used`, after refunds) measured on Anvil (cancun) by",
        "`ape run orderbook_gas` (`scripts/_orderbook.py::measure_orderbook_gas`). Depth is the",
        "number of other orders resting in the book (per side: half in one deep level, half in",
        "single-order levels); each operation runs from a snapshot of the book at that depth.",
        "Every order is 1 kWh; all traders already hold both tokens and approved the book for",
        "the maximum. Fills are against distinct makers. Design and analysis: `orderbook.md`.",
        "",
        "Targets (issue 9): the gas target at every depth, and flat: gas at depth 1,000 at most",
        f"{TARGET_GROWTH:.1%} above depth 10 (`growth`). The last two rows are the dust rule's",
        "own paths (issue 9, finding 6), measured for information.",
        "",
        "| operation | " + " | ".join(f"depth {d:,}" for d in depths) + " | target | growth"
        " 10 → 1,000 | status |",
        "|---|" + "---:|" * len(depths) + "---:|---:|---|",
    ]
    for operation, entry in table.items():
        cells = " | ".join(f"{entry['gas'].get(d, 0):,}" for d in depths)
        out.append(
            f"| {operation} | {cells} | {_target(entry)} | {_growth(entry)} | {_status(entry)} |"
        )
    rest = table.get("order that rests at an existing price level", {"gas": {}})["gas"]
    new = table.get("order that rests at a new price level", {"gas": {}})["gas"]
    out += [
        "",
        "## Against the reference contract",
        "",
        "The contract this market replaces, measured on Anvil (issue 5): gas for one order grows",
        "linearly with the book and fills a 30M block near 1,900 resting orders.",
        "",
        "| book depth | reference contract | this book: rests at an existing level "
        "| this book: rests at a new level |",
        "|---:|---:|---:|---:|",
    ]
    for depth in sorted({*REFERENCE_GAS, *depths}):
        ref = f"{REFERENCE_GAS[depth]:,}" if depth in REFERENCE_GAS else "—"
        ours = f"{rest[depth]:,}" if depth in rest else "—"
        ours_new = f"{new[depth]:,}" if depth in new else "—"
        out.append(f"| {depth:,} | {ref} | {ours} | {ours_new} |")
    return "\n".join(out) + "\n"


def gas_table(rows: list[dict]) -> Table:
    """The same numbers as a rich table."""
    depths = sorted({r["depth"] for r in rows})
    table = Table(title="Order book gas by book depth (receipt.gas_used)")
    table.add_column("operation")
    for depth in depths:
        table.add_column(f"depth {depth:,}", justify="right")
    table.add_column("target", justify="right")
    table.add_column("10 → 1,000", justify="right")
    table.add_column("status")
    for operation, entry in _by_operation(rows).items():
        status = _status(entry)
        table.add_row(
            operation,
            *(f"{entry['gas'].get(d, 0):,}" for d in depths),
            _target(entry),
            _growth(entry),
            f"[red]{status}[/]" if "missed" in status or "not flat" in status else status,
        )
    return table
