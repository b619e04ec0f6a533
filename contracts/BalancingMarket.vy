# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Balancing market: a price per future time slot that moves with its imbalance
@license GNU Affero General Public License v3.0 only
@notice Whitelisted producers commit to produce, and consumers to consume, a number of Wh in
        a future time slot (slot `s` is `[s * SLOT_LENGTH, (s + 1) * SLOT_LENGTH)` in unix
        time). The market is the counterparty. The price is a staircase of the slot's
        committed imbalance `production - consumption` (`modules/balancing_curve.vy`): `base`
        when balanced, cheaper with surplus, dearer with deficit, clamped to [min, max]; a
        commitment is charged the exact integral of the price over the imbalance it moves, so
        no split of a commitment costs a base unit more or less than the whole.
        Money: members `deposit` the quote token (eEuro) and `withdraw` what is free. A
        consumer's payment moves from their balance into escrow; a producer's payout is
        reserved out of the seed, so the seed always covers every payout the market owes (a
        commitment it cannot cover is rejected). A commitment can be cancelled until its slot
        opens, at the integral of the price moving its energy back (the market is path
        independent: what everyone received so far is a function of the imbalance alone).
        After the slot, the storage unit the commitment named certifies the delivered Wh
        within the certification window: a producer is paid pro rata (over-delivery is not
        paid), a consumer refunded pro rata for what was not delivered; the rest goes to the
        seed. A commitment nobody certified in the window is settled by anyone as undelivered.
        Every payment out is credited to the member's balance (pull, never a push).
@dev Invariant (tests/fuzz/test_balancing_stateful.py): the market's token balance equals
     the members' free balances + every slot's escrow + every slot's reserved payouts + the
     free seed. Rounding (SPEC section 0): the price integral is an integer (no rounding);
     a producer's pro-rata pay rounds down, a consumer's kept payment rounds up, refunds and
     the seed's share are exact remainders.
     A slot's prices use the parameter version in force at its first commitment, fixed for
     the slot's life, so a vote never changes the price of energy already committed and a
     cancel always unwinds on the curve it was committed on.
     Storage words, packed by hand:
     - account:    free balance (0..127) | roles (248..255: bit 0 producer, bit 1 consumer)
     - slot:       production Wh (0..47) | consumption Wh (48..95) | version (96..127;
                   OPENED: created by `open_slots`, no version yet)
                   | consumers' escrow (128..191) | producers' reserved payouts (192..255)
     - commitment: Wh (0..39) | amount held (40..95) | unit (96..255); one per
                   (account, slot, side), a second commit to it adds to it
     - parameters: per version, prices per Wh: base (0..39) | min (40..79) | max (80..119)
                   | tick (120..159) | step Wh (160..199) | horizon slots (200..223)
                   | certification window s (224..255)
     Each field's bound is checked where it grows (`MAX_*` constants), so no field spills.
@custom:security Governance (the Council, immutable) whitelists members, sets the parameters
        and withdraws free seed; it cannot touch escrow, reserved payouts or balances. A
        storage unit registered and active in the EnergyLedger is trusted to certify the
        delivery of the commitments that name it (the same trust the ledger gives it to mint).
