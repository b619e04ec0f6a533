# pragma version ~=0.4.3
# pragma nonreentrancy off
"""
@title Energy ledger and ENT, the energy token (1 ENT = 1 kWh)
@license GNU Affero General Public License v3.0 only
@notice Storage units report the energy they take in and give out. The ledger mints ENT for
        stored energy (split: the storage fee F to the unit's owner, the rest to the
        producer), burns it from consumption sessions, and keeps the imbalance
        `D = ENT - KWH` between the token and the energy really stored, with the imbalance
        cost `R` pulling it back to zero (SPEC §3, math in `modules/imbalance.vy`).
        The ledger *is* the ENT token (snekmate `erc20` + permit): minting and burning are
        internal calls, not a cross-contract call per report.
@dev Escrow of consumption sessions is taken out of circulation when a session starts
     (a burn from the consumer) and owed back by the session; refunds are minted back.
     ENT in `D` is `totalSupply + escrow`. `D` is stored and moved by exactly what each
     operation changes, so no report reads `totalSupply`; the escrow total is derived as
     `D + KWH - totalSupply`, and the tests check it against the sum over sessions.
     Storage words are packed by hand:
     - unit: last_seq (0..63) | available_wh (64..127) | locked_wh (128..191) | active (192)
             | max_report_wh (200..255): the largest single report the unit may make
               (its battery's capacity, governed; at most 2**40 Wh, so even a unit that
               always reports its maximum needs 2**24 reports to fill the 64-bit KWH)
     - state: network energy KWH in Wh (0..63) | R wad (64..127) | D int128 (128..255)
     - params: M (0..63) | B (64..127) | C (128..191) | F (192..255), wads
     - session: escrow (0..127) | reserved_wh (128..191) | ends_at (192..255); a session
               that ended (closed early, or expired) keeps billing reports for
               `session_grace` seconds, then it can be settled (refund) by anyone
@custom:security Governance (`owner`, the Council) registers storage units and sets the
        parameters. A registered unit's account is trusted to report its meter honestly.
        The contract makes no external call at all (ENT is this contract), so there is no
        reentrancy path; the nonreentrancy pragma is off on purpose, saving a transient
        lock on every report. Adding an external call means turning it back on.
"""


from snekmate.auth import ownable
from snekmate.tokens import erc20

from .modules import imbalance as cost_math


initializes: ownable
initializes: erc20[ownable := ownable]


# @dev Not exported: `erc20.mint`, `erc20.set_minter`, `erc20.is_minter` (only the ledger's
# energy rules create ENT), `erc20.burn` and `erc20.burn_from` (ENT is destroyed only by
# consumption), `erc20.transfer_ownership` and `erc20.renounce_ownership` (they move the
# unused minter role; `ownable.transfer_ownership` hands governance to the Council).
# `transfer` and `transferFrom` are this contract's own: they refuse the ledger's address,
# where ENT would be stranded (nothing can move it out).
exports: (
    erc20.approve,
    erc20.balanceOf,
    erc20.allowance,
    erc20.totalSupply,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.permit,
    erc20.nonces,
    erc20.DOMAIN_SEPARATOR,
    erc20.eip712Domain,
    ownable.owner,
    ownable.transfer_ownership,
)


WH: constant(uint256) = 10**15
WAD: constant(uint256) = 10**18
MAX_BATCH: public(constant(uint256)) = 64

M64: constant(uint256) = 2**64 - 1
M128: constant(uint256) = 2**128 - 1
ACTIVE: constant(uint256) = 1 << 192
CAP_SHIFT: constant(uint256) = 200
# Bits a report or a session change never touches: active flag and maximum report.
CAP_MASK: constant(uint256) = (2**56 - 1) << CAP_SHIFT
KEEP: constant(uint256) = ACTIVE | CAP_MASK
MAX_REPORT_LIMIT: public(constant(uint256)) = 2**40
DEFAULT_MAX_REPORT_WH: public(constant(uint256)) = 100_000_000
MIN_SESSION_GRACE: constant(uint256) = 60
MAX_SESSION_GRACE: constant(uint256) = 86400
DEFAULT_SESSION_GRACE: constant(uint256) = 900

KIND_PRODUCED: constant(uint256) = 0
KIND_CONSUMED: constant(uint256) = 1
KIND_ACTUAL: constant(uint256) = 2

