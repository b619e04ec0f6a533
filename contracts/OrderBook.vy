# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title OrderBook: a continuous double auction for one (base, quote) ERC-20 pair
@license GNU Affero General Public License v3.0 only
@notice Limit orders to buy or sell `base` for `quote`. An incoming order matches the
        best opposite orders while they cross, at the resting (maker) order's price, price
        first and then time first (FIFO inside a price level), with partial fills; what is
        left rests, unless the order is immediate-or-cancel, the fill cap stopped it while
        it still crossed, or it is below the minimum order size (then the rest is not taken
        and `OrderClosed` says why). No order below the minimum rests: a maker left below it
        by a partial fill is closed and refunded. A placement trades, rests or reverts with
        a reason, never a silent no-op. Settlement is direct: the
        taker pays each maker with `transferFrom` and receives the makers' escrow from the
        book, so a buyer pays the maker's price and never more (its price improvement is
        never pulled, let alone stranded). Only resting orders are escrowed: sells in
        base, buys in quote (`amount * price / 10**base_decimals`). The book's balances
        are exactly the escrow of its open orders.

        Prices are quote base units per one whole base token. `PRICE_UNIT` (quote) and
        `AMOUNT_UNIT` (base) are fixed at deployment with
        `PRICE_UNIT * AMOUNT_UNIT % 10**base_decimals == 0`; every price is a multiple of
        `PRICE_UNIT` and every amount of `AMOUNT_UNIT`, so every escrow and every fill is
        an exact integer: no rounding, nothing created or lost. Governance may change the
        tick size, lot size and minimum order size to other multiples of those units;
        open orders keep their terms.

        Storage is packed by hand (see docs/orderbook.md): one word per order (owner,
        amount, id tag), one word per price level (FIFO head and tail, amount, order count),
        one header word (best bid and ask, sequence, rules) and a three-level tick bitmap
        (`book_ticks`). Placing, filling and cancelling cost the same at any book depth.
@custom:security Governance (`owner`, the Council once ownership is transferred) can only
        change the tick size, lot size and minimum order size; it cannot touch orders or
        funds. Self-trades revert ("book: self trade"). Every external function holds the
        contract-wide reentrancy lock, and all token calls come after the state changes.
        `base` and `quote` must be plain ERC-20s (no fee on transfer, no rebasing).
