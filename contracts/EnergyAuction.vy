# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title EnergyAuction: English auctions of ENT for one stablecoin, with escrow
@license GNU Affero General Public License v3.0 only
@notice A seller offers an amount of ENT (escrowed here) with a reserve price and an end time;
        buyers bid a price per kWh in the house's stablecoin (escrowed here). A bid must reach
        the reserve (the first) or beat the highest by the minimum increment; the bid it beats
        is credited, whole, to the outbid bidder's free balance in this house, which they
        `withdraw` (pull: nothing here sends to a bidder during a bid, so no bidder can block
        another) or spend on their next bid. A bid less than `window` seconds before the end
        moves the end to `window` seconds after the bid, never beyond the original end plus
        `cap` (anti-sniping with a bounded total extension). From the end on, anyone settles:
        ENT to the highest bidder and the escrowed payment to the seller, or the ENT back to
        the seller if no bid reached the reserve. The seller may cancel until the first bid.
        Many auctions at once, each with its own id; `open_auctions` pages through them.

        Prices are stablecoin base units per 1 ENT (10**18 ENT base units = 1 kWh, SPEC §0).
        Amounts are whole Wh (a multiple of 10**15 ENT base units), and a bid escrows
        `ceil(wh * price / 1000)`: escrow rounds up, the seller receives exactly the winning
        escrow and a refund is exactly the escrow it returns, so nothing is created or lost.
        The minimum next price is `price + ceil(price * increment / 10**18)`, which is always
        above `price`. The increment, window and cap are governed (the Council) and copied into
        an auction when it is created: a change never applies to an auction already open.

        One house per stablecoin (like the order book, one per pair): the coin is an immutable,
        so a bid reads no coin record. With a Beekeeper, the coin must be on its stablecoin list
        and not frozen, at deployment and at every `create`; a coin frozen later stops new
        auctions, while open ones run to settlement in the coin their bids are escrowed in.
@dev Storage words, packed by hand so that a bid touches three of them (auction, bid, the
     bidder's credit) plus the outbid bidder's credit:
     - auction (`_auctions[id]`): wh (0..63) | ends_at (64..103) | max_ends_at (104..143)
       | window (144..175) | increment wad (176..239). Non-zero exactly while the auction is
       open (wh > 0); settling or cancelling clears it.
     - bid (`_bids[id]`): bidder (0..159) | price (160..255). Written at `create` with no bidder
       and the reserve as the price, so the first bid rewrites a non-zero word (2,900 gas, not
       20,000) and one comparison checks both the reserve and the increment.
     - seller (`_sellers[id]`): seller (0..159) | reserve (160..255); read only at settle,
       cancel and in views.
     - credit (`_credits[account]`): balance << 1 | 1. The low bit is set the first time an
       account is credited or pays from its balance, and a bid that spends the balance keeps
       it, so the word does not return to zero in a bidding war: crediting an account that was
       refunded before costs 2,900 gas, not 20,000. Only withdrawing the whole balance clears
       the word. Free balance = word >> 1.
     Settling and cancelling clear the three auction words (a gas refund of 4,800 each): a
     closed auction's outcome lives in its events; `auction(id)` then says `STATUS_CLOSED`.
@custom:security Governance (`owner`, the Council) sets only the increment, window and cap of
        future auctions; it cannot touch an auction, a bid or a balance. `ENT` and the
        stablecoin must be plain ERC-20s (no fee on transfer, no rebasing, no hooks): ENT is
        the ledger's snekmate ERC-20, whose only transfer restriction is "not to the ledger";
        eEuro's is "not to eEuro". Neither can be a seller or a winner (they never call this
        house), so the two pushes of `settle` cannot be blocked. Every external function holds
        the contract-wide reentrancy lock and token calls come after the state changes.
        Shill bidding (a seller bidding through another account) cannot be told apart on
        chain; the house does not pretend to stop it.