MIN_SESSION_LIFETIME: constant(uint256) = 60
MAX_SESSION_LIFETIME: constant(uint256) = 30 * 86400


struct UnitInfo:
    owner: address
    active: bool
    available_wh: uint256
    locked_wh: uint256
    last_seq: uint64
    max_report_wh: uint256


struct SessionInfo:
    escrow: uint256
    reserved_wh: uint256
    expires_at: uint256
    open: bool
    expired: bool
    grace_ends_at: uint256


struct Rates:
    mint_per_kwh: uint256
    burn_per_kwh: uint256
    mint_cost: int256
    burn_cost: int256


struct Params:
    max_mint_cost: uint256
    max_burn_cost: uint256
    recovery_share: uint256
    storage_fee: uint256
    session_lifetime: uint256


# @dev Working copy of the hot storage words while a report (or a batch) is applied, and
# the ENT minted but not yet credited: the owner's fees of the whole batch and a run of
# readings from one producer are credited once (one balance write and one Transfer event).
# Amounts never depend on balances or supply, so crediting later changes nothing but gas.
struct Ctx:
    unit: address
    word: uint256
    state: uint256
    fees: uint256
    producer: address
    produced: uint256


_unit: HashMap[address, uint256]
unit_owner: public(HashMap[address, address])
_state: uint256
_params: uint256
session_lifetime: public(uint256)
# @dev Read only when a session has ended: the hot consumption path never touches it.
session_grace: public(uint256)
_session: HashMap[address, HashMap[address, uint256]]


event UnitRegistered:
    unit: indexed(address)
    owner: indexed(address)


event UnitRemoved:
    unit: indexed(address)
    energy_wh: uint256


event ParametersSet:
    max_mint_cost: uint256
    max_burn_cost: uint256
    recovery_share: uint256
    storage_fee: uint256
    session_lifetime: uint256


# @dev `minted` is the ENT created for this reading (owner fee F included). The balances are
# credited after the reading's events: once per run of one producer, and the owner's fees
# once per transaction (the Transfer events that follow).
event EnergyProduced:
    unit: indexed(address)
    producer: indexed(address)
    seq: uint256
    wh: uint256
    minted: uint256


event EnergyConsumed:
    unit: indexed(address)
    consumer: indexed(address)
    seq: uint256
    wh: uint256
    burned: uint256
    over_wh: uint256


event ActualEnergyReported:
    unit: indexed(address)
    seq: uint256
    wh: uint256
    book_before_wh: uint256
    book_after_wh: uint256


event CostChanged:
    imbalance: int256
    cost: uint256


event SessionStarted:
    consumer: indexed(address)
    unit: indexed(address)
    escrow: uint256
    reserved_wh: uint256
    expires_at: uint256


event SessionClosed:
    consumer: indexed(address)
    unit: indexed(address)
    refunded: uint256
    released_wh: uint256


event SessionEnded:
    consumer: indexed(address)
    unit: indexed(address)
    grace_ends_at: uint256


event OverConsumed:
    unit: indexed(address)
    consumer: indexed(address)
    seq: uint256
    wh: uint256


event SessionGraceSet:
    grace: uint256


event UnitMaxReportSet:
    unit: indexed(address)
    max_report_wh: uint256


