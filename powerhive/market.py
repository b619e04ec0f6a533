"""The order book off chain: its cursor-paged views and a preview of an order's fills.

`collect_pages` follows the cursor of `depth` and `open_orders` (`contracts/OrderBook.vy`)
for any caller: a web3 handle (the CLI) or an Ape contract (the demo). `preview` walks the
opposite side's levels as the book matches: best price first, at the resting order's price,
while the order's limit crosses; what is left rests unless it is immediate-or-cancel or below
the minimum size. A preview is what the book would do if nothing changes before the order is
mined; the fill cap (`max_fills`, 64 trades) can stop an order that meets many small orders
earlier, which the preview reports as a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from powerhive.units import ENT_DECIMALS, quote_for

MAX_FILLS = 64  # OrderBook.MAX_FILLS


def collect_pages(fetch: Callable[[int], tuple[Sequence, int]]) -> list:
    """Every item of a cursor-paged view: `fetch(cursor) -> (items, next cursor or 0)`."""
    items, cursor = fetch(0)
    found = list(items)
    while cursor != 0:
        items, cursor = fetch(cursor)
        found += list(items)
    return found


@dataclass(frozen=True)
class Level:
    price: int  # quote base units per whole base token
    amount: int  # base units resting
    orders: int


@dataclass(frozen=True)
class Fill:
    price: int
    amount: int
    quote: int  # what changes hands in quote base units


@dataclass
class Preview:
    is_buy: bool
    price: int
    amount: int
    fills: list[Fill] = field(default_factory=list)
    rest: int = 0  # base units that would rest in the book
    dropped: int = 0  # base units neither filled nor rested (IOC, below the minimum)
    warning: str = ""

    @property
    def filled(self) -> int:
        return sum(f.amount for f in self.fills)

    @property
    def quote_traded(self) -> int:
        return sum(f.quote for f in self.fills)

    def quote_needed(self, base_decimals: int = ENT_DECIMALS) -> int:
        """Quote a buy pays at most: its fills plus the escrow of what rests."""
        return self.quote_traded + quote_for(self.rest, self.price, base_decimals=base_decimals)


def preview(
    opposite: Sequence[Level],
    *,
    is_buy: bool,
    price: int,
    amount: int,
    ioc: bool,
    min_size: int,
    base_decimals: int = ENT_DECIMALS,
) -> Preview:
    """What `place(is_buy, price, amount, ioc)` does against `opposite` (best first)."""
    result = Preview(is_buy=is_buy, price=price, amount=amount)
    left = amount
    orders_met = 0
    for level in opposite:
        crosses = level.price <= price if is_buy else level.price >= price
        if left == 0 or not crosses:
            break
        take = min(left, level.amount)
        result.fills.append(
            Fill(level.price, take, quote_for(take, level.price, base_decimals=base_decimals))
        )
        left -= take
        orders_met += level.orders
    if orders_met > MAX_FILLS:
        result.warning = (
            f"the order meets up to {orders_met} resting orders; the book fills at most "
            f"{MAX_FILLS} per call and does not rest a remainder that still crosses"
        )
    if left and not ioc and left >= min_size:
        result.rest = left
    else:
        result.dropped = left
    return result