"""


from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

from .interfaces import IOrderBook

implements: IOrderBook


from snekmate.auth import ownable
from .modules import book_ticks


initializes: ownable
initializes: book_ticks


# @dev Deliberately not exported: `ownable.renounce_ownership` (the rules must always have a
# governor).
exports: (
    ownable.owner,
    ownable.transfer_ownership,
)


# @dev Most fills (trades) one call makes; `max_fills = 0` means this many.
MAX_FILLS: public(constant(uint256)) = 64

# @dev Most holes (cancelled orders inside a queue) one `place` steps over; each costs one
# read. A placement that reaches this bound before its first fill reverts ("book: too many
# cancelled orders ahead"); `compact` clears any number of holes, `MAX_COMPACT` per call.
MAX_SKIPS: public(constant(uint256)) = 128

# @dev Most holes one `compact` call clears (0 means this many).
MAX_COMPACT: public(constant(uint256)) = 1_024

# @dev Bound of the matching loop: every step but the last fills or skips a hole.
MAX_STEPS: constant(uint256) = 2 * MAX_FILLS + MAX_SKIPS

# @dev Largest page of the `depth` and `open_orders` views.
MAX_PAGE: public(constant(uint256)) = 100

# @dev Most order slots one `open_orders` call reads before it returns a cursor.
MAX_SCAN: public(constant(uint256)) = 2_000

# @dev `OrderClosed.reason`: the amount left is below the minimum order size (a maker after a
# partial fill: closed and refunded; a taker's remainder: not rested), the order is
# immediate-or-cancel, or its remainder still crosses the book (fill cap or `MAX_SKIPS`
# reached): resting it would cross the book.
CLOSED_BELOW_MINIMUM: constant(uint256) = 1
CLOSED_IOC: constant(uint256) = 2
CLOSED_CROSSING: constant(uint256) = 3

MASK24: constant(uint256) = 2**24 - 1
MASK31: constant(uint256) = 2**31 - 1
MASK32: constant(uint256) = 2**32 - 1
MASK56: constant(uint256) = 2**56 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK96: constant(uint256) = 2**96 - 1
MASK160: constant(uint256) = 2**160 - 1

# @dev Header word: best bid tick | best ask tick | seq | tick size | lot size | min size.
# Ticks are 0 when that side is empty; the sizes are multiples of the units.
ASK_SHIFT: constant(uint256) = 24
SEQ_SHIFT: constant(uint256) = 48
TICK_SHIFT: constant(uint256) = 80
LOT_SHIFT: constant(uint256) = 112
MIN_SHIFT: constant(uint256) = 144

# @dev Level word: head index | tail index (next free) | amount in lots | open orders.
TAIL_SHIFT: constant(uint256) = 32
LEVEL_LOTS_SHIFT: constant(uint256) = 64
COUNT_SHIFT: constant(uint256) = 160

# @dev Order word: owner | amount in lots | tag (`seq << 1 | is_buy`). Zero: no open order.
ORDER_LOTS_SHIFT: constant(uint256) = 160
TAG_SHIFT: constant(uint256) = 224

# @dev Order id: tag | tick | index; the low 56 bits (tick | index) locate the order.
ID_TAG_SHIFT: constant(uint256) = 56


# @dev The traded token and the token it is priced in.
BASE: public(immutable(address))
QUOTE: public(immutable(address))

# @dev 10**base_decimals: prices are per this many base units.
BASE_ONE: public(immutable(uint256))

# @dev Every price is a multiple of this (quote base units); a tick is price / PRICE_UNIT.
PRICE_UNIT: public(immutable(uint256))

# @dev Every amount is a multiple of this (base base units); order amounts are kept in it.
AMOUNT_UNIT: public(immutable(uint256))

# @dev Quote for one AMOUNT_UNIT at one PRICE_UNIT: PRICE_UNIT * AMOUNT_UNIT / BASE_ONE, exact.
QUOTE_PER_UNIT: immutable(uint256)


# @dev Best bid and ask ticks, the order sequence and the trading rules (layout above).
header: uint256

# @dev Price level by tick: FIFO queue bounds, resting amount and open orders (layout above).
# A level's word is never cleared, so its tail (and with it every order id) only grows.
levels: HashMap[uint256, uint256]

# @dev Order word by location `tick << 32 | index` (layout above).
orders: HashMap[uint256, uint256]


@deploy
def __init__(
    base: address,
    quote: address,
    tick_size: uint256,
    lot_size: uint256,
    min_size: uint256,
    governance: address,
):
    """
    @notice Opens a book for `base` priced in `quote`.
    @dev `tick_size` and `lot_size` also become `PRICE_UNIT` and `AMOUNT_UNIT`, the finest
         steps governance can ever set; their product must be a multiple of
         10**base_decimals so that every fill is exact.
    @param base The traded token (any decimals).
    @param quote The token prices are paid in.
    @param tick_size Price step, in quote base units per whole base token.
    @param lot_size Amount step, in base base units.
    @param min_size Smallest order, a multiple of `lot_size`.
    @param governance The address allowed to change the rules (the Council).
    """
    assert base != empty(address) and quote != empty(address), "book: zero token"
    assert base != quote, "book: base is quote"
    assert governance != empty(address), "book: zero governance"
    assert tick_size != 0, "book: zero tick size"
    assert lot_size != 0, "book: zero lot size"
    one: uint256 = 10 ** convert(staticcall IERC20Detailed(base).decimals(), uint256)
    assert tick_size * lot_size % one == 0, "book: tick x lot not exact"
    # Bounds that make every amount the book computes fit: prices (tick < 2**24) below
    # 2**184 and quote amounts (lots < 2**64) below 2**248.
    assert tick_size <= 2**160 and tick_size * lot_size // one <= 2**160, "book: units too large"
    BASE = base
    QUOTE = quote
    BASE_ONE = one
    PRICE_UNIT = tick_size
    AMOUNT_UNIT = lot_size
    QUOTE_PER_UNIT = tick_size * lot_size // one
    ownable.__init__()
    if governance != msg.sender:
        ownable._transfer_ownership(governance)
    self._set_rules(tick_size, lot_size, min_size)


@external
def place(is_buy: bool, price: uint256, amount: uint256, ioc: bool, max_fills: uint256) -> uint256:
    """
    @notice Places a limit order: it trades against the best opposite orders while they
            cross, at their prices, and the rest rests in the book (escrowed) unless `ioc`.
    @dev Needs an allowance for what the caller pays: quote (fills at the makers' prices,
         plus `rest * price` escrow) for a buy, base for a sell. The rest is not taken
         (`OrderClosed`) if `ioc`, if matching stopped (fill cap, `MAX_SKIPS`) while the
         order still crossed, or if it is below the minimum size; a maker the last fill
         leaves below the minimum is closed and refunded (`OrderClosed`). Reverts rather
         than do nothing: an IOC that does not cross, or `MAX_SKIPS` cancelled orders
         before the first fill (`compact` clears them).
    @param is_buy True to buy base, false to sell it.
    @param price Limit price, quote base units per whole base token, on the tick.
    @param amount Base amount, a multiple of the lot size, at least the minimum size.
    @param ioc Immediate-or-cancel: trade what crosses now, never rest.
    @param max_fills Cap on the trades of this call (0: `MAX_FILLS`).
    @return The order id (also the taker id in its `Traded` and `OrderClosed` events).
    """
    return self._place(msg.sender, is_buy, price, amount, ioc, max_fills)


@external
def place_with_permit(
    is_buy: bool,
    price: uint256,
    amount: uint256,
    ioc: bool,
    max_fills: uint256,
    permit_amount: uint256,
    deadline: uint256,
    v: uint8,
    r: bytes32,
    s: bytes32,
) -> uint256:
    """
    @notice `place`, after an EIP-2612 permit of the token the caller pays (quote to buy,
            base to sell) to this book.
    @dev A failing permit is ignored, so a front-run copy of the signature cannot block the
         order; the allowance then decides.
    @param is_buy True to buy base, false to sell it.
    @param price Limit price, quote base units per whole base token, on the tick.
    @param amount Base amount, a multiple of the lot size, at least the minimum size.
    @param ioc Immediate-or-cancel: trade what crosses now, never rest.
    @param max_fills Cap on the trades of this call (0: `MAX_FILLS`).
    @param permit_amount The allowance the permit grants this book.
    @param deadline The permit's deadline.
    @param v The permit signature's v.
    @param r The permit signature's r.
    @param s The permit signature's s.
    @return The order id.
    """
    token: address = QUOTE if is_buy else BASE
    # The success flag is deliberately unused (see @dev). The permit only sets an allowance
    # on the token; the book's state is untouched until `_place`.
    permitted: bool = raw_call(
        token,
        abi_encode(
            msg.sender,
            self,
            permit_amount,
            deadline,
            v,
            r,
            s,
            method_id=method_id("permit(address,address,uint256,uint256,uint8,bytes32,bytes32)"),
        ),
        revert_on_failure=False,
    )
    return self._place(msg.sender, is_buy, price, amount, ioc, max_fills)


@external
def cancel(order_id: uint256):
    """
    @notice Cancels an open order of the caller and refunds its escrow.
    @dev O(1): a cancelled order inside a queue leaves a hole that the next taker steps over
         (or `compact` clears).
    @param order_id The order's id.
    """
    location: uint256 = order_id & MASK56
    order: uint256 = self.orders[location]
    assert order != 0 and order >> TAG_SHIFT == order_id >> ID_TAG_SHIFT, "book: unknown order"
    assert order & MASK160 == convert(msg.sender, uint256), "book: not owner"
    self.orders[location] = 0

    tick: uint256 = location >> 32
    lots: uint256 = (order >> ORDER_LOTS_SHIFT) & MASK64
    level: uint256 = self.levels[tick]
    head: uint256 = level & MASK32
    tail: uint256 = (level >> TAIL_SHIFT) & MASK32
    level_lots: uint256 = unsafe_sub((level >> LEVEL_LOTS_SHIFT) & MASK96, lots)
    count: uint256 = unsafe_sub((level >> COUNT_SHIFT) & MASK32, 1)
    if level_lots == 0:
        # The last order of the level: unmark it and, if it was the best, find the next.
        head = tail
        book_ticks._remove(tick)
        header: uint256 = self.header
        if tick == header & MASK24:
            self.header = (header & ~MASK24) | book_ticks._next_below(tick)
        elif tick == (header >> ASK_SHIFT) & MASK24:
            next_ask: uint256 = book_ticks._next_above(tick)
            self.header = (header & ~(MASK24 << ASK_SHIFT)) | (next_ask << ASK_SHIFT)
    elif location & MASK32 == head:
        head = unsafe_add(head, 1)
    self.levels[tick] = (
        head | (tail << TAIL_SHIFT) | (level_lots << LEVEL_LOTS_SHIFT) | (count << COUNT_SHIFT)
    )

    # No overflow: see the constructor's bounds.
    amount: uint256 = unsafe_mul(lots, AMOUNT_UNIT)
    log IOrderBook.OrderCancelled(order_id=order_id, owner=msg.sender, amount=amount)
    if (order >> TAG_SHIFT) & 1 == 1:
        self._push(QUOTE, msg.sender, unsafe_mul(unsafe_mul(lots, tick), QUOTE_PER_UNIT))
    else:
        self._push(BASE, msg.sender, amount)


@external
def compact(price: uint256, max_slots: uint256) -> uint256:
    """
    @notice Clears cancelled orders (holes) at the head of the queue at `price`, so that the
            next placement reaches its open orders. Anyone may call it.
    @dev Needed only when `MAX_SKIPS` or more consecutive cancelled orders sit at a
         level's head: a placement then reverts "book: too many cancelled orders ahead"
         before its first fill. Stops at the first open order; changes no order.
    @param price The level's price.
    @param max_slots Most holes to clear (at most `MAX_COMPACT`; 0 means `MAX_COMPACT`).
    @return How many holes were cleared.
    """
    limit: uint256 = max_slots
    if limit == 0 or limit > MAX_COMPACT:
        limit = MAX_COMPACT
    assert price % PRICE_UNIT == 0 and price // PRICE_UNIT <= book_ticks.MAX_TICK, "book: bad price"
    tick: uint256 = price // PRICE_UNIT
    level: uint256 = self.levels[tick]
    head: uint256 = level & MASK32
    tail: uint256 = (level >> TAIL_SHIFT) & MASK32
    cleared: uint256 = 0
    for _: uint256 in range(MAX_COMPACT):
        if cleared == limit or head == tail or self.orders[(tick << 32) | head] != 0:
            break
        head = unsafe_add(head, 1)
        cleared = unsafe_add(cleared, 1)
    assert cleared != 0, "book: no cancelled orders at the head"
    self.levels[tick] = (level & ~MASK32) | head
    log IOrderBook.Compacted(price=price, cleared=cleared)
    return cleared


@external
def set_rules(tick_size: uint256, lot_size: uint256, min_size: uint256):
    """
    @notice Sets the tick size, lot size and minimum order size for new orders.
    @dev Governance only. Open orders keep their terms; every fill stays exact because the
         new sizes are multiples of `PRICE_UNIT` and `AMOUNT_UNIT`.
    @param tick_size New price step, a multiple of `PRICE_UNIT`.
    @param lot_size New amount step, a multiple of `AMOUNT_UNIT`.
    @param min_size New smallest order, a multiple of `lot_size`.
    """
    ownable._check_owner()
    self._set_rules(tick_size, lot_size, min_size)


@view
@external
def best_bid() -> uint256:
    """
    @notice The highest bid price, or 0 when there are no bids.
    @return Quote base units per whole base token.
    """
    return (self.header & MASK24) * PRICE_UNIT


@view
@external
def best_ask() -> uint256:
    """
    @notice The lowest ask price, or 0 when there are no asks.
    @return Quote base units per whole base token.
    """
    return ((self.header >> ASK_SHIFT) & MASK24) * PRICE_UNIT


@view
@external
def depth(
    is_buy: bool, cursor: uint256, max_levels: uint256
) -> (DynArray[IOrderBook.Level, MAX_PAGE], uint256):
    """
    @notice A page of one side's price levels, best first.
    @dev Call again with the returned cursor until it is 0. The cursor is the price of the
         next level to show; if that level is gone by then, the page starts at the next
         level beyond it (and at the best level if the best price has moved past it).
         Levels added or removed between calls may be missed or shown again.
    @param is_buy True for bids, false for asks.
    @param cursor 0 to start at the best level, else the cursor a previous call returned.
    @param max_levels Page size (at most `MAX_PAGE`; 0 means `MAX_PAGE`).
    @return Price, resting base amount and number of open orders per level, and the cursor
            to continue from (0 when the side is complete).
    """
    limit: uint256 = max_levels
    if limit == 0 or limit > MAX_PAGE:
        limit = MAX_PAGE
    header: uint256 = self.header
    tick: uint256 = header & MASK24 if is_buy else (header >> ASK_SHIFT) & MASK24
    if cursor != 0:
        assert cursor % PRICE_UNIT == 0, "book: bad cursor"
        start: uint256 = cursor // PRICE_UNIT
        assert start <= book_ticks.MAX_TICK, "book: bad cursor"
        # Behind the best price, every occupied tick is a level of this side.
        if tick != 0 and (start < tick if is_buy else start > tick):
            if (self.levels[start] >> LEVEL_LOTS_SHIFT) & MASK96 != 0:
                tick = start
            elif is_buy:
                tick = book_ticks._next_below(start)
            else:
                tick = book_ticks._next_above(start)
    result: DynArray[IOrderBook.Level, MAX_PAGE] = []
    for _: uint256 in range(MAX_PAGE):
        if tick == 0 or len(result) == limit:
            break
        level: uint256 = self.levels[tick]
        result.append(
            IOrderBook.Level(
                price=tick * PRICE_UNIT,
                amount=((level >> LEVEL_LOTS_SHIFT) & MASK96) * AMOUNT_UNIT,
                orders=(level >> COUNT_SHIFT) & MASK32,
            )
        )
        if is_buy:
            tick = book_ticks._next_below(tick)
        else:
            tick = book_ticks._next_above(tick)
    return result, tick * PRICE_UNIT


@view
@external
def order(order_id: uint256) -> IOrderBook.Order:
    """
    @notice An open order by id.
    @param order_id The order's id.
    @return Owner, side, price and remaining base amount; all zero if the order is not open
            (filled, cancelled, never rested or unknown).
    """
    order: uint256 = self.orders[order_id & MASK56]
    if order == 0 or order >> TAG_SHIFT != order_id >> ID_TAG_SHIFT:
        return empty(IOrderBook.Order)
    return IOrderBook.Order(
        owner=convert(convert(order & MASK160, uint160), address),
        is_buy=(order >> TAG_SHIFT) & 1 == 1,
        price=((order_id >> 32) & MASK24) * PRICE_UNIT,
        amount=((order >> ORDER_LOTS_SHIFT) & MASK64) * AMOUNT_UNIT,
    )


@view
@external
def open_orders(
    account: address, cursor: uint256, max_results: uint256
) -> (DynArray[IOrderBook.OpenOrder, MAX_PAGE], uint256):
    """
    @notice A page of `account`'s open orders (id, side, price, remaining amount): bids best
            first, then asks best first, FIFO inside a level.
    @dev Pages through the book itself, so placing and cancelling keep no per-account
         list (which would cost a storage write per order). One call reads at most
         `MAX_SCAN` order slots; call again with the returned cursor until it is 0 (a page
         may be short, even empty, with a non-zero cursor). Orders placed or removed
         between calls may be missed or shown again.
    @param account The owner.
    @param cursor 0 to start, else the cursor a previous call returned.
    @param max_results Page size (at most `MAX_PAGE`; 0 means `MAX_PAGE`).
    @return The orders found and the cursor to continue from (0 when the scan is complete).
    """
    limit: uint256 = max_results
    if limit == 0 or limit > MAX_PAGE:
        limit = MAX_PAGE
    owner: uint256 = convert(account, uint256)
    header: uint256 = self.header
    # Cursor: phase (1 bids, 2 asks) << 64 | tick << 32 | index.
    phase: uint256 = cursor >> 64
    tick: uint256 = (cursor >> 32) & MASK24
    index: uint256 = cursor & MASK32
    if phase == 0:
        phase = 1
        tick = header & MASK24
    found: DynArray[IOrderBook.OpenOrder, MAX_PAGE] = []
    for _: uint256 in range(MAX_SCAN):
        if tick == 0:
            if phase == 2:
                return found, 0
            phase = 2
            tick = (header >> ASK_SHIFT) & MASK24
            index = 0
            continue
        level: uint256 = self.levels[tick]
        index = max(index, level & MASK32)
        if index >= (level >> TAIL_SHIFT) & MASK32 or (level >> LEVEL_LOTS_SHIFT) & MASK96 == 0:
            if phase == 1:
                tick = book_ticks._next_below(tick)
            else:
                tick = book_ticks._next_above(tick)
            index = 0
            continue
        order: uint256 = self.orders[(tick << 32) | index]
        if order != 0 and order & MASK160 == owner:
            if len(found) == limit:
                return found, (phase << 64) | (tick << 32) | index
            found.append(
                IOrderBook.OpenOrder(
                    order_id=((order >> TAG_SHIFT) << ID_TAG_SHIFT) | (tick << 32) | index,
                    is_buy=(order >> TAG_SHIFT) & 1 == 1,
                    price=tick * PRICE_UNIT,
                    amount=((order >> ORDER_LOTS_SHIFT) & MASK64) * AMOUNT_UNIT,
                )
            )
        index += 1
    if tick == 0 and phase == 2:
        return found, 0
    return found, (phase << 64) | (tick << 32) | index


@view
@external
def tick_size() -> uint256:
    """
    @notice The price step for new orders.
    @return Quote base units per whole base token.
    """
    return ((self.header >> TICK_SHIFT) & MASK32) * PRICE_UNIT


@view
@external
def lot_size() -> uint256:
    """
    @notice The amount step for new orders.
    @return Base base units.
    """
    return ((self.header >> LOT_SHIFT) & MASK32) * AMOUNT_UNIT


@view
@external
def min_size() -> uint256:
    """
    @notice The smallest new order.
    @return Base base units.
    """
    return ((self.header >> MIN_SHIFT) & MASK64) * AMOUNT_UNIT


@view
@external
def order_seq() -> uint256:
    """
    @notice How many orders traded on entry (the last sequence number given out).
    @return The sequence number.
    """
    return (self.header >> SEQ_SHIFT) & MASK32


@internal
def _place(
    taker: address, is_buy: bool, price: uint256, amount: uint256, ioc: bool, max_fills: uint256
) -> uint256:
    stored_header: uint256 = self.header
    header: uint256 = stored_header
    assert amount != 0, "book: zero amount"
    assert price != 0, "book: zero price"
    # The steps are the tick and lot sizes `set_rules` took (so the products fit) and are not
    # zero; so are the units.
    step: uint256 = unsafe_mul((header >> TICK_SHIFT) & MASK32, PRICE_UNIT)
    assert unsafe_mul(unsafe_div(price, step), step) == price, "book: price not on tick"
    tick: uint256 = unsafe_div(price, PRICE_UNIT)
    assert tick <= book_ticks.MAX_TICK, "book: price out of range"
    step = unsafe_mul((header >> LOT_SHIFT) & MASK32, AMOUNT_UNIT)
    assert unsafe_mul(unsafe_div(amount, step), step) == amount, "book: amount not on lot"
    lots: uint256 = unsafe_div(amount, AMOUNT_UNIT)
    min_lots: uint256 = (header >> MIN_SHIFT) & MASK64
    assert lots >= min_lots, "book: amount below minimum"
    assert lots <= MASK64, "book: amount too large"
    fill_cap: uint256 = max_fills
    if fill_cap == 0:
        fill_cap = MAX_FILLS
    assert fill_cap <= MAX_FILLS, "book: fill cap too high"

    # The id the order rests under: the next index of its level (matching never moves a
    # tail). An order that trades also takes a sequence number, so that its id stays unique
    # when it does not rest.
    level: uint256 = self.levels[tick]
    order_id: uint256 = (
        (convert(is_buy, uint256) << ID_TAG_SHIFT) | (tick << 32) | ((level >> TAIL_SHIFT) & MASK32)
    )
    best: uint256 = 0
    if is_buy:
        best = (header >> ASK_SHIFT) & MASK24
    else:
        best = header & MASK24
    crosses: bool = best != 0 and (best <= tick if is_buy else best >= tick)
    if ioc:
        # Never a silent no-op: an order that can neither trade nor rest is refused.
        assert crosses, "book: ioc order does not cross"

    remaining: uint256 = lots
    received: uint256 = 0
    payees: DynArray[address, MAX_FILLS] = []
    payments: DynArray[uint256, MAX_FILLS] = []
    # A maker left below the minimum by the (last, partial) fill: closed, its rest refunded.
    refunded: address = empty(address)
    refund: uint256 = 0
    if crosses:
        seq: uint256 = ((header >> SEQ_SHIFT) & MASK32) + 1
        assert seq <= MASK31, "book: order ids exhausted"
        header = (header & ~(MASK32 << SEQ_SHIFT)) | (seq << SEQ_SHIFT)
        order_id |= seq << (ID_TAG_SHIFT + 1)

        fills: uint256 = 0
        skips: uint256 = 0
        loaded: bool = False
        best_level: uint256 = 0
        head: uint256 = 0
        level_lots: uint256 = 0
        count: uint256 = 0
        quote_per_lot: uint256 = 0
        last_payee: address = empty(address)
        for _: uint256 in range(MAX_STEPS):
            if not loaded:
                if best == 0 or (best > tick if is_buy else best < tick):
                    break
                best_level = self.levels[best]
                head = best_level & MASK32
                level_lots = (best_level >> LEVEL_LOTS_SHIFT) & MASK96
                count = (best_level >> COUNT_SHIFT) & MASK32
                quote_per_lot = unsafe_mul(best, QUOTE_PER_UNIT)
                loaded = True
            maker_location: uint256 = (best << 32) | head
            maker_order: uint256 = self.orders[maker_location]
            if maker_order == 0:
                # A hole left by a cancelled order.
                head = unsafe_add(head, 1)
                skips = unsafe_add(skips, 1)
                if skips == MAX_SKIPS:
                    break
                continue
            maker: address = convert(convert(maker_order & MASK160, uint160), address)
            assert maker != taker, "book: self trade"
            maker_lots: uint256 = (maker_order >> ORDER_LOTS_SHIFT) & MASK64
            fill: uint256 = min(remaining, maker_lots)
            remaining = unsafe_sub(remaining, fill)
            fills = unsafe_add(fills, 1)

            # No overflow: a base amount is at most a placed amount, a quote amount below
            # 2**248 (the constructor's bounds), and there are at most 64 of them.
            base_amount: uint256 = unsafe_mul(fill, AMOUNT_UNIT)
            payment: uint256 = base_amount
            if is_buy:
                payment = unsafe_mul(fill, quote_per_lot)
                received = unsafe_add(received, base_amount)
            else:
                received = unsafe_add(received, unsafe_mul(fill, quote_per_lot))
            # Consecutive fills against one maker are paid with one transfer.
            if maker == last_payee:
                paid: uint256 = unsafe_sub(len(payments), 1)
                payments[paid] = unsafe_add(payments[paid], payment)
            else:
                payees.append(maker)
                payments.append(payment)
                last_payee = maker
            maker_order_id: uint256 = ((maker_order >> TAG_SHIFT) << ID_TAG_SHIFT) | maker_location
            log IOrderBook.Traded(
                maker=maker,
                taker=taker,
                maker_order_id=maker_order_id,
                taker_order_id=order_id,
                price=unsafe_mul(best, PRICE_UNIT),
                amount=base_amount,
            )
            left: uint256 = unsafe_sub(maker_lots, fill)
            if left < min_lots:
                # Filled, or left below the minimum: the order leaves the book.
                self.orders[maker_location] = 0
                head = unsafe_add(head, 1)
                count = unsafe_sub(count, 1)
                level_lots = unsafe_sub(level_lots, maker_lots)
                if left != 0:
                    # Closed: no dust rests. Only the last fill can be partial (the taker is
                    # done), so this happens at most once per call. The maker gets back the
                    # escrow of what is left: base for an ask, quote for a bid (the token
                    # the taker receives).
                    refunded = maker
                    refund = unsafe_mul(left, AMOUNT_UNIT)
                    if not is_buy:
                        refund = unsafe_mul(left, quote_per_lot)
                    log IOrderBook.OrderClosed(
                        order_id=maker_order_id,
                        owner=maker,
                        amount=unsafe_mul(left, AMOUNT_UNIT),
                        reason=CLOSED_BELOW_MINIMUM,
                    )
            else:
                self.orders[maker_location] = unsafe_sub(maker_order, fill << ORDER_LOTS_SHIFT)
                level_lots = unsafe_sub(level_lots, fill)

            if level_lots == 0:
                # Level used up. Its word keeps the tail, so later ids at this price stay new.
                tail: uint256 = (best_level >> TAIL_SHIFT) & MASK32
                self.levels[best] = tail | (tail << TAIL_SHIFT)
                book_ticks._remove(best)
                if is_buy:
                    best = book_ticks._next_above(best)
                else:
                    best = book_ticks._next_below(best)
                loaded = False
            if remaining == 0 or fills == fill_cap:
                break

        # The loop leaves without a fill only when `MAX_SKIPS` holes came first: the level
        # still has open orders behind them. Not a silent no-op: `compact` clears them.
        assert fills != 0, "book: too many cancelled orders ahead"
        if loaded:
            self.levels[best] = (
                head
                | (best_level & (MASK32 << TAIL_SHIFT))
                | (level_lots << LEVEL_LOTS_SHIFT)
                | (count << COUNT_SHIFT)
            )
        if is_buy:
            header = (header & ~(MASK24 << ASK_SHIFT)) | (best << ASK_SHIFT)
        else:
            header = (header & ~MASK24) | best
        if remaining != 0:
            # What is left rests, unless it must not (then an event says why). An order that
            # did not cross rests whole (it is at least the minimum, and not IOC).
            closed: uint256 = 0
            if ioc:
                closed = CLOSED_IOC
            elif best != 0 and (best <= tick if is_buy else best >= tick):
                # Resting it would cross the book (a bid at or above the best ask).
                closed = CLOSED_CROSSING
            elif remaining < min_lots:
                closed = CLOSED_BELOW_MINIMUM
            if closed != 0:
                log IOrderBook.OrderClosed(
                    order_id=order_id,
                    owner=taker,
                    amount=unsafe_mul(remaining, AMOUNT_UNIT),
                    reason=closed,
                )
                remaining = 0

    escrow: uint256 = 0
    if remaining != 0:
        if remaining != lots:
            # Matching may have rewritten this very level (an opposite level used up here).
            level = self.levels[tick]
        tail: uint256 = (level >> TAIL_SHIFT) & MASK32
        assert tail < MASK32, "book: level full"
        resting_lots: uint256 = (level >> LEVEL_LOTS_SHIFT) & MASK96
        if resting_lots == 0:
            # A new level (its head already equals its tail).
            book_ticks._insert(tick)
            if is_buy:
                if tick > header & MASK24:
                    header = (header & ~MASK24) | tick
            else:
                ask: uint256 = (header >> ASK_SHIFT) & MASK24
                if ask == 0 or tick < ask:
                    header = (header & ~(MASK24 << ASK_SHIFT)) | (tick << ASK_SHIFT)
        self.orders[order_id & MASK56] = (
            ((order_id >> ID_TAG_SHIFT) << TAG_SHIFT)
            | (remaining << ORDER_LOTS_SHIFT)
            | convert(taker, uint256)
        )
        self.levels[tick] = (
            (level & MASK32)
            | (unsafe_add(tail, 1) << TAIL_SHIFT)
            | (unsafe_add(resting_lots, remaining) << LEVEL_LOTS_SHIFT)
            | (unsafe_add((level >> COUNT_SHIFT) & MASK32, 1) << COUNT_SHIFT)
        )
        # No overflow: see the constructor's bounds.
        escrow = unsafe_mul(remaining, AMOUNT_UNIT)
        log IOrderBook.OrderPlaced(
            order_id=order_id, owner=taker, is_buy=is_buy, price=price, amount=escrow
        )
        if is_buy:
            escrow = unsafe_mul(unsafe_mul(remaining, tick), QUOTE_PER_UNIT)
    if header != stored_header:
        self.header = header

    # Interactions last: pay the makers, hand over their escrow, refund a closed maker's
    # rest, escrow the rest. Every successful placement traded or rested.
    pay_token: address = BASE
    receive_token: address = QUOTE
    if is_buy:
        pay_token = QUOTE
        receive_token = BASE
    if received != 0:
        for i: uint256 in range(len(payees), bound=MAX_FILLS):
            self._pull(pay_token, taker, payees[i], payments[i])
        self._push(receive_token, taker, received)
        if refund != 0:
            self._push(receive_token, refunded, refund)
    if escrow != 0:
        self._pull(pay_token, taker, self, escrow)
    return order_id


@internal
def _set_rules(tick_size: uint256, lot_size: uint256, min_size: uint256):
    assert tick_size != 0 and tick_size % PRICE_UNIT == 0, "book: tick not a price unit multiple"
    assert lot_size != 0 and lot_size % AMOUNT_UNIT == 0, "book: lot not an amount unit multiple"
    assert min_size >= lot_size and min_size % lot_size == 0, "book: min size not a lot multiple"
    tick_units: uint256 = tick_size // PRICE_UNIT
    lot_units: uint256 = lot_size // AMOUNT_UNIT
    min_units: uint256 = min_size // AMOUNT_UNIT
    assert tick_units <= MASK32 and lot_units <= MASK32, "book: step too large"
    assert min_units <= MASK64, "book: min size too large"
    # Keep the best prices and the sequence (the low 80 bits), replace the rules.
    self.header = (
        (self.header & (2**TICK_SHIFT - 1))
        | (tick_units << TICK_SHIFT)
        | (lot_units << LOT_SHIFT)
        | (min_units << MIN_SHIFT)
    )
    log IOrderBook.RulesSet(tick_size=tick_size, lot_size=lot_size, min_size=min_size)


@internal
def _pull(token: address, sender: address, receiver: address, amount: uint256):
    assert extcall IERC20(token).transferFrom(
        sender, receiver, amount, default_return_value=True
    ), "book: transfer failed"


@internal
def _push(token: address, receiver: address, amount: uint256):
    assert extcall IERC20(token).transfer(
        receiver, amount, default_return_value=True
    ), "book: transfer failed"