@deploy
def __init__(governance: address):
    """
    @notice Deploys ENT and the ledger with the SPEC's default parameters
            (M = B = 0.5, C = 0.05, F = 0.2, H = 7200 s).
    @param governance The governance address (the Council, or the deployer until it exists).
    """
    assert governance != empty(address), "ledger: zero governance"
    ownable.__init__()
    erc20.__init__("PowerHive Energy", "ENT", 18, "PowerHive Energy", "1")
    erc20.is_minter[msg.sender] = False
    if governance != msg.sender:
        ownable._transfer_ownership(governance)
    self._set_params(WAD // 2, WAD // 2, WAD // 20, WAD // 5, 7200)
    self.session_grace = DEFAULT_SESSION_GRACE


# ---------------------------------------------------------------------------------------
# ENT transfers
# ---------------------------------------------------------------------------------------


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` ENT from the caller to `to` (never to the ledger itself).
    @param to The receiver.
    @param amount ENT base units.
    @return True.
    """
    assert to != self, "ledger: transfer to the ledger"
    erc20._transfer(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` ENT from `owner` to `to` within the caller's allowance (never to
            the ledger itself).
    @param owner The holder.
    @param to The receiver.
    @param amount ENT base units.
    @return True.
    """
    assert to != self, "ledger: transfer to the ledger"
    erc20._spend_allowance(owner, msg.sender, amount)
    erc20._transfer(owner, to, amount)
    return True


# ---------------------------------------------------------------------------------------
# Reports by storage units
# ---------------------------------------------------------------------------------------


@external
def energy_produced(producer: address, wh: uint256, seq: uint64):
    """
    @notice The calling unit stored `wh` Wh from `producer`: mints ENT at the current rate,
            the storage fee F to the unit's owner and the rest to the producer.
    @param producer Who delivered the energy.
    @param wh Energy in Wh (> 0).
    @param seq The unit's next sequence number (`last_seq + 1`).
    """
    ctx: Ctx = self._load(msg.sender, convert(seq, uint256), 1)
    ctx = self._produce(ctx, producer, wh, convert(seq, uint256))
    self._store(ctx)


@external
def energy_consumed(consumer: address, wh: uint256, seq: uint64):
    """
    @notice `consumer` drew `wh` Wh from the calling unit: burned from the consumer's session
            escrow at the current rate. Energy beyond the session's reserve is
            over-consumption: it leaves without ENT being burned and ends the session.
    @param consumer Who consumed.
    @param wh Energy in Wh (> 0).
    @param seq The unit's next sequence number.
    """
    ctx: Ctx = self._load(msg.sender, convert(seq, uint256), 1)
    ctx = self._consume(ctx, consumer, wh, convert(seq, uint256))
    self._store(ctx)


@external
def report_actual_energy(wh: uint256, seq: uint64):
    """
    @notice The calling unit's measured content; the difference to the book value changes
            the network energy and the imbalance.
    @param wh Measured stored energy in Wh.
    @param seq The unit's next sequence number.
    """
    ctx: Ctx = self._load(msg.sender, convert(seq, uint256), 1)
    ctx = self._actual(ctx, wh, convert(seq, uint256))
    self._store(ctx)


@external
def report_batch(first_seq: uint64, readings: DynArray[uint256, MAX_BATCH]):
    """
    @notice Up to 64 readings in one transaction, with sequence numbers `first_seq`,
            `first_seq + 1`, ... and the same rules as the single reports.
    @param first_seq The unit's next sequence number.
    @param readings Each `kind << 248 | wh << 160 | account`; kind 0 produced, 1 consumed,
           2 actual energy (account ignored).
    """
    n: uint256 = len(readings)
    assert n != 0, "ledger: empty batch"
    seq: uint256 = convert(first_seq, uint256)
    ctx: Ctx = self._load(msg.sender, seq, n)
    for reading: uint256 in readings:
        kind: uint256 = reading >> 248
        wh: uint256 = (reading >> 160) & (2**88 - 1)
        account: address = convert(convert(reading & (2**160 - 1), uint160), address)
        if kind == KIND_PRODUCED:
            ctx = self._produce(ctx, account, wh, seq)
        elif kind == KIND_CONSUMED:
            ctx = self._consume(ctx, account, wh, seq)
        elif kind == KIND_ACTUAL:
            ctx = self._actual(ctx, wh, seq)
        else:
            raise "ledger: bad reading kind"
        seq += 1
    self._store(ctx)


# ---------------------------------------------------------------------------------------
# Consumption sessions
# ---------------------------------------------------------------------------------------


@external
def start_session(unit: address, ent_amount: uint256):
    """
    @notice Escrows `ent_amount` ENT and reserves `ent_amount / (1 + r_burn)` kWh of `unit`'s
            available energy for `session_lifetime` seconds (SPEC section 3). The reserve
            is priced at the dearer side whatever the sign of `D`, so the escrow pays for it
            at the rate in force; should the rate rise, consumption is inside the reserve only
            as far as the escrow pays for it.
    @param unit The storage unit to draw from.
    @param ent_amount ENT base units to escrow.
    """
    assert ent_amount != 0, "ledger: zero amount"
    word: uint256 = self._unit[unit]
    assert word & ACTIVE != 0, "ledger: unit not active"
    session: uint256 = self._session[msg.sender][unit]
    if session != 0:
        ends_at: uint256 = session >> 192
        assert ends_at <= block.timestamp, "ledger: session open"
        assert ends_at + self.session_grace <= block.timestamp, "ledger: session in grace"
        word = self._close_session(msg.sender, unit, session, word)

    state: uint256 = self._state
    reserve: uint256 = ent_amount // WH
    r: uint256 = (state >> 64) & M64
    if r != 0:
        b: uint256 = (self._params >> 64) & M64
        reserve = cost_math.reserve_for(ent_amount, min(r, b))
    assert reserve != 0, "ledger: amount below 1 Wh"
    available: uint256 = (word >> 64) & M64
    assert reserve <= available, "ledger: not enough energy available"
    assert ent_amount <= M128, "ledger: amount too large"
    erc20._burn(msg.sender, ent_amount)

    expires_at: uint256 = block.timestamp + self.session_lifetime
    locked: uint256 = (word >> 128) & M64
    self._unit[unit] = (word & ~(M64 << 64) & ~(M64 << 128)) | ((available - reserve) << 64) | (
        (locked + reserve) << 128
    )
    self._session[msg.sender][unit] = ent_amount | (reserve << 128) | (expires_at << 192)
    log SessionStarted(
        consumer=msg.sender,
        unit=unit,
        escrow=ent_amount,
        reserved_wh=reserve,
        expires_at=expires_at,
    )


@external
def close_session(consumer: address, unit: address):
    """
    @notice Ends a session, or settles one that ended. The consumer may end their own session
            at any time; it then keeps billing the unit's reports for `session_grace`
            seconds (energy drawn just before the end is reported a period later). Once an
            ended or expired session is past its grace, anyone settles it: the escrow left is
            refunded and the reserved energy returns to the unit.
    @param consumer The session's consumer.
    @param unit The session's storage unit.
    """
    session: uint256 = self._session[consumer][unit]
    assert session != 0, "ledger: no session"
    ends_at: uint256 = session >> 192
    grace: uint256 = self.session_grace
    if ends_at > block.timestamp:
        assert msg.sender == consumer, "ledger: session not expired"
        self._session[consumer][unit] = (session & (2**192 - 1)) | (block.timestamp << 192)
        log SessionEnded(consumer=consumer, unit=unit, grace_ends_at=block.timestamp + grace)
        return
    assert ends_at + grace <= block.timestamp, "ledger: session in grace"
    self._unit[unit] = self._close_session(consumer, unit, session, self._unit[unit])


# ---------------------------------------------------------------------------------------
# Governance (the Council)
# ---------------------------------------------------------------------------------------


@external
def register_storage_unit(unit: address, owner: address):
    """
    @notice Registers (or re-activates) a storage unit with the owner who earns its storage
            fee. A re-activated unit keeps its sequence number. Governance only.
    @param unit The unit's reporting account.
    @param owner The unit's owner.
    """
    ownable._check_owner()
    assert unit != empty(address) and owner != empty(address), "ledger: zero address"
    word: uint256 = self._unit[unit]
    assert word & ACTIVE == 0, "ledger: unit already active"
    assert (word >> 128) & M64 == 0, "ledger: unit has open sessions"
    cap: uint256 = word >> CAP_SHIFT
    if cap == 0:
        cap = DEFAULT_MAX_REPORT_WH
    self._unit[unit] = (word & M64) | ACTIVE | (cap << CAP_SHIFT)
    self.unit_owner[unit] = owner
    log UnitRegistered(unit=unit, owner=owner)


@external
def remove_storage_unit(unit: address):
    """
    @notice Deactivates a storage unit. Its energy leaves the network energy (the ENT minted
            for it stays), so `D` grows and `R` is recomputed. Open sessions on it can still
            be closed for a refund. Governance only.
    @param unit The unit.
    """
    ownable._check_owner()
    word: uint256 = self._unit[unit]
    assert word & ACTIVE != 0, "ledger: unit not active"
    energy: uint256 = ((word >> 64) & M64) + ((word >> 128) & M64)
    # Keep the sequence number, the locked energy (released by closing sessions) and the cap.
    self._unit[unit] = word & (M64 | (M64 << 128) | CAP_MASK)
    state: uint256 = self._state
    d_before: int256 = self._d(state)
    self._state = self._apply_cost(state - energy, d_before, d_before + convert(energy * WH, int256))
    log UnitRemoved(unit=unit, energy_wh=energy)


@external
def set_parameters(
    max_mint_cost: uint256,
    max_burn_cost: uint256,
    recovery_share: uint256,
    storage_fee: uint256,
    session_lifetime: uint256,
):
    """
    @notice Sets M, B, C, F (wads) and H (seconds). Governance only.
    @param max_mint_cost M, 0 <= M < 1.
    @param max_burn_cost B, 0 <= B < 1.
    @param recovery_share C, 0 < C < 1.
    @param storage_fee F, 0 <= F < 1.
    @param session_lifetime H in seconds, 60 s to 30 days.
    """
    ownable._check_owner()
    self._set_params(max_mint_cost, max_burn_cost, recovery_share, storage_fee, session_lifetime)


@external
def set_session_grace(grace: uint256):
    """
    @notice How long an ended or expired session still pays for the unit's reports; at least
            one oracle reporting period. Governance only.
    @param grace Seconds, 60 s to one day (default 900).
    """
    ownable._check_owner()
    assert grace >= MIN_SESSION_GRACE and grace <= MAX_SESSION_GRACE, (
        "ledger: grace out of range"
    )
    self.session_grace = grace
    log SessionGraceSet(grace=grace)


@external
def set_unit_max_report(unit: address, max_report_wh: uint256):
    """
    @notice The largest single report `unit` may make (its battery's capacity): a unit cannot
            fill the network's energy counter and stall every other unit. Governance only.
    @param unit A registered (or once registered) unit.
    @param max_report_wh Wh, 1 to 2**40.
    """
    ownable._check_owner()
    assert max_report_wh != 0 and max_report_wh <= MAX_REPORT_LIMIT, (
        "ledger: max report out of range"
    )
    word: uint256 = self._unit[unit]
    assert word >> CAP_SHIFT != 0, "ledger: unknown unit"
    self._unit[unit] = (word & ~CAP_MASK) | (max_report_wh << CAP_SHIFT)
    log UnitMaxReportSet(unit=unit, max_report_wh=max_report_wh)


# ---------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------


@view
@external
def unit_info(unit: address) -> UnitInfo:
    """
    @notice A storage unit's record.
    @param unit The unit.
    @return owner, active, available and locked Wh, last sequence number.
    """
    word: uint256 = self._unit[unit]
    return UnitInfo(
        owner=self.unit_owner[unit],
        active=word & ACTIVE != 0,
        available_wh=(word >> 64) & M64,
        locked_wh=(word >> 128) & M64,
        last_seq=convert(word & M64, uint64),
        max_report_wh=word >> CAP_SHIFT,
    )


@view
@external
def last_seq(unit: address) -> uint64:
    """
    @notice The unit's last accepted sequence number; the next report carries this + 1.
    @param unit The unit.
    @return The sequence number.
    """
    return convert(self._unit[unit] & M64, uint64)


@view
@external
def network_energy_wh() -> uint256:
    """
    @notice KWH: the energy stored in all active units, in Wh.
    @return Wh.
    """
    return self._state & M64


@view
@external
def total_escrow() -> uint256:
    """
    @notice ENT held in escrow by open sessions (out of circulation, part of ENT in `D`).
    @return ENT base units.
    """
    state: uint256 = self._state
    return convert(self._d(state) + convert((state & M64) * WH, int256), uint256) - erc20.totalSupply


@view
@external
def imbalance() -> int256:
    """
    @notice D = (totalSupply + total_escrow) - KWH, in ENT base units (10**18 = 1 kWh).
    @return D.
    """
    return self._d(self._state)


@view
@external
def cost() -> uint256:
    """
    @notice R, the imbalance cost per kWh (wad), before the M / B caps.
    @return R.
    """
    return (self._state >> 64) & M64


@view
@external
def params() -> Params:
    """
    @notice The governed parameters.
    @return M, B, C, F (wads) and H (seconds).
    """
    p: uint256 = self._params
    return Params(
        max_mint_cost=p & M64,
        max_burn_cost=(p >> 64) & M64,
        recovery_share=(p >> 128) & M64,
        storage_fee=p >> 192,
        session_lifetime=self.session_lifetime,
    )


@view
@external
def session(consumer: address, unit: address) -> SessionInfo:
    """
    @notice A consumer's session with a unit: remaining escrow and reserved energy.
    @param consumer The consumer.
    @param unit The unit.
    @return escrow (ENT base units), reserved Wh, when it ends (or ended), whether it
            exists (not yet settled), whether it has ended, and when its grace ends.
    """
    s: uint256 = self._session[consumer][unit]
    expires_at: uint256 = s >> 192
    return SessionInfo(
        escrow=s & M128,
        reserved_wh=(s >> 128) & M64,
        expires_at=expires_at,
        open=s != 0,
        expired=s != 0 and expires_at <= block.timestamp,
        grace_ends_at=expires_at + self.session_grace if s != 0 else 0,
    )


@view
@external
def escrow_of(consumer: address, units: DynArray[address, MAX_BATCH]) -> uint256:
    """
    @notice A consumer's escrow over their sessions with `units` (ENT base units).
    @dev Sessions are keyed by (consumer, unit) and not listed on chain (a per-consumer list
         would cost every session start a new storage word); clients know the units from
         the `SessionStarted` events. `total_escrow()` is the network's total.
    @param consumer The consumer.
    @param units The units to sum over (duplicates are counted once).
    @return ENT base units.
    """
    total: uint256 = 0
    seen: DynArray[address, MAX_BATCH] = []
    for unit: address in units:
        if unit in seen:
            continue
        seen.append(unit)
        total += self._session[consumer][unit] & M128
    return total


@view
@external
def rates() -> Rates:
    """
    @notice The rates in force, after the M / B caps (SPEC section 3): ENT minted and burned
            per kWh (wads), and the signed costs (positive: a producer gets less / a consumer
            pays more, as when energy was lost; negative: the mirror image).
    @dev A report that would overshoot equilibrium pays these only up to `D = 0`.
    @return mint_per_kwh, burn_per_kwh, mint_cost, burn_cost.
    """
    state: uint256 = self._state
    p: uint256 = self._params
    r: uint256 = (state >> 64) & M64
    d: int256 = self._d(state)
    rm: int256 = convert(min(r, p & M64), int256)
    rb: int256 = convert(min(r, (p >> 64) & M64), int256)
    if d < 0:
        rm = -rm
        rb = -rb
    elif d == 0:
        rm = 0
        rb = 0
    return Rates(
        mint_per_kwh=convert(convert(WAD, int256) - rm, uint256),
        burn_per_kwh=convert(convert(WAD, int256) + rb, uint256),
        mint_cost=rm,
        burn_cost=rb,
    )


# ---------------------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------------------


@view
@internal
def _load(unit: address, seq: uint256, count: uint256) -> Ctx:
    word: uint256 = self._unit[unit]
    assert word & ACTIVE != 0, "ledger: unit not active"
    assert seq == (word & M64) + 1, "ledger: bad sequence"
    assert seq + count - 1 <= M64, "ledger: sequence overflow"
    return Ctx(
        unit=unit, word=word, state=self._state, fees=0, producer=empty(address), produced=0
    )


@internal
def _store(ctx: Ctx):
    self._unit[ctx.unit] = ctx.word
    self._state = ctx.state
    self._credit(ctx)


@internal
def _credit(ctx: Ctx):
    # Mint what the context owes: the owner's fees, then the pending producer's share.
    if ctx.fees != 0:
        erc20._mint(self.unit_owner[ctx.unit], ctx.fees)
    if ctx.produced != 0:
        erc20._mint(ctx.producer, ctx.produced)


@pure
@internal
def _d(state: uint256) -> int256:
    word: uint256 = state >> 128
    if word < 2**127:
        return convert(word, int256)
    return convert(word, int256) - 2**128


@internal
def _apply_cost(state: uint256, d_before: int256, d_after: int256) -> uint256:
    # Stores D and applies the cost rule; returns the updated state word.
    r: uint256 = (state >> 64) & M64
    new_r: uint256 = r
    if d_after == 0:
        new_r = 0
    elif abs(d_after) > abs(d_before) or (d_before < 0) != (d_after < 0):
        # Only a growing |D| (or a jump across 0) needs C (and its storage read).
        new_r = min(cost_math.next_cost(d_before, d_after, r, (self._params >> 128) & M64), M64)
    if new_r != r:
        log CostChanged(imbalance=d_after, cost=new_r)
    # D as 128-bit two's complement.
    assert d_after >= -(2**127) and d_after < 2**127, "ledger: imbalance overflow"
    d_word: uint256 = 0
    if d_after >= 0:
        d_word = convert(d_after, uint256)
    else:
        d_word = convert(d_after + 2**128, uint256)
    return (state & M64) | (new_r << 64) | (d_word << 128)


@internal
def _produce(ctx: Ctx, producer: address, wh: uint256, seq: uint256) -> Ctx:
    assert wh != 0, "ledger: zero energy"
    assert wh <= ctx.word >> CAP_SHIFT, "ledger: report above unit maximum"
    assert producer != empty(address), "ledger: zero producer"
    result: Ctx = ctx
    available: uint256 = ((ctx.word >> 64) & M64) + wh
    kwh: uint256 = (ctx.state & M64) + wh
    assert available <= M64 and kwh <= M64, "ledger: energy overflow"

    params: uint256 = self._params
    # wh < 2**64 (checked above), so these products and sums stay far below 2**256.
    minted: uint256 = unsafe_mul(wh, WH)
    state: uint256 = ctx.state
    r: uint256 = (state >> 64) & M64
    if r != 0:
        d_before: int256 = self._d(state)
        d_after: int256 = 0
        minted, d_after = cost_math.mint_amount(wh, d_before, min(r, params & M64))
        state = self._apply_cost(state, d_before, d_after)

    result.word = (ctx.word & ~(M64 << 64) & ~M64) | (available << 64) | seq
    result.state = (state & ~M64) | kwh
    fee: uint256 = unsafe_div(unsafe_mul(minted, params >> 192), WAD)
    result.fees = unsafe_add(ctx.fees, fee)
    if producer != ctx.producer and ctx.produced != 0:
        erc20._mint(ctx.producer, ctx.produced)
        result.produced = 0
    result.producer = producer
    result.produced = unsafe_add(result.produced, unsafe_sub(minted, fee))
    log EnergyProduced(unit=ctx.unit, producer=producer, seq=seq, wh=wh, minted=minted)
    return result


@internal
def _consume(ctx: Ctx, consumer: address, wh: uint256, seq: uint256) -> Ctx:
    assert wh != 0, "ledger: zero energy"
    assert wh <= ctx.word >> CAP_SHIFT, "ledger: report above unit maximum"
    result: Ctx = ctx
    word: uint256 = ctx.word
    state: uint256 = ctx.state
    session: uint256 = self._session[consumer][ctx.unit]
    if session != 0 and session >> 192 <= block.timestamp:
        # Ended or expired: still billed during its grace (energy drawn before the end is
        # reported a period later); after it, settle it first and this has no reserve.
        if (session >> 192) + self.session_grace <= block.timestamp:
            word = self._close_session(consumer, ctx.unit, session, word)
            session = 0

    reserved: uint256 = (session >> 128) & M64
    escrow: uint256 = session & M128
    in_wh: uint256 = min(wh, reserved)
    r: uint256 = (state >> 64) & M64
    d_before: int256 = self._d(state)

    # Every `unsafe_` below is bounded by the `min` it follows: in_wh <= reserved <= locked,
    # taken <= available, in_wh + taken <= KWH, burned <= escrow, all below 2**128.
    burned: uint256 = unsafe_mul(in_wh, WH)
    rb: uint256 = 0
    if in_wh != 0 and r != 0:
        rb = min(r, (self._params >> 64) & M64)
        d_unused: int256 = 0
        burned, d_unused = cost_math.burn_amount(in_wh, d_before, rb)
    if burned > escrow:
        # The rate rose since the session started: energy is inside the reserve only as far
        # as the escrow pays for it at the rate in force; the rest is over-consumption.
        in_wh = cost_math.payable_wh(escrow, in_wh, d_before, rb)
        d_unused: int256 = 0
        burned, d_unused = cost_math.burn_amount(in_wh, d_before, rb)
    over_wh: uint256 = unsafe_sub(wh, in_wh)
    available: uint256 = (word >> 64) & M64
    # Over-consumption beyond the book value cannot take the book below zero.
    taken: uint256 = min(over_wh, available)

    if r != 0 or taken != 0:
        # ENT (supply + escrow) fell by `burned`, KWH by `in_wh + taken`.
        d_after: int256 = (
            d_before - convert(burned, int256) + convert((in_wh + taken) * WH, int256)
        )
        if d_after != d_before:
            state = self._apply_cost(state, d_before, d_after)
    # Otherwise (R = 0, nothing over-consumed): 1 ENT per kWh, D unchanged.
    escrow = unsafe_sub(escrow, burned)
    reserved = unsafe_sub(reserved, in_wh)
    locked: uint256 = unsafe_sub((word >> 128) & M64, in_wh)
    available = unsafe_sub(available, taken)
    state = unsafe_sub(state, unsafe_add(in_wh, taken))

    if session != 0 and (over_wh != 0 or reserved == 0):
        # The reserve is used up (or exceeded): the session ends with a refund.
        if escrow != 0:
            erc20._mint(consumer, escrow)
        locked -= reserved
        available += reserved
        self._session[consumer][ctx.unit] = 0
        log SessionClosed(consumer=consumer, unit=ctx.unit, refunded=escrow, released_wh=reserved)
    elif session != 0:
        self._session[consumer][ctx.unit] = escrow | (reserved << 128) | ((session >> 192) << 192)

    result.word = (word & KEEP) | seq | (available << 64) | (locked << 128)
    result.state = state
    log EnergyConsumed(
        unit=ctx.unit, consumer=consumer, seq=seq, wh=wh, burned=burned, over_wh=over_wh
    )
    if over_wh != 0:
        log OverConsumed(unit=ctx.unit, consumer=consumer, seq=seq, wh=over_wh)
    return result


@internal
def _actual(ctx: Ctx, wh: uint256, seq: uint256) -> Ctx:
    assert wh <= ctx.word >> CAP_SHIFT, "ledger: report above unit maximum"
    result: Ctx = ctx
    available: uint256 = (ctx.word >> 64) & M64
    locked: uint256 = (ctx.word >> 128) & M64
    book_before: uint256 = available + locked
    # Energy reserved by sessions stays booked until they consume or close.
    book_after: uint256 = max(wh, locked)
    kwh: uint256 = (ctx.state & M64) + book_after - book_before
    assert book_after <= M64 and kwh <= M64, "ledger: energy overflow"
    d_before: int256 = self._d(ctx.state)
    d_after: int256 = (
        d_before + convert(book_before * WH, int256) - convert(book_after * WH, int256)
    )
    state: uint256 = self._apply_cost(ctx.state, d_before, d_after)
    result.state = (state & ~M64) | kwh
    result.word = (ctx.word & ~(M64 << 64) & ~M64) | ((book_after - locked) << 64) | seq
    log ActualEnergyReported(
        unit=ctx.unit, seq=seq, wh=wh, book_before_wh=book_before, book_after_wh=book_after
    )
    return result


@internal
def _close_session(consumer: address, unit: address, session: uint256, word: uint256) -> uint256:
    # Refund the escrow, release the reserve; returns the unit's updated word. D is
    # unchanged: escrow moves back into circulation, and a removed unit's reserve already
    # left the network energy when the unit was removed.
    escrow: uint256 = session & M128
    reserved: uint256 = (session >> 128) & M64
    if escrow != 0:
        erc20._mint(consumer, escrow)
    self._session[consumer][unit] = 0
    locked: uint256 = ((word >> 128) & M64) - reserved
    available: uint256 = (word >> 64) & M64
    if word & ACTIVE != 0:
        available += reserved
    log SessionClosed(consumer=consumer, unit=unit, refunded=escrow, released_wh=reserved)
    return (word & (KEEP | M64)) | (available << 64) | (locked << 128)


@internal
def _set_params(m: uint256, b: uint256, c: uint256, f: uint256, h: uint256):
    assert m < WAD, "ledger: M out of range"
    assert b < WAD, "ledger: B out of range"
    assert c != 0 and c < WAD, "ledger: C out of range"
    assert f < WAD, "ledger: F out of range"
    assert h >= MIN_SESSION_LIFETIME and h <= MAX_SESSION_LIFETIME, "ledger: H out of range"
    self._params = m | (b << 64) | (c << 128) | (f << 192)
    self.session_lifetime = h
    log ParametersSet(
        max_mint_cost=m, max_burn_cost=b, recovery_share=c, storage_fee=f, session_lifetime=h
    )