"""


from ethereum.ercs import IERC20

from .interfaces import IBalancingMarket
from .interfaces import IEnergyLedger
from .modules import balancing_curve as curve


SIDE_PRODUCE: public(constant(uint256)) = 0
SIDE_CONSUME: public(constant(uint256)) = 1
ROLE_PRODUCER: public(constant(uint256)) = 1
ROLE_CONSUMER: public(constant(uint256)) = 2

# Prices are quote base units per kWh on a grid of one quote base unit per Wh.
PRICE_GRID: public(constant(uint256)) = 1000
# Largest price per Wh, step and tick (the curve's products stay far below 2**255).
MAX_PRICE_WH: constant(uint256) = 2**40 - 1
# One commitment: at most 2**40 - 1 Wh and 2**56 - 1 quote base units held.
MAX_COMMIT_WH: public(constant(uint256)) = 2**40 - 1
MAX_COMMIT_AMOUNT: public(constant(uint256)) = 2**56 - 1
# One slot: at most 2**48 - 1 Wh per side and 2**64 - 1 units of escrow or reserve.
MAX_SLOT_WH: public(constant(uint256)) = 2**48 - 1
MAX_SLOT_AMOUNT: constant(uint256) = 2**64 - 1
MAX_HORIZON_SLOTS: public(constant(uint256)) = 2**24 - 1
MIN_CERTIFY_WINDOW: public(constant(uint256)) = 60
MAX_CERTIFY_WINDOW: public(constant(uint256)) = 30 * 86400
MAX_BALANCE: constant(uint256) = 2**128 - 1
# A slot opened ahead of its first commitment (`open_slots`) carries this in its version
# field: its storage word is no longer zero, so that first commitment writes an existing word
# (5,000 gas instead of 22,100); it takes the parameter version in force at that commitment.
OPENED: public(constant(uint256)) = 2**32 - 1
# At most a day of 15-minute slots per `open_slots` call.
MAX_OPEN_SLOTS: public(constant(uint256)) = 96

M24: constant(uint256) = 2**24 - 1
M32: constant(uint256) = 2**32 - 1
M40: constant(uint256) = 2**40 - 1
M48: constant(uint256) = 2**48 - 1
M56: constant(uint256) = 2**56 - 1
M64: constant(uint256) = 2**64 - 1
M128: constant(uint256) = 2**128 - 1
ROLE_SHIFT: constant(uint256) = 248


TOKEN: public(immutable(IERC20))
LEDGER: public(immutable(IEnergyLedger))
GOVERNANCE: public(immutable(address))
SLOT_LENGTH: public(immutable(uint256))


# @dev account -> free balance (0..127) | roles (248..255).
_account: HashMap[address, uint256]

# @dev account -> slot * 2 + side -> Wh (0..39) | amount (40..95) | unit (96..255).
_commitment: HashMap[address, HashMap[uint256, uint256]]

# @dev slot -> production (0..47) | consumption (48..95) | version (96..127)
#      | escrow (128..191) | reserved (192..255).
_slot: HashMap[uint256, uint256]

# @dev version -> the packed parameter word (see the module docstring).
_params: HashMap[uint256, uint256]

# @dev The parameter version new slots use; 0 until governance sets parameters.
version: public(uint256)

# @dev The seed not reserved for any payout.
seed: public(uint256)


@deploy
def __init__(token: IERC20, ledger: IEnergyLedger, governance: address, slot_length: uint256):
    """
    @notice A market in `token` whose deliveries are certified by `ledger`'s storage units.
    @param token The quote token (eEuro).
    @param ledger The EnergyLedger whose active units certify delivery.
    @param governance The Council: the only account that whitelists and sets parameters.
    @param slot_length Seconds per slot (e.g. 900), 60 s to one day.
    """
    assert token.address != empty(address) and ledger.address != empty(address), (
        "balancing: zero address"
    )
    assert governance != empty(address), "balancing: zero address"
    assert slot_length >= 60 and slot_length <= 86400, "balancing: bad slot length"
    TOKEN = token
    LEDGER = ledger
    GOVERNANCE = governance
    SLOT_LENGTH = slot_length


# ---------------------------------------------------------------------------------------
# Members: money in and out
# ---------------------------------------------------------------------------------------


@external
def deposit(amount: uint256):
    """
    @notice Moves `amount` of the caller's quote token (approved) into their free balance.
    @param amount Quote base units.
    """
    assert amount != 0, "balancing: zero amount"
    word: uint256 = self._account[msg.sender]
    balance: uint256 = (word & M128) + amount
    assert balance <= MAX_BALANCE, "balancing: balance too large"
    self._account[msg.sender] = (word & ~M128) | balance
    log IBalancingMarket.Deposited(account=msg.sender, amount=amount, balance=balance)
    extcall TOKEN.transferFrom(msg.sender, self, amount, default_return_value=True)


@external
def withdraw(amount: uint256):
    """
    @notice Sends `amount` of the caller's free balance to the caller.
    @param amount Quote base units.
    """
    assert amount != 0, "balancing: zero amount"
    word: uint256 = self._account[msg.sender]
    assert word & M128 >= amount, "balancing: balance too low"
    # Cannot underflow: checked above.
    self._account[msg.sender] = unsafe_sub(word, amount)
    log IBalancingMarket.Withdrawn(
        account=msg.sender, amount=amount, balance=unsafe_sub(word & M128, amount)
    )
    extcall TOKEN.transfer(msg.sender, amount, default_return_value=True)


@external
def fund(amount: uint256):
    """
    @notice Adds `amount` (approved) to the seed. Anyone may fund; only governance takes
            free seed out. The Council funds it from its own treasury by two votes
            (`token.approve(market, amount)`, then `fund(amount)`).
    @param amount Quote base units.
    """
    assert amount != 0, "balancing: zero amount"
    seed: uint256 = self.seed + amount
    self.seed = seed
    log IBalancingMarket.SeedFunded(funder=msg.sender, amount=amount, seed=seed)
    extcall TOKEN.transferFrom(msg.sender, self, amount, default_return_value=True)


# ---------------------------------------------------------------------------------------
# Commitments
# ---------------------------------------------------------------------------------------


@external
def commit(slot: uint256, side: uint256, wh: uint256, unit: address, limit: uint256) -> uint256:
    """
    @notice Commits to produce (side 0) or consume (side 1) `wh` Wh in `slot`, delivered
            through storage unit `unit`, which certifies it after the slot.
    @dev A producer's payout is reserved from the seed ("balancing: seed too low" if it
         cannot be); a consumer pays from their free balance into escrow. A second commit
         of the same account, slot and side adds to the first (same unit).
    @param slot A future slot, at most `horizon_slots` ahead.
    @param side 0 produce, 1 consume.
    @param wh Energy in Wh.
    @param unit The storage unit that will certify delivery.
    @param limit A producer's minimum payout, a consumer's maximum cost (slippage guard).
    @return The payout reserved (producer) or the payment escrowed (consumer).
    """
    assert side <= SIDE_CONSUME, "balancing: bad side"
    assert wh != 0, "balancing: zero energy"
    assert wh <= MAX_COMMIT_WH, "balancing: commitment too large"
    assert unit != empty(address), "balancing: zero unit"
    account: uint256 = self._account[msg.sender]
    assert (account >> ROLE_SHIFT) & (1 << side) != 0, "balancing: not whitelisted"
    now_slot: uint256 = block.timestamp // SLOT_LENGTH
    # A commitment exactly at a slot's start is for the current slot: rejected.
    assert slot > now_slot, "balancing: slot not in the future"
    word: uint256 = self._slot[slot]
    version: uint256 = (word >> 96) & M32
    if version == 0 or version == OPENED:
        version = self.version
        assert version != 0, "balancing: no parameters"
    params: uint256 = self._params[version]
    assert slot - now_slot <= (params >> 200) & M24, "balancing: slot beyond horizon"

    c: curve.Curve = self._curve(params)
    prod: uint256 = word & M48
    cons: uint256 = (word >> 48) & M48
    escrow: uint256 = (word >> 128) & M64
    reserved: uint256 = word >> 192
    imb: int256 = convert(prod, int256) - convert(cons, int256)
    amount: uint256 = 0
    if side == SIDE_PRODUCE:
        amount = curve.integral(c, imb, imb + convert(wh, int256))
        assert amount >= limit, "balancing: payout below limit"
        seed: uint256 = self.seed
        assert amount <= seed, "balancing: seed too low"
        self.seed = unsafe_sub(seed, amount)
        prod += wh
        reserved += amount
    else:
        amount = curve.integral(c, imb - convert(wh, int256), imb)
        assert amount <= limit, "balancing: cost above limit"
        assert amount <= account & M128, "balancing: balance too low"
        # Cannot underflow: checked above; the roles above bit 128 are untouched.
        self._account[msg.sender] = unsafe_sub(account, amount)
        cons += wh
        escrow += amount
    assert prod <= MAX_SLOT_WH and cons <= MAX_SLOT_WH, "balancing: slot full"
    assert escrow <= MAX_SLOT_AMOUNT and reserved <= MAX_SLOT_AMOUNT, "balancing: slot full"

    key: uint256 = slot * 2 + side
    held: uint256 = self._commitment[msg.sender][key]
    total_wh: uint256 = wh
    total: uint256 = amount
    if held != 0:
        assert held >> 96 == convert(unit, uint256), "balancing: other unit"
        total_wh += held & M40
        total += (held >> 40) & M56
    assert total_wh <= MAX_COMMIT_WH and total <= MAX_COMMIT_AMOUNT, (
        "balancing: commitment too large"
    )
    self._commitment[msg.sender][key] = total_wh | (total << 40) | (convert(unit, uint256) << 96)
    # The version field is overwritten whole: an OPENED slot takes the version in force.
    self._slot[slot] = prod | (cons << 48) | (version << 96) | (escrow << 128) | (reserved << 192)
    log IBalancingMarket.Committed(
        account=msg.sender,
        slot=slot,
        unit=unit,
        side=side,
        wh=wh,
        amount=amount,
        production_wh=prod,
        consumption_wh=cons,
    )
    return amount


@external
def cancel(slot: uint256, side: uint256) -> uint256:
    """
    @notice Cancels the caller's whole commitment in `slot` on `side`, before the slot opens,
            at the integral of the price moving its energy back out of the slot.
    @dev Consumer: receives the unwind value; their escrow returns, the difference to it
         comes from or goes to the seed. Producer: their reserved payout returns to the seed,
         which is paid the unwind value; the producer is credited the reserve minus the unwind
         value, or pays the difference from their free balance when the price rose.
    @param slot The slot.
    @param side 0 produce, 1 consume.
    @return The unwind value (the integral of the price over the energy moved back).
    """
    assert side <= SIDE_CONSUME, "balancing: bad side"
    key: uint256 = slot * 2 + side
    held: uint256 = self._commitment[msg.sender][key]
    assert held != 0, "balancing: no commitment"
    assert block.timestamp < slot * SLOT_LENGTH, "balancing: slot opened"
    wh: uint256 = held & M40
    amount: uint256 = (held >> 40) & M56

    word: uint256 = self._slot[slot]
    c: curve.Curve = self._curve(self._params[(word >> 96) & M32])
    imb: int256 = convert(word & M48, int256) - convert((word >> 48) & M48, int256)
    seed: uint256 = self.seed
    account: uint256 = self._account[msg.sender]
    unwind: uint256 = 0
    # The slot's sums hold this commitment's energy and amount, so the fields are taken
    # out of the packed word in place without borrowing from the next field.
    if side == SIDE_PRODUCE:
        unwind = curve.integral(c, imb - convert(wh, int256), imb)
        if unwind > amount:
            assert account & M128 >= unwind - amount, "balancing: balance too low"
            account = unsafe_sub(account, unwind - amount)
        else:
            account = self._credit(account, amount - unwind)
        seed += unwind
        word = unsafe_sub(word, wh | (amount << 192))
    else:
        unwind = curve.integral(c, imb, imb + convert(wh, int256))
        if unwind > amount:
            assert seed >= unwind - amount, "balancing: seed too low"
            seed = unsafe_sub(seed, unwind - amount)
        else:
            seed += amount - unwind
        account = self._credit(account, unwind)
        word = unsafe_sub(word, (wh << 48) | (amount << 128))
    self.seed = seed
    self._account[msg.sender] = account
    self._commitment[msg.sender][key] = 0
    self._slot[slot] = word
    log IBalancingMarket.Cancelled(
        account=msg.sender,
        slot=slot,
        side=side,
        wh=wh,
        held=amount,
        unwind=unwind,
    )
    return unwind


@external
def certify(account: address, slot: uint256, side: uint256, delivered_wh: uint256):
    """
    @notice The storage unit a commitment names certifies the energy really produced into
            it (side 0) or consumed from it (side 1) in `slot`, within the certification
            window after the slot. Settles the commitment: a producer is paid
            `payout * min(delivered, committed) / committed` (rounded down), a consumer is
            refunded the payment for the undelivered part (the market keeps its share of
            the payment rounded up); the rest goes to the seed.
    @param account The committed member.
    @param slot The slot.
    @param side 0 produce, 1 consume.
    @param delivered_wh Metered energy in Wh (above the commitment counts as the commitment).
    """
    assert side <= SIDE_CONSUME, "balancing: bad side"
    key: uint256 = slot * 2 + side
    held: uint256 = self._commitment[account][key]
    assert held != 0, "balancing: no commitment"
    assert msg.sender == convert(held >> 96, address), "balancing: not the commitment's unit"
    ends: uint256 = (slot + 1) * SLOT_LENGTH
    assert block.timestamp >= ends, "balancing: slot not over"
    word: uint256 = self._slot[slot]
    window: uint256 = self._params[(word >> 96) & M32] >> 224
    assert block.timestamp < ends + window, "balancing: certification closed"
    assert (staticcall LEDGER.unit_info(msg.sender)).active, "balancing: unit not active"
    wh: uint256 = held & M40
    credited: uint256 = 0
    to_seed: uint256 = 0
    credited, to_seed = self._settle(account, slot, side, key, held, word, min(delivered_wh, wh))
    log IBalancingMarket.DeliveryCertified(
        account=account,
        slot=slot,
        unit=msg.sender,
        side=side,
        committed_wh=wh,
        delivered_wh=delivered_wh,
        credited=credited,
        to_seed=to_seed,
    )


@external
def expire(account: address, slot: uint256, side: uint256):
    """
    @notice Settles a commitment nobody certified within the window as undelivered: a
            consumer gets the whole payment back, a producer's payout returns to the seed.
            Anyone may call it, so no commitment's money stays locked.
    @param account The committed member.
    @param slot The slot.
    @param side 0 produce, 1 consume.
    """
    assert side <= SIDE_CONSUME, "balancing: bad side"
    key: uint256 = slot * 2 + side
    held: uint256 = self._commitment[account][key]
    assert held != 0, "balancing: no commitment"
    word: uint256 = self._slot[slot]
    window: uint256 = self._params[(word >> 96) & M32] >> 224
    assert block.timestamp >= (slot + 1) * SLOT_LENGTH + window, "balancing: certification open"
    credited: uint256 = 0
    to_seed: uint256 = 0
    credited, to_seed = self._settle(account, slot, side, key, held, word, 0)
    log IBalancingMarket.CommitmentExpired(
        account=account,
        slot=slot,
        caller=msg.sender,
        side=side,
        committed_wh=held & M40,
        credited=credited,
        to_seed=to_seed,
    )


@external
def open_slots(first: uint256, count: uint256) -> uint256:
    """
    @notice Creates the storage words of `count` future slots from `first` (a keeper, or
            anyone, pays their creation once, so the first commitment in each costs what any
            other does). Opening fixes nothing: a slot's parameters are still those in force
            at its first commitment. Slots already open or with commitments are skipped.
    @param first The first slot, in the future.
    @param count How many slots, 1 to MAX_OPEN_SLOTS; all within the horizon.
    @return How many slots were opened by this call.
    """
    assert count != 0 and count <= MAX_OPEN_SLOTS, "balancing: bad slot count"
    version: uint256 = self.version
    assert version != 0, "balancing: no parameters"
    now_slot: uint256 = block.timestamp // SLOT_LENGTH
    assert first > now_slot, "balancing: slot not in the future"
    # The last slot opened must be within the horizon (checked arithmetic: first > now_slot).
    assert first + count - 1 - now_slot <= (self._params[version] >> 200) & M24, (
        "balancing: slot beyond horizon"
    )
    opened: uint256 = 0
    for i: uint256 in range(count, bound=MAX_OPEN_SLOTS):
        if self._slot[first + i] == 0:
            self._slot[first + i] = OPENED << 96
            opened += 1
    log IBalancingMarket.SlotsOpened(caller=msg.sender, first=first, count=count, opened=opened)
    return opened


# ---------------------------------------------------------------------------------------
# Governance (the Council)
# ---------------------------------------------------------------------------------------


@external
def set_member(account: address, roles: uint256):
    """
    @notice Whitelists `account` as producer (1), consumer (2), both (3) or neither (0).
            Removing a role stops new commitments only: existing ones still settle.
            Governance only.
    @param account The member.
    @param roles Bit 0 producer, bit 1 consumer.
    """
    self._only_governance()
    assert account != empty(address), "balancing: zero address"
    assert roles <= ROLE_PRODUCER | ROLE_CONSUMER, "balancing: bad roles"
    word: uint256 = self._account[account]
    self._account[account] = (word & M128) | (roles << ROLE_SHIFT)
    log IBalancingMarket.MemberSet(account=account, roles=roles)


@external
def set_parameters(
    base_price: uint256,
    min_price: uint256,
    max_price: uint256,
    price_step: uint256,
    step_wh: uint256,
    horizon_slots: uint256,
    certify_window: uint256,
):
    """
    @notice A new parameter version for slots without commitments yet (a slot keeps the
            version of its first commitment). Governance only.
    @param base_price Price when balanced, quote base units per kWh (multiple of 1,000).
    @param min_price Lowest price, 0 < min < max (multiple of 1,000).
    @param max_price Highest price (multiple of 1,000), min <= base <= max.
    @param price_step The price moves by this (per kWh, multiple of 1,000) ...
    @param step_wh ... every `step_wh` Wh of imbalance (1 to 2**40 - 1).
    @param horizon_slots How many slots ahead commitments are taken (1 to 2**24 - 1).
    @param certify_window Seconds after a slot for certification (60 s to 30 days).
    """
    self._only_governance()
    for p: uint256 in [base_price, min_price, max_price, price_step]:
        assert p % PRICE_GRID == 0, "balancing: price not on grid"
        assert p // PRICE_GRID <= MAX_PRICE_WH, "balancing: price too large"
    assert min_price != 0 and min_price < max_price, "balancing: bad price range"
    assert min_price <= base_price and base_price <= max_price, "balancing: bad price range"
    assert price_step != 0, "balancing: zero price step"
    assert step_wh != 0 and step_wh <= M40, "balancing: bad step"
    assert horizon_slots != 0 and horizon_slots <= MAX_HORIZON_SLOTS, "balancing: bad horizon"
    assert certify_window >= MIN_CERTIFY_WINDOW and certify_window <= MAX_CERTIFY_WINDOW, (
        "balancing: bad certification window"
    )
    version: uint256 = self.version + 1
    # OPENED (2**32 - 1) is not a version.
    assert version < OPENED, "balancing: too many versions"
    self.version = version
    self._params[version] = (
        (base_price // PRICE_GRID)
        | ((min_price // PRICE_GRID) << 40)
        | ((max_price // PRICE_GRID) << 80)
        | ((price_step // PRICE_GRID) << 120)
        | (step_wh << 160)
        | (horizon_slots << 200)
        | (certify_window << 224)
    )
    log IBalancingMarket.ParametersSet(
        version=version,
        base_price=base_price,
        min_price=min_price,
        max_price=max_price,
        price_step=price_step,
        step_wh=step_wh,
        horizon_slots=horizon_slots,
        certify_window=certify_window,
    )


@external
def withdraw_seed(receiver: address, amount: uint256):
    """
    @notice Sends free seed (never reserved payouts or escrow) to `receiver`. Governance only.
    @param receiver The receiver (the Council's treasury).
    @param amount Quote base units, at most `seed`.
    """
    self._only_governance()
    assert amount != 0, "balancing: zero amount"
    assert receiver != empty(address) and receiver != self, "balancing: bad receiver"
    seed: uint256 = self.seed
    assert amount <= seed, "balancing: seed too low"
    seed = unsafe_sub(seed, amount)
    self.seed = seed
    log IBalancingMarket.SeedWithdrawn(receiver=receiver, amount=amount, seed=seed)
    extcall TOKEN.transfer(receiver, amount, default_return_value=True)


# ---------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------


@view
@external
def current_slot() -> uint256:
    """
    @notice The slot running now; commitments are taken for later slots only.
    @return The slot index.
    """
    return block.timestamp // SLOT_LENGTH


@view
@external
def slot_start(slot: uint256) -> uint256:
    """
    @notice When `slot` opens (unix seconds).
    @param slot The slot.
    @return Its start time.
    """
    return slot * SLOT_LENGTH


@view
@external
def price(slot: uint256) -> uint256:
    """
    @notice The slot's spot price at its committed imbalance (the next Wh's), per kWh.
    @param slot The slot.
    @return Quote base units per kWh (0 before any parameters are set).
    """
    word: uint256 = self._slot[slot]
    version: uint256 = self._version_of(word)
    if version == 0:
        return 0
    imb: int256 = convert(word & M48, int256) - convert((word >> 48) & M48, int256)
    return convert(curve.price_at(self._curve(self._params[version]), imb), uint256) * PRICE_GRID


@view
@external
def slot_info(slot: uint256) -> IBalancingMarket.SlotInfo:
    """
    @notice A slot's committed totals, price and money held.
    @param slot The slot.
    @return production, consumption, imbalance, price, escrow, reserved, version, start.
    """
    word: uint256 = self._slot[slot]
    version: uint256 = self._version_of(word)
    prod: uint256 = word & M48
    cons: uint256 = (word >> 48) & M48
    imb: int256 = convert(prod, int256) - convert(cons, int256)
    spot: uint256 = 0
    if version != 0:
        spot = convert(curve.price_at(self._curve(self._params[version]), imb), uint256)
    return IBalancingMarket.SlotInfo(
        production_wh=prod,
        consumption_wh=cons,
        imbalance_wh=imb,
        price=spot * PRICE_GRID,
        escrow=(word >> 128) & M64,
        reserved=word >> 192,
        version=version,
        starts_at=slot * SLOT_LENGTH,
    )


@view
@external
def quote(slot: uint256, side: uint256, wh: uint256) -> uint256:
    """
    @notice What `commit(slot, side, wh, ...)` would reserve (producer) or charge
            (consumer) now; the same integral, so the quote is exact until someone else
            commits to or cancels from the slot.
    @param slot The slot.
    @param side 0 produce, 1 consume.
    @param wh Energy in Wh.
    @return Quote base units.
    """
    assert side <= SIDE_CONSUME, "balancing: bad side"
    assert wh <= MAX_COMMIT_WH, "balancing: commitment too large"
    word: uint256 = self._slot[slot]
    version: uint256 = self._version_of(word)
    assert version != 0, "balancing: no parameters"
    c: curve.Curve = self._curve(self._params[version])
    imb: int256 = convert(word & M48, int256) - convert((word >> 48) & M48, int256)
    if side == SIDE_PRODUCE:
        return curve.integral(c, imb, imb + convert(wh, int256))
    return curve.integral(c, imb - convert(wh, int256), imb)


@view
@external
def commitment(account: address, slot: uint256, side: uint256) -> IBalancingMarket.Commitment:
    """
    @notice An account's open commitment (all zero when none).
    @param account The member.
    @param slot The slot.
    @param side 0 produce, 1 consume.
    @return unit, Wh, amount held (payment escrowed or payout reserved).
    """
    held: uint256 = self._commitment[account][slot * 2 + side]
    return IBalancingMarket.Commitment(
        unit=convert(held >> 96, address), wh=held & M40, amount=(held >> 40) & M56
    )


@view
@external
def balance_of(account: address) -> uint256:
    """
    @notice An account's free balance (withdrawable).
    @param account The member.
    @return Quote base units.
    """
    return self._account[account] & M128


@view
@external
def roles_of(account: address) -> uint256:
    """
    @notice An account's roles: bit 0 producer, bit 1 consumer.
    @param account The account.
    @return The roles.
    """
    return self._account[account] >> ROLE_SHIFT


@view
@external
def parameters(version: uint256) -> IBalancingMarket.Parameters:
    """
    @notice A parameter version (0: the one new slots use now).
    @param version The version, or 0 for the current one.
    @return The parameters, prices per kWh (all zero for an unknown version).
    """
    v: uint256 = version
    if v == 0:
        v = self.version
    w: uint256 = self._params[v]
    return IBalancingMarket.Parameters(
        base_price=(w & M40) * PRICE_GRID,
        min_price=((w >> 40) & M40) * PRICE_GRID,
        max_price=((w >> 80) & M40) * PRICE_GRID,
        price_step=((w >> 120) & M40) * PRICE_GRID,
        step_wh=(w >> 160) & M40,
        horizon_slots=(w >> 200) & M24,
        certify_window=w >> 224,
    )


# ---------------------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------------------


@internal
def _only_governance():
    assert msg.sender == GOVERNANCE, "balancing: only by Council vote"


@view
@internal
def _version_of(word: uint256) -> uint256:
    # A slot's own version, or the current one for a slot without commitments yet.
    version: uint256 = (word >> 96) & M32
    if version == 0 or version == OPENED:
        version = self.version
    return version


@pure
@internal
def _curve(params: uint256) -> curve.Curve:
    return curve.Curve(
        base=convert(params & M40, int256),
        low=convert((params >> 40) & M40, int256),
        high=convert((params >> 80) & M40, int256),
        tick=convert((params >> 120) & M40, int256),
        step=convert((params >> 160) & M40, int256),
    )


@pure
@internal
def _credit(account: uint256, amount: uint256) -> uint256:
    balance: uint256 = (account & M128) + amount
    assert balance <= MAX_BALANCE, "balancing: balance too large"
    return (account & ~M128) | balance


@internal
def _settle(
    account: address,
    slot: uint256,
    side: uint256,
    key: uint256,
    held: uint256,
    word: uint256,
    delivered: uint256,
) -> (uint256, uint256):
    # Pays out a commitment for `delivered` (<= committed) Wh; returns (credited, to seed).
    wh: uint256 = held & M40
    amount: uint256 = (held >> 40) & M56
    credited: uint256 = 0
    to_seed: uint256 = 0
    new_word: uint256 = word
    if side == SIDE_PRODUCE:
        # Pay rounds down; the unearned rest returns to the seed.
        credited = amount * delivered // wh
        to_seed = amount - credited
        new_word = unsafe_sub(word, amount << 192)
    else:
        # The market keeps the delivered share rounded up; the refund is the exact rest.
        to_seed = (amount * delivered + wh - 1) // wh
        credited = amount - to_seed
        new_word = unsafe_sub(word, amount << 128)
    self._commitment[account][key] = 0
    self._slot[slot] = new_word
    if to_seed != 0:
        self.seed += to_seed
    if credited != 0:
        self._account[account] = self._credit(self._account[account], credited)
    return credited, to_seed