"""


from ethereum.ercs import IERC20

from .interfaces import IEnergyAuction

implements: IEnergyAuction


from snekmate.auth import ownable


initializes: ownable


# @dev Deliberately not exported: `ownable.renounce_ownership` (the parameters must always have
# a governor).
exports: (
    ownable.owner,
    ownable.transfer_ownership,
)


struct CoinInfo:
    status: uint8
    decimals: uint8
    code: String[8]
    book: address


interface IBeekeeper:
    def stablecoin_info(token: address) -> CoinInfo: view


WAD: constant(uint256) = 10**18

# @dev ENT base units per Wh: auction amounts are whole Wh.
WH: constant(uint256) = 10**15

# @dev Beekeeper stablecoin status of a listed, unfrozen coin.
COIN_LISTED: constant(uint8) = 1
COIN_FROZEN: constant(uint8) = 2

# @dev `AuctionView.status`: no such auction yet, open (bidding or awaiting settlement), closed
# (settled or cancelled; its events say which).
STATUS_NONE: public(constant(uint8)) = 0
STATUS_OPEN: public(constant(uint8)) = 1
STATUS_CLOSED: public(constant(uint8)) = 2

# @dev Longest auction: its end at most this long after its creation.
MAX_DURATION: public(constant(uint256)) = 90 * 86400

# @dev Bounds of the governed anti-sniping parameters.
MAX_WINDOW: public(constant(uint256)) = 86400
MAX_CAP: public(constant(uint256)) = 7 * 86400

# @dev Largest price and reserve (stablecoin base units per kWh) and amount (Wh): the packed
# fields, and `wh * price < 2**160` for the escrow.
MAX_PRICE: public(constant(uint256)) = 2**96 - 1
MAX_WH: public(constant(uint256)) = 2**64 - 1

# @dev Largest page of `open_auctions`, and most ids one call reads before it returns a cursor.
MAX_PAGE: public(constant(uint256)) = 50
MAX_SCAN: public(constant(uint256)) = 1_000

MASK32: constant(uint256) = 2**32 - 1
MASK40: constant(uint256) = 2**40 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK160: constant(uint256) = 2**160 - 1

# @dev Auction word shifts (layout above).
ENDS_SHIFT: constant(uint256) = 64
MAX_ENDS_SHIFT: constant(uint256) = 104
WINDOW_SHIFT: constant(uint256) = 144
INCREMENT_SHIFT: constant(uint256) = 176

# @dev Bid and seller words: the price or reserve above the address.
PRICE_SHIFT: constant(uint256) = 160

# @dev Parameters word: increment (0..63) | window (64..95) | cap (96..127).
PARAM_WINDOW_SHIFT: constant(uint256) = 64
PARAM_CAP_SHIFT: constant(uint256) = 96


# @dev The token sold (the energy ledger) and the stablecoin bids are paid in.
ENT: public(immutable(address))
COIN: public(immutable(address))

# @dev The Beekeeper whose stablecoin list `COIN` must be on (empty: no list is consulted).
BEEKEEPER: public(immutable(address))


# @dev Governed parameters of new auctions (layout above).
_params: uint256

# @dev Id of the next auction; ids start at 1.
_next_id: uint256

_auctions: HashMap[uint256, uint256]
_bids: HashMap[uint256, uint256]
_sellers: HashMap[uint256, uint256]
_credits: HashMap[address, uint256]


@deploy
def __init__(
    ent: address,
    coin: address,
    beekeeper: address,
    governance: address,
    increment: uint256,
    window: uint256,
    cap: uint256,
):
    """
    @notice Opens an auction house selling `ent` for `coin`.
    @param ent The energy token (the EnergyLedger).
    @param coin The stablecoin bids are paid in.
    @param beekeeper The Beekeeper whose list `coin` must be on, or empty for none.
    @param governance The address allowed to change the parameters (the Council).
    @param increment Minimum increment over the highest bid, wad (0.02 * 10**18 = 2%).
    @param window Anti-sniping window in seconds (0: no extension).
    @param cap Most seconds an auction's end can move by extensions.
    """
    assert ent != empty(address) and coin != empty(address), "auction: zero token"
    assert ent != coin, "auction: ent is coin"
    assert governance != empty(address), "auction: zero governance"
    ENT = ent
    COIN = coin
    BEEKEEPER = beekeeper
    self._check_coin()
    ownable.__init__()
    if governance != msg.sender:
        ownable._transfer_ownership(governance)
    self._set_parameters(increment, window, cap)
    self._next_id = 1


# ---------------------------------------------------------------------------------------
# Sellers
# ---------------------------------------------------------------------------------------


@external
def create(amount: uint256, reserve: uint256, ends_at: uint256) -> uint256:
    """
    @notice Offers `amount` ENT (escrowed here) to the highest bidder at or above `reserve`.
    @dev Needs an ENT allowance of `amount`. The auction keeps the parameters in force now.
    @param amount ENT base units, a non-zero multiple of 10**15 (whole Wh).
    @param reserve Lowest acceptable price, stablecoin base units per kWh, non-zero.
    @param ends_at Unix time of the end, after now and at most `MAX_DURATION` from now.
    @return The auction's id.
    """
    assert amount != 0, "auction: zero amount"
    assert amount % WH == 0, "auction: amount not whole Wh"
    wh: uint256 = amount // WH
    assert wh <= MAX_WH, "auction: amount too large"
    assert reserve != 0, "auction: zero reserve"
    assert reserve <= MAX_PRICE, "auction: price too large"
    assert ends_at > block.timestamp, "auction: end not in the future"
    assert ends_at <= block.timestamp + MAX_DURATION, "auction: end too far"
    self._check_coin()

    params: uint256 = self._params
    increment: uint256 = params & MASK64
    window: uint256 = (params >> PARAM_WINDOW_SHIFT) & MASK32
    max_ends_at: uint256 = ends_at + (params >> PARAM_CAP_SHIFT)
    auction_id: uint256 = self._next_id
    self._next_id = auction_id + 1
    self._auctions[auction_id] = (
        wh
        | ends_at << ENDS_SHIFT
        | max_ends_at << MAX_ENDS_SHIFT
        | window << WINDOW_SHIFT
        | increment << INCREMENT_SHIFT
    )
    self._bids[auction_id] = reserve << PRICE_SHIFT
    self._sellers[auction_id] = reserve << PRICE_SHIFT | convert(msg.sender, uint256)
    log IEnergyAuction.AuctionCreated(
        auction_id=auction_id,
        seller=msg.sender,
        amount=amount,
        reserve=reserve,
        ends_at=ends_at,
        max_ends_at=max_ends_at,
        window=window,
        increment=increment,
    )
    assert extcall IERC20(ENT).transferFrom(
        msg.sender, self, amount, default_return_value=True
    ), "auction: ent transfer failed"
    return auction_id


@external
def cancel(auction_id: uint256):
    """
    @notice Withdraws an auction that has no bid and returns its ENT to the seller.
    @param auction_id An open auction of the caller without a bid.
    """
    word: uint256 = self._auctions[auction_id]
    assert word != 0, "auction: not open"
    assert self._sellers[auction_id] & MASK160 == convert(msg.sender, uint256), (
        "auction: not seller"
    )
    assert self._bids[auction_id] & MASK160 == 0, "auction: has a bid"
    self._clear(auction_id)
    amount: uint256 = (word & MASK64) * WH
    log IEnergyAuction.AuctionCancelled(auction_id=auction_id, seller=msg.sender, amount=amount)
    assert extcall IERC20(ENT).transfer(msg.sender, amount, default_return_value=True), (
        "auction: ent transfer failed"
    )


# ---------------------------------------------------------------------------------------
# Bidders
# ---------------------------------------------------------------------------------------


@external
def bid(auction_id: uint256, price: uint256):
    """
    @notice Bids `price` per kWh for the whole lot of an auction.
    @dev Escrows `ceil(wh * price / 1000)`: from the caller's free balance first, the rest
         pulled with `transferFrom` (needs that allowance). The highest bid it beats is
         credited to its bidder (also when that is the caller). A bid less than `window`
         seconds before the end moves the end to `now + window`, at most to `max_ends_at`.
         A bid exactly at the end is too late.
    @param auction_id An open auction before its end.
    @param price At least the reserve (first bid) or `min_bid(auction_id)`, at most MAX_PRICE.
    """
    word: uint256 = self._auctions[auction_id]
    assert word != 0, "auction: not open"
    ends_at: uint256 = (word >> ENDS_SHIFT) & MASK40
    assert block.timestamp < ends_at, "auction: ended"
    high: uint256 = self._bids[auction_id]
    outbid: address = convert(high & MASK160, address)
    high_price: uint256 = high >> PRICE_SHIFT
    if outbid == empty(address):
        assert price >= high_price, "auction: below reserve"
    else:
        increment: uint256 = word >> INCREMENT_SHIFT
        # Rounded up: the step is never below the increment, and at least 1.
        assert price >= high_price + (high_price * increment + WAD - 1) // WAD, (
            "auction: bid too low"
        )
    assert price <= MAX_PRICE, "auction: price too large"

    # Anti-sniping: within the window, the end moves to `now + window`, capped.
    window: uint256 = (word >> WINDOW_SHIFT) & MASK32
    if ends_at - block.timestamp < window:
        max_ends_at: uint256 = (word >> MAX_ENDS_SHIFT) & MASK40
        new_end: uint256 = min(block.timestamp + window, max_ends_at)
        if new_end > ends_at:
            ends_at = new_end
            self._auctions[auction_id] = word & ~(MASK40 << ENDS_SHIFT) | new_end << ENDS_SHIFT

    self._bids[auction_id] = price << PRICE_SHIFT | convert(msg.sender, uint256)
    wh: uint256 = word & MASK64
    escrow: uint256 = self._escrow(wh, price)
    refund: uint256 = 0
    if outbid != empty(address):
        refund = self._escrow(wh, high_price)
        # unsafe_add: the sum of all credits is at most the coin's supply, below 2**255.
        self._credits[outbid] = unsafe_add(self._credits[outbid], refund << 1) | 1

    credit: uint256 = self._credits[msg.sender]
    free: uint256 = credit >> 1
    used: uint256 = min(free, escrow)
    if used != 0:
        self._credits[msg.sender] = (free - used) << 1 | 1
    log IEnergyAuction.BidPlaced(
        auction_id=auction_id,
        bidder=msg.sender,
        outbid=outbid,
        price=price,
        escrow=escrow,
        refund=refund,
        ends_at=ends_at,
    )
    if escrow > used:
        assert extcall IERC20(COIN).transferFrom(
            msg.sender, self, escrow - used, default_return_value=True
        ), "auction: coin transfer failed"


@external
def deposit(amount: uint256):
    """
    @notice Adds `amount` of the stablecoin to the caller's free balance, for bids that then
            move no token at all.
    @param amount Stablecoin base units (needs that allowance), non-zero.
    """
    assert amount != 0, "auction: zero amount"
    balance: uint256 = (self._credits[msg.sender] >> 1) + amount
    self._credits[msg.sender] = balance << 1 | 1
    log IEnergyAuction.Deposited(account=msg.sender, amount=amount, balance=balance)
    assert extcall IERC20(COIN).transferFrom(
        msg.sender, self, amount, default_return_value=True
    ), "auction: coin transfer failed"


@external
def withdraw(amount: uint256):
    """
    @notice Sends `amount` of the caller's free balance (refunds of outbid bids, deposits) to
            the caller.
    @param amount Stablecoin base units, non-zero, at most `credit_of(caller)`.
    """
    assert amount != 0, "auction: zero amount"
    free: uint256 = self._credits[msg.sender] >> 1
    assert amount <= free, "auction: exceeds balance"
    # Withdrawing everything clears the word (the account leaves: 4,800 gas back); a bid that
    # spends the whole balance keeps the flag (its bidder is likely to be refunded again).
    self._credits[msg.sender] = 0 if amount == free else (free - amount) << 1 | 1
    log IEnergyAuction.Withdrawn(account=msg.sender, amount=amount, balance=free - amount)
    assert extcall IERC20(COIN).transfer(msg.sender, amount, default_return_value=True), (
        "auction: coin transfer failed"
    )


# ---------------------------------------------------------------------------------------
# Anyone
# ---------------------------------------------------------------------------------------


@external
def settle(auction_id: uint256):
    """
    @notice Closes an auction from its end on: ENT to the highest bidder and the escrowed
            payment to the seller, or the ENT back to the seller if there was no bid.
    @dev Anyone may call it. Both transfers are pushes that cannot fail (see @custom:security).
    @param auction_id An open auction whose end has come.
    """
    word: uint256 = self._auctions[auction_id]
    assert word != 0, "auction: not open"
    assert block.timestamp >= (word >> ENDS_SHIFT) & MASK40, "auction: not ended"
    high: uint256 = self._bids[auction_id]
    seller: address = convert(self._sellers[auction_id] & MASK160, address)
    self._clear(auction_id)
    winner: address = convert(high & MASK160, address)
    wh: uint256 = word & MASK64
    amount: uint256 = wh * WH
    if winner == empty(address):
        log IEnergyAuction.AuctionSettled(
            auction_id=auction_id,
            seller=seller,
            winner=empty(address),
            amount=amount,
            price=0,
            payment=0,
        )
        assert extcall IERC20(ENT).transfer(seller, amount, default_return_value=True), (
            "auction: ent transfer failed"
        )
        return
    price: uint256 = high >> PRICE_SHIFT
    payment: uint256 = self._escrow(wh, price)
    log IEnergyAuction.AuctionSettled(
        auction_id=auction_id,
        seller=seller,
        winner=winner,
        amount=amount,
        price=price,
        payment=payment,
    )
    assert extcall IERC20(ENT).transfer(winner, amount, default_return_value=True), (
        "auction: ent transfer failed"
    )
    assert extcall IERC20(COIN).transfer(seller, payment, default_return_value=True), (
        "auction: coin transfer failed"
    )


# ---------------------------------------------------------------------------------------
# Governance
# ---------------------------------------------------------------------------------------


@external
def set_parameters(increment: uint256, window: uint256, cap: uint256):
    """
    @notice Sets the minimum increment, anti-sniping window and extension cap of auctions
            created from now on (open auctions keep theirs).
    @param increment Wad, 0 < increment <= 10**18.
    @param window Seconds, at most MAX_WINDOW (0: no extension).
    @param cap Seconds, at most MAX_CAP.
    """
    ownable._check_owner()
    self._set_parameters(increment, window, cap)


# ---------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------


@view
@external
def parameters() -> IEnergyAuction.Parameters:
    """
    @notice The parameters new auctions get.
    @return Increment (wad), window and cap (seconds).
    """
    params: uint256 = self._params
    return IEnergyAuction.Parameters(
        increment=params & MASK64,
        window=(params >> PARAM_WINDOW_SHIFT) & MASK32,
        cap=params >> PARAM_CAP_SHIFT,
    )


@view
@external
def auction(auction_id: uint256) -> IEnergyAuction.AuctionView:
    """
    @notice One auction: its terms, its highest bid and its status.
    @param auction_id The id.
    @return The record (only `auction_id` and `status` for one that is not open).
    """
    return self._view(auction_id)


@view
@external
def min_bid(auction_id: uint256) -> uint256:
    """
    @notice The lowest price a bid on an open auction may have now.
    @param auction_id An open auction.
    @return The reserve before the first bid, else the highest price plus the increment.
    """
    word: uint256 = self._auctions[auction_id]
    assert word != 0, "auction: not open"
    high: uint256 = self._bids[auction_id]
    high_price: uint256 = high >> PRICE_SHIFT
    if high & MASK160 == 0:
        return high_price
    return high_price + (high_price * (word >> INCREMENT_SHIFT) + WAD - 1) // WAD


@view
@external
def escrow_for(auction_id: uint256, price: uint256) -> uint256:
    """
    @notice What a bid of `price` on an open auction escrows (rounded up).
    @param auction_id An open auction.
    @param price Stablecoin base units per kWh, at most MAX_PRICE.
    @return Stablecoin base units.
    """
    word: uint256 = self._auctions[auction_id]
    assert word != 0, "auction: not open"
    assert price <= MAX_PRICE, "auction: price too large"
    return self._escrow(word & MASK64, price)


@view
@external
def credit_of(account: address) -> uint256:
    """
    @notice An account's free balance: refunds of its outbid bids and deposits, not escrowed.
    @param account The account.
    @return Stablecoin base units it may withdraw or bid with.
    """
    return self._credits[account] >> 1


@view
@external
def auction_count() -> uint256:
    """
    @notice How many auctions were ever created (ids 1 ..= this).
    @return The count.
    """
    return self._next_id - 1


@view
@external
def open_auctions(start: uint256, count: uint256) -> (DynArray[IEnergyAuction.AuctionView, MAX_PAGE], uint256):
    """
    @notice Open auctions from id `start` upwards, at most `count` (and MAX_PAGE) of them.
    @dev Reads at most MAX_SCAN ids per call, so its gas is bounded however many auctions
         closed before; a non-zero cursor says where the next page starts.
    @param start First id to look at (0 or 1: from the first).
    @param count Most auctions to return (0: MAX_PAGE).
    @return The open auctions found, and the id to continue from (0: no more).
    """
    limit: uint256 = MAX_PAGE if count == 0 or count > MAX_PAGE else count
    page: DynArray[IEnergyAuction.AuctionView, MAX_PAGE] = []
    auction_id: uint256 = max(start, 1)
    last: uint256 = self._next_id
    for _: uint256 in range(MAX_SCAN):
        if auction_id >= last:
            return page, 0
        if self._auctions[auction_id] != 0:
            if len(page) == limit:
                return page, auction_id
            page.append(self._view(auction_id))
        auction_id += 1
    return page, (auction_id if auction_id < last else 0)


# ---------------------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------------------


@view
@internal
def _check_coin():
    if BEEKEEPER == empty(address):
        return
    status: uint8 = (staticcall IBeekeeper(BEEKEEPER).stablecoin_info(COIN)).status
    assert status != COIN_FROZEN, "auction: coin frozen"
    assert status == COIN_LISTED, "auction: coin not listed"


@pure
@internal
def _escrow(wh: uint256, price: uint256) -> uint256:
    # wh * 10**15 ENT at `price` per 10**18, rounded up (SPEC §0); wh * price < 2**160.
    return (wh * price + 999) // 1000


@internal
def _clear(auction_id: uint256):
    self._auctions[auction_id] = 0
    self._bids[auction_id] = 0
    self._sellers[auction_id] = 0


@view
@internal
def _view(auction_id: uint256) -> IEnergyAuction.AuctionView:
    word: uint256 = self._auctions[auction_id]
    if word == 0:
        status: uint8 = STATUS_NONE
        if auction_id != 0 and auction_id < self._next_id:
            status = STATUS_CLOSED
        return IEnergyAuction.AuctionView(
            auction_id=auction_id,
            status=status,
            seller=empty(address),
            amount=0,
            reserve=0,
            ends_at=0,
            max_ends_at=0,
            window=0,
            increment=0,
            bidder=empty(address),
            price=0,
            escrow=0,
        )
    high: uint256 = self._bids[auction_id]
    seller: uint256 = self._sellers[auction_id]
    bidder: address = convert(high & MASK160, address)
    wh: uint256 = word & MASK64
    price: uint256 = 0
    escrow: uint256 = 0
    if bidder != empty(address):
        price = high >> PRICE_SHIFT
        escrow = self._escrow(wh, price)
    return IEnergyAuction.AuctionView(
        auction_id=auction_id,
        status=STATUS_OPEN,
        seller=convert(seller & MASK160, address),
        amount=wh * WH,
        reserve=seller >> PRICE_SHIFT,
        ends_at=(word >> ENDS_SHIFT) & MASK40,
        max_ends_at=(word >> MAX_ENDS_SHIFT) & MASK40,
        window=(word >> WINDOW_SHIFT) & MASK32,
        increment=(word >> INCREMENT_SHIFT) & MASK64,
        bidder=bidder,
        price=price,
        escrow=escrow,
    )


@internal
def _set_parameters(increment: uint256, window: uint256, cap: uint256):
    assert increment != 0 and increment <= WAD, "auction: bad increment"
    assert window <= MAX_WINDOW, "auction: window too long"
    assert cap <= MAX_CAP, "auction: cap too long"
    self._params = increment | window << PARAM_WINDOW_SHIFT | cap << PARAM_CAP_SHIFT
    log IEnergyAuction.ParametersSet(increment=increment, window=window, cap=cap)
