# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title HiveMarket (SPEC §8): the queen's period settlement at hive and grid tariffs
@license GNU Affero General Public License v3.0 only
@notice One contract for every hive of the Beekeeper. A hive owner opens its hive's market
        (period length, queen), enrols its meters as workers with a rated maximum per period
        and sets tariffs within Council bounds (a change applies from the next period).
        Workers prepay the hive's stablecoin, the owner deposits, the queen submits each
        period once, in order, in batches: every worker's certified Wh produced and consumed.
        Settlement maximises autarky: matched = min(P, C) of the workers' net energy trades
        inside the hive at hive prices, pro rata; the rest goes to or comes from the grid at
        grid tariffs through the owner, whose deposit takes the residual. A worker short of
        funds pays what it has; the rest is its debt (a negative balance), fronted by the
        owner and repaid to the owner first from the worker's next prepayment or earnings.
@dev Packed words (bit 0 = least significant):

     worker pair | two workers of one hive per word, `_pairs[hive << 16 | index >> 1]`: the
                 | worker of even index in bits 0..127, of odd index in 128..255, each:
       (half)    | balance + 2**93 0..93 | settled parity 94 | forecast flag 95 |
                 | rated max Wh 96..127 (0: not enrolled) |
     profile     | `_workers[worker]`: index in its hive 0..15 | reputation score 32..63 |
                 | forecasts scored 64..95 | hive 96..127 | forecast period + 1 192..223 |
                 | forecast net Wh + 2**31 224..255 |
     hive word   | start 0..39 | period seconds 40..71 | next period 72..103 | decimals 104..111 |
                 | workers 112..127 | open: submitted 128..143 | open flag 144 |
                 | indices used 160..175 |
     tariffs     | grid buy 0..31 | grid sell 32..63 | hive buy 64..95 | hive sell 96..127 |
                 | (pending only) effective period 128..159 | pending flag 160 |
     open period | declared P 0..63 | declared C 64..127 | cumulative P 128..191 | cum C 192..255 |

     Why two workers per word (issue 13: at most 6,000 gas per worker): settlement reads and
     writes only the pair words, so two workers share one cold read and one write (2,100 +
     2,900 gas, then 100 + 100 for the second). A worker's index is fixed at its first
     enrolment in the hive (never reused: a removed worker keeps its balance there) and
     the queen's entries name workers by index; membership is the half's rated maximum
     (0: not enrolled). The settled parity is the parity of the next period to settle
     for the worker: enrol sets it to the hive's next period's, settlement checks and
     flips it, and as a period closes only when every enrolled worker was settled once,
     all enrolled workers share it whenever no period is open. The forecast flag says a
     forecast waits in the profile (read only then; scoring it writes the reputation in
     the same word). Tariffs are
     in 1e-4 of the coin's unit per kWh (20 cents = 2000): amount = Wh x tariff x 10**decimals
     / 10**7. Consumers' amounts round up, producers' down, the owner takes the exact
     residual, so nothing is created by rounding.
@custom:security The Council (`governance`) sets tariff bounds and the platform fee. A hive's
        owner (read from the Beekeeper) opens its market, enrols workers, sets tariffs and the
        queen. Only the queen submits periods. Nobody can move a worker's prepaid balance
        except settlement at the tariffs in force.
"""


interface IERC20:
    def transfer(to: address, amount: uint256) -> bool: nonpayable
    def transferFrom(owner: address, to: address, amount: uint256) -> bool: nonpayable


struct HiveView:
    owner: address
    stablecoin: address
    staked: uint256
    status: uint8
    meter_count: uint256
    start: uint256
    end: uint256


struct MeterView:
    owner: address
    status: uint8
    hive: uint256
    info_hash: bytes32


struct StablecoinView:
    status: uint8
    decimals: uint8
    code: String[8]
    book: address


interface IBeekeeper:
    def hive_info(hive: uint256) -> HiveView: view
    def meter_info(meter: address) -> MeterView: view
    def stablecoin_info(token: address) -> StablecoinView: view
    def hive_meters(hive: uint256) -> DynArray[address, 128]: view


struct WorkerView:
    hive: uint256
    balance: int256
    settled_period: int256
    max_wh: uint256
    forecast_period: int256
    forecast_wh: int256
    index: uint256


struct MarketView:
    start: uint256
    period_seconds: uint256
    next_period: uint256
    decimals: uint256
    workers: uint256
    submitted: uint256
    open: bool
    queen: address
    deposit: uint256


struct Ranked:
    worker: address
    score: uint256
    scored: uint256


# @dev A hive's batch: at most this many workers per transaction (128 workers: two batches).
MAX_BATCH: public(constant(uint256)) = 128
# @dev The Beekeeper's bound on meters per hive, so every hive's workers fit two batches.
MAX_WORKERS: public(constant(uint256)) = 128
# @dev Indices a hive hands out over its life (one per worker's first enrolment there, never
#      reused, so a removed worker's balance stays at its index); only the hive's owner
#      enrols, each worker a Beekeeper meter of the hive, so only the owner can use them up.
MAX_INDICES: public(constant(uint256)) = 2**16 - 1
# @dev `ranking` returns at most this many workers.
MAX_RANKED: public(constant(uint256)) = 16
# @dev The platform fee never exceeds 10% of what consumers pay.
MAX_FEE_BPS: public(constant(uint256)) = 1000
# @dev Reputation score scale: 10000 = every forecast exact.
SCORE_ONE: public(constant(uint256)) = 10000
DEFAULT_TARIFFS: constant(uint256) = 2000 | (500 << 32) | (1000 << 64) | (1000 << 96)
OFFSET94: constant(int256) = 2**93
OFFSET32: constant(int256) = 2**31
MASK32: constant(uint256) = 2**32 - 1
MASK40: constant(uint256) = 2**40 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK94: constant(uint256) = 2**94 - 1
MASK128: constant(uint256) = 2**128 - 1
PARITY: constant(uint256) = 1 << 94
FLAG: constant(uint256) = 1 << 95
MASK160: constant(uint256) = 2**160 - 1
MASK16: constant(uint256) = 2**16 - 1
MASK8: constant(uint256) = 2**8 - 1
HIVE_ACTIVE: constant(uint8) = 1
METER_ACTIVE: constant(uint8) = 1


BEEKEEPER: public(immutable(IBeekeeper))
governance: public(address)
fee_bps: public(uint256)
fee_to: public(address)
tariff_min: public(uint256)
tariff_max: public(uint256)
fees_owed: public(HashMap[address, uint256])
queen_of: public(HashMap[uint256, address])
coin_of: public(HashMap[uint256, address])
deposit_of: public(HashMap[uint256, uint256])
_hives: HashMap[uint256, uint256]
_tariffs: HashMap[uint256, uint256]
_pending: HashMap[uint256, uint256]
_open: HashMap[uint256, uint256]
_workers: HashMap[address, uint256]
_pairs: HashMap[uint256, uint256]
# @dev A hive's worker of index i (its first enrolment there): `(hive << 16) | i`.
member: public(HashMap[uint256, address])


event GovernanceTransferred:
    previous: indexed(address)
    governance: indexed(address)


event FeeSet:
    fee_bps: uint256
    fee_to: indexed(address)


event TariffBoundsSet:
    tariff_min: uint256
    tariff_max: uint256


event MarketOpened:
    hive: indexed(uint256)
    stablecoin: indexed(address)
    start: uint256
    period_seconds: uint256
    queen: address


event QueenSet:
    hive: indexed(uint256)
    queen: indexed(address)


event TariffsSet:
    hive: indexed(uint256)
    effective_period: uint256
    grid_buy: uint256
    grid_sell: uint256
    hive_buy: uint256
    hive_sell: uint256


event WorkerEnrolled:
    hive: indexed(uint256)
    worker: indexed(address)
    max_wh: uint256


event WorkerRemoved:
    hive: indexed(uint256)
    worker: indexed(address)


event Prepaid:
    worker: indexed(address)
    amount: uint256
    repaid: uint256


event Withdrawn:
    worker: indexed(address)
    amount: uint256


event Deposited:
    hive: indexed(uint256)
    amount: uint256


event DepositWithdrawn:
    hive: indexed(uint256)
    amount: uint256


event FeesClaimed:
    stablecoin: indexed(address)
    fee_to: indexed(address)
    amount: uint256


event ForecastPosted:
    worker: indexed(address)
    period: uint256
    net_wh: int256


event WorkerShort:
    hive: indexed(uint256)
    period: indexed(uint256)
    worker: indexed(address)
    shortfall: uint256
    debt: uint256


event ReputationChanged:
    worker: indexed(address)
    period: indexed(uint256)
    error_wh: uint256
    score: uint256


event BatchSettled:
    hive: indexed(uint256)
    period: indexed(uint256)
    workers: uint256
    paid_in: uint256
    paid_out: uint256
    fee: uint256
    owner_delta: int256
    # The batch as submitted (workers by index: `member`): with the tariffs and totals in
    # force, each worker's amount follows from the settlement rule (docs/protocol.md), so no
    # event per worker (~2,900 gas).
    entries: DynArray[uint256, MAX_BATCH]


event PeriodOpened:
    hive: indexed(uint256)
    period: indexed(uint256)
    production: uint256
    consumption: uint256
    matched: uint256


event PeriodSettled:
    hive: indexed(uint256)
    period: indexed(uint256)
    production: uint256
    consumption: uint256
    matched: uint256


@deploy
def __init__(beekeeper: address, governance: address):
    """
    @notice Deploys the market for the hives of `beekeeper`.
    @param beekeeper The Beekeeper (its proxy).
    @param governance The Council (or the deployer until the Council takes over).
    """
    assert beekeeper.is_contract, "market: beekeeper not a contract"
    BEEKEEPER = IBeekeeper(beekeeper)
    self.governance = governance
    self.fee_to = governance
    self.tariff_max = 10000
    log GovernanceTransferred(previous=empty(address), governance=governance)
    log TariffBoundsSet(tariff_min=0, tariff_max=10000)


# ---------------------------------------------------------------- governance


@external
def transfer_governance(governance: address):
    """
    @notice Hands governance (fee, tariff bounds) to another account, e.g. the Council.
    @param governance The new governance.
    """
    self._only_governance()
    assert governance != empty(address), "market: zero governance"
    log GovernanceTransferred(previous=self.governance, governance=governance)
    self.governance = governance


@external
def set_fee(fee_bps: uint256, fee_to: address):
    """
    @notice Sets the platform fee (basis points of what consumers pay) and its address.
    @param fee_bps The fee, at most `MAX_FEE_BPS`.
    @param fee_to Where claimed fees go.
    """
    self._only_governance()
    assert fee_bps <= MAX_FEE_BPS, "market: fee too high"
    assert fee_to != empty(address), "market: zero fee address"
    self.fee_bps = fee_bps
    self.fee_to = fee_to
    log FeeSet(fee_bps=fee_bps, fee_to=fee_to)


@external
def set_tariff_bounds(tariff_min: uint256, tariff_max: uint256):
    """
    @notice Bounds for every tariff a hive owner sets (1e-4 coin units per kWh); tariffs
            already set stay until their owner changes them.
    @param tariff_min Lowest allowed tariff.
    @param tariff_max Highest allowed tariff (< 2**32).
    """
    self._only_governance()
    assert tariff_min <= tariff_max and tariff_max <= MASK32, "market: bad bounds"
    self.tariff_min = tariff_min
    self.tariff_max = tariff_max
    log TariffBoundsSet(tariff_min=tariff_min, tariff_max=tariff_max)


@external
def claim_fees(stablecoin: address) -> uint256:
    """
    @notice Sends the fees accrued in `stablecoin` to the fee address (anyone may call).
    @param stablecoin The coin.
    @return The amount sent.
    """
    amount: uint256 = self.fees_owed[stablecoin]
    to: address = self.fee_to
    self.fees_owed[stablecoin] = 0
    log FeesClaimed(stablecoin=stablecoin, fee_to=to, amount=amount)
    if amount > 0:
        assert extcall IERC20(stablecoin).transfer(to, amount, default_return_value=True), (
            "market: transfer failed"
        )
    return amount


# ---------------------------------------------------------------- hive owner


@external
def open_market(hive: uint256, period_seconds: uint256, queen: address):
    """
    @notice Opens `hive`'s market: periods of `period_seconds` from now, default tariffs.
    @param hive The Beekeeper hive (caller must own it, active).
    @param period_seconds Length of one period (60 s .. 31 days).
    @param queen The hive's aggregator.
    """
    info: HiveView = self._own_active(hive)
    assert self._hives[hive] == 0, "market: already open"
    assert hive <= MASK32, "market: hive id too large"
    assert period_seconds >= 60 and period_seconds <= 31 * 86400, "market: bad period"
    assert queen != empty(address), "market: zero queen"
    decimals: uint256 = convert((staticcall BEEKEEPER.stablecoin_info(info.stablecoin)).decimals, uint256)
    assert decimals <= 36, "market: bad decimals"
    self._hives[hive] = block.timestamp | (period_seconds << 40) | (decimals << 104)
    self._tariffs[hive] = DEFAULT_TARIFFS
    self.queen_of[hive] = queen
    self.coin_of[hive] = info.stablecoin
    log MarketOpened(
        hive=hive,
        stablecoin=info.stablecoin,
        start=block.timestamp,
        period_seconds=period_seconds,
        queen=queen,
    )
    log TariffsSet(
        hive=hive, effective_period=0, grid_buy=2000, grid_sell=500, hive_buy=1000, hive_sell=1000
    )
    log QueenSet(hive=hive, queen=queen)


@external
def set_queen(hive: uint256, queen: address):
    """
    @notice Replaces the hive's queen (also the way past a queen that stopped submitting).
    @param hive The hive.
    @param queen The new queen.
    """
    self._own_active(hive)
    self._market(hive)
    assert queen != empty(address), "market: zero queen"
    self.queen_of[hive] = queen
    log QueenSet(hive=hive, queen=queen)


@external
def set_tariffs(hive: uint256, grid_buy: uint256, grid_sell: uint256, hive_buy: uint256, hive_sell: uint256):
    """
    @notice Sets the hive's tariffs (1e-4 coin units per kWh), from the period after the
            current one: a period that has started keeps the tariffs it started with.
    @dev One change may wait at a time; an earlier one is replaced only while it has not
         taken effect (its period has not started).
    @param hive The hive.
    @param grid_buy Workers' price for energy from the grid.
    @param grid_sell Workers' price for energy sold to the grid.
    @param hive_buy Consumers' price inside the hive.
    @param hive_sell Producers' price inside the hive.
    """
    self._own_active(hive)
    hw: uint256 = self._market(hive)
    lo: uint256 = self.tariff_min
    hi: uint256 = self.tariff_max
    for t: uint256 in [grid_buy, grid_sell, hive_buy, hive_sell]:
        assert t >= lo and t <= hi, "market: tariff out of bounds"
    current: uint256 = self._current_period(hw)
    pending: uint256 = self._pending[hive]
    if pending >> 160 == 1:
        assert (pending >> 128) & MASK32 > current, "market: earlier change in effect"
    effective: uint256 = current + 1
    self._pending[hive] = grid_buy | (grid_sell << 32) | (hive_buy << 64) | (hive_sell << 96) | (effective << 128) | (1 << 160)
    log TariffsSet(
        hive=hive,
        effective_period=effective,
        grid_buy=grid_buy,
        grid_sell=grid_sell,
        hive_buy=hive_buy,
        hive_sell=hive_sell,
    )


@external
def enrol(hive: uint256, workers: DynArray[address, MAX_WORKERS], max_wh: DynArray[uint256, MAX_WORKERS]):
    """
    @notice Enrols meters of the hive as workers, each with its rated maximum Wh per period.
    @dev Not while a period is half submitted: the worker count of an open period is fixed.
         A worker enrolled in the hive before gets its index (and balance) back; a new one
         the hive's next index (at most `MAX_INDICES` over the hive's life).
    @param hive The hive.
    @param workers Meters of the hive (Beekeeper), active.
    @param max_wh Their rated maxima (1 .. 2**32 - 1), one per worker.
    """
    self._own_active(hive)
    hw: uint256 = self._market(hive)
    assert (hw >> 144) & 1 == 0, "market: period open"
    assert len(workers) == len(max_wh), "market: length mismatch"
    count: uint256 = (hw >> 112) & MASK16
    used: uint256 = (hw >> 160) & MASK16
    # Due for the hive's next period: a re-enrolled worker is not settled again for
    # periods already settled.
    parity: uint256 = ((hw >> 72) & 1) << 94
    for i: uint256 in range(len(workers), bound=MAX_WORKERS):
        w: address = workers[i]
        m: uint256 = max_wh[i]
        info: MeterView = staticcall BEEKEEPER.meter_info(w)
        assert info.hive == hive and info.status == METER_ACTIVE, "market: not a meter of the hive"
        assert m > 0 and m <= MASK32, "market: bad rated maximum"
        prof: uint256 = self._workers[w]
        index: uint256 = used
        ub: uint256 = convert(OFFSET94, uint256)
        if prof != 0:
            old: uint256 = (prof >> 96) & MASK32
            at: uint256 = prof & MASK16
            half: uint256 = self._half(self._pairs[self._key(old, at)], at)
            assert half >> 96 == 0, "market: already enrolled"
            if old == hive:
                index = at
                ub = half & MASK94
            else:
                assert half & MASK94 == convert(OFFSET94, uint256), "market: balance in another hive"
        if index == used:
            assert used < MAX_INDICES, "market: worker table full"
            self.member[(hive << 16) | index] = w
            used += 1
        key: uint256 = self._key(hive, index)
        self._pairs[key] = self._put(self._pairs[key], index, ub | parity | (m << 96))
        # The reputation stays with the worker (bits 32..95); a forecast does not.
        self._workers[w] = index | (prof & (MASK64 << 32)) | (hive << 96)
        count += 1
        log WorkerEnrolled(hive=hive, worker=w, max_wh=m)
    assert count <= MAX_WORKERS, "market: too many workers"
    self._hives[hive] = (hw & ~(MASK16 << 112) & ~(MASK16 << 160)) | (count << 112) | (used << 160)


@external
def remove_worker(hive: uint256, worker: address):
    """
    @notice Ends a worker's enrolment; its balance stays withdrawable. The owner may remove
            any worker; anyone may remove one that is no longer an active meter of the hive.
    @param hive The hive.
    @param worker The worker.
    """
    hw: uint256 = self._market(hive)
    assert (hw >> 144) & 1 == 0, "market: period open"
    prof: uint256 = self._workers[worker]
    index: uint256 = prof & MASK16
    key: uint256 = self._key(hive, index)
    word: uint256 = self._pairs[key]
    half: uint256 = self._half(word, index)
    assert (prof >> 96) & MASK32 == hive and half >> 96 != 0, "market: not a worker"
    owner: address = (staticcall BEEKEEPER.hive_info(hive)).owner
    if msg.sender != owner:
        info: MeterView = staticcall BEEKEEPER.meter_info(worker)
        assert info.hive != hive or info.status != METER_ACTIVE, "market: not the hive owner"
    # The balance stays at the worker's index; its rated maximum and forecast go.
    self._pairs[key] = self._put(word, index, half & MASK94)
    self._workers[worker] = prof & ~(MASK64 << 192)
    count: uint256 = (hw >> 112) & MASK16
    self._hives[hive] = (hw & ~(MASK16 << 112)) | ((count - 1) << 112)
    log WorkerRemoved(hive=hive, worker=worker)


@external
def deposit(hive: uint256, amount: uint256):
    """
    @notice Adds to the hive owner's deposit (anyone may fund it).
    @param hive The hive.
    @param amount Stablecoin base units.
    """
    self._market(hive)
    self.deposit_of[hive] += amount
    log Deposited(hive=hive, amount=amount)
    self._pull(self.coin_of[hive], amount)


@external
def withdraw_deposit(hive: uint256, amount: uint256):
    """
    @notice The hive owner takes back part of its deposit.
    @dev Liveness: an owner who withdraws what producers are owed only blocks its own hive's
         settlement ("market: owner deposit short") until it deposits again.
    @param hive The hive.
    @param amount Stablecoin base units.
    """
    owner: address = (staticcall BEEKEEPER.hive_info(hive)).owner
    assert msg.sender == owner, "market: not the hive owner"
    assert amount <= self.deposit_of[hive], "market: deposit too small"
    self.deposit_of[hive] -= amount
    log DepositWithdrawn(hive=hive, amount=amount)
    self._push(self.coin_of[hive], owner, amount)


# ---------------------------------------------------------------- workers


@external
def prepay(amount: uint256):
    """
    @notice Prepays the worker's (caller's) escrow in its hive's coin; a debt is repaid first,
            to the hive owner's deposit.
    @param amount Stablecoin base units.
    """
    prof: uint256 = self._workers[msg.sender]
    hive: uint256 = (prof >> 96) & MASK32
    index: uint256 = prof & MASK16
    key: uint256 = self._key(hive, index)
    word: uint256 = self._pairs[key]
    half: uint256 = self._half(word, index)
    assert hive != 0 and half >> 96 != 0, "market: not a worker"
    balance: int256 = self._balance(half)
    repaid: uint256 = 0
    if balance < 0:
        repaid = min(amount, convert(-balance, uint256))
        self.deposit_of[hive] += repaid
    balance += convert(amount, int256)
    self._pairs[key] = self._put(word, index, self._with_balance(half, balance))
    log Prepaid(worker=msg.sender, amount=amount, repaid=repaid)
    self._pull(self.coin_of[hive], amount)


@external
def withdraw(amount: uint256):
    """
    @notice Withdraws prepaid escrow down to what open periods may still owe: for each
            period that has started and is not settled for the worker, its rated maximum at
            the higher of the current and pending grid buy tariffs.
    @param amount Stablecoin base units.
    """
    prof: uint256 = self._workers[msg.sender]
    hive: uint256 = (prof >> 96) & MASK32
    index: uint256 = prof & MASK16
    key: uint256 = self._key(hive, index)
    word: uint256 = self._pairs[key]
    half: uint256 = self._half(word, index)
    balance: int256 = self._balance(half)
    assert convert(amount, int256) + self._reserve(msg.sender) <= balance, (
        "market: balance reserved"
    )
    if hive != 0:
        self._pairs[key] = self._put(word, index, self._with_balance(half, balance - convert(amount, int256)))
    log Withdrawn(worker=msg.sender, amount=amount)
    self._push(self.coin_of[hive], msg.sender, amount)


@external
def post_forecast(period: uint256, net_wh: int256):
    """
    @notice Posts the caller's forecast of its net energy (produced - consumed, Wh) for a
            period that has not started; one forecast waits at a time (a new one replaces it).
    @param period The period id.
    @param net_wh Forecast net Wh, |net_wh| < 2**31.
    """
    prof: uint256 = self._workers[msg.sender]
    hive: uint256 = (prof >> 96) & MASK32
    index: uint256 = prof & MASK16
    key: uint256 = self._key(hive, index)
    word: uint256 = self._pairs[key]
    half: uint256 = self._half(word, index)
    assert hive != 0 and half >> 96 != 0, "market: not a worker"
    assert period > self._current_period(self._hives[hive]), "market: period started"
    assert period < MASK32 and net_wh > -OFFSET32 and net_wh < OFFSET32, "market: bad forecast"
    prof = (prof & (2**192 - 1)) | ((period + 1) << 192) | (convert(net_wh + OFFSET32, uint256) << 224)
    self._workers[msg.sender] = prof
    if half & FLAG == 0:
        self._pairs[key] = self._put(word, index, half | FLAG)
    log ForecastPosted(worker=msg.sender, period=period, net_wh=net_wh)


# ---------------------------------------------------------------- queen


@external
def submit(hive: uint256, period: uint256, production: uint256, consumption: uint256, batch: DynArray[uint256, MAX_BATCH]):
    """
    @notice Submits and settles one batch of a period's certified energy.
    @dev Each entry is `produced << 192 | consumed << 160 | index` (Wh, each < 2**32; the
         worker's index in the hive, `worker(w).index`, < 2**16; other bits zero). The
         first batch opens the period `period` (which must be the next one and over) with the
         hive's totals of net production P and net consumption C; each batch settles its
         workers at once against those totals; the batch that reaches every enrolled worker
         must make the sums equal P and C, and closes the period. Pro rata shares use
         cumulative floors, so the matched energy of consumers and of producers each sum to
         exactly min(P, C).
    @param hive The hive.
    @param period The period id (the next unsettled one).
    @param production Declared total net production P (ignored after the first batch).
    @param consumption Declared total net consumption C (ignored after the first batch).
    @param batch Packed worker entries.
    """
    assert msg.sender == self.queen_of[hive], "market: not the queen"
    hw: uint256 = self._hives[hive]
    nxt: uint256 = (hw >> 72) & MASK32
    assert period == nxt, "market: wrong period"
    op: uint256 = 0
    submitted: uint256 = 0
    if (hw >> 144) & 1 == 0:
        assert self._current_period(hw) > period, "market: period not over"
        assert production <= MASK64 and consumption <= MASK64, "market: totals too large"
        op = production | (consumption << 64)
        pending: uint256 = self._pending[hive]
        if pending >> 160 == 1 and (pending >> 128) & MASK32 <= period:
            self._tariffs[hive] = pending & (2**128 - 1)
            self._pending[hive] = 0
        log PeriodOpened(
            hive=hive,
            period=period,
            production=production,
            consumption=consumption,
            matched=min(production, consumption),
        )
    else:
        op = self._open[hive]
        submitted = (hw >> 128) & MASK16
    total_p: uint256 = op & MASK64
    total_c: uint256 = (op >> 64) & MASK64
    cum_p: uint256 = (op >> 128) & MASK64
    cum_c: uint256 = op >> 192
    matched: uint256 = min(total_p, total_c)
    tw: uint256 = self._tariffs[hive]
    scale: uint256 = 10 ** ((hw >> 104) & MASK8)
    # Prices per Wh times 10**7 (1e-4 unit per kWh = 1e-7 unit per Wh).
    grid_buy: uint256 = (tw & MASK32) * scale
    grid_sell: uint256 = ((tw >> 32) & MASK32) * scale
    hive_buy: uint256 = ((tw >> 64) & MASK32) * scale
    hive_sell: uint256 = ((tw >> 96) & MASK32) * scale
    paid_in: uint256 = 0
    received: uint256 = 0
    paid_out: uint256 = 0
    # A worker due for this period has settled parity `period & 1`; settling flips it.
    due: uint256 = (period & 1) << 94
    base: uint256 = hive << 16
    off: uint256 = convert(OFFSET94, uint256)
    for entry: uint256 in batch:
        # Bounds that make the unsafe arithmetic below exact: Wh < 2**32, totals < 2**64,
        # prices < 2**32 * 10**36 < 2**152, the biased balance `ub` (balance + 2**93) < 2**94.
        index: uint256 = entry & MASK16
        produced: uint256 = (entry >> 192) & MASK32
        consumed: uint256 = (entry >> 160) & MASK32
        assert entry & ~(MASK64 << 160 | MASK16) == 0, "market: bad entry"
        key: uint256 = base | (index >> 1)
        sh: uint256 = (index & 1) << 7
        word: uint256 = self._pairs[key]
        half: uint256 = (word >> sh) & MASK128
        cap: uint256 = half >> 96
        assert cap != 0, "market: not a worker of the hive"
        assert half & PARITY == due, "market: worker already settled"
        assert produced <= cap and consumed <= cap, "market: above rated maximum"
        ub: uint256 = half & MASK94
        if consumed > produced:
            net: uint256 = unsafe_sub(consumed, produced)
            nc: uint256 = unsafe_add(cum_c, net)
            assert nc <= total_c, "market: totals exceeded"
            share: uint256 = unsafe_sub(unsafe_div(unsafe_mul(nc, matched), total_c), unsafe_div(unsafe_mul(cum_c, matched), total_c))
            cum_c = nc
            # Consumers round up: ceil(x / 10**7).
            bill: uint256 = unsafe_add(
                unsafe_div(unsafe_add(unsafe_mul(share, hive_buy), 9_999_999), 10**7),
                unsafe_div(unsafe_add(unsafe_mul(unsafe_sub(net, share), grid_buy), 9_999_999), 10**7),
            )
            paid_in = unsafe_add(paid_in, bill)
            have: uint256 = 0
            if ub > off:
                have = unsafe_sub(ub, off)
            assert bill < ub, "market: balance overflow"
            if bill > have:
                received = unsafe_add(received, have)
                log WorkerShort(
                    hive=hive,
                    period=period,
                    worker=self.member[base | index],
                    shortfall=unsafe_sub(bill, have),
                    debt=unsafe_sub(off, unsafe_sub(ub, bill)),
                )
            else:
                received = unsafe_add(received, bill)
            ub = unsafe_sub(ub, bill)
        elif produced > consumed:
            net: uint256 = unsafe_sub(produced, consumed)
            np: uint256 = unsafe_add(cum_p, net)
            assert np <= total_p, "market: totals exceeded"
            share: uint256 = unsafe_sub(unsafe_div(unsafe_mul(np, matched), total_p), unsafe_div(unsafe_mul(cum_p, matched), total_p))
            cum_p = np
            # Producers round down.
            got: uint256 = unsafe_add(
                unsafe_div(unsafe_mul(share, hive_sell), 10**7),
                unsafe_div(unsafe_mul(unsafe_sub(net, share), grid_sell), 10**7),
            )
            paid_out = unsafe_add(paid_out, got)
            if ub < off:
                # A producer in debt repays the owner, who fronted it, from its earnings first.
                received = unsafe_add(received, min(got, unsafe_sub(off, ub)))
            ub = unsafe_add(ub, got)
            assert ub <= MASK94, "market: balance overflow"
        half = (half & (FLAG | (MASK32 << 96))) | ub | (due ^ PARITY)
        if half & FLAG != 0:
            half = self._score(base | index, half, period, convert(produced, int256) - convert(consumed, int256), cap)
        self._pairs[key] = (word & ~(MASK128 << sh)) | (half << sh)
        submitted = unsafe_add(submitted, 1)
    assert cum_p <= total_p and cum_c <= total_c, "market: totals exceeded"
    fee: uint256 = paid_in * self.fee_bps // 10000
    # The owner's deposit: + what consumers actually paid and producers in debt repaid -
    # producers - fee. Debts are fronted by the owner and repaid to it by `prepay` or by the
    # worker's next earnings.
    owner_delta: int256 = convert(received, int256) - convert(paid_out + fee, int256)
    dep: int256 = convert(self.deposit_of[hive], int256) + owner_delta
    assert dep >= 0, "market: owner deposit short"
    self.deposit_of[hive] = convert(dep, uint256)
    if fee > 0:
        self.fees_owed[self.coin_of[hive]] += fee
    log BatchSettled(
        hive=hive,
        period=period,
        workers=len(batch),
        paid_in=paid_in,
        paid_out=paid_out,
        fee=fee,
        owner_delta=owner_delta,
        entries=batch,
    )
    workers: uint256 = (hw >> 112) & MASK16
    assert submitted <= workers, "market: too many entries"
    hw = hw & ~((2**33 - 1) << 128) & ~(MASK32 << 72)
    if submitted == workers:
        assert cum_p == total_p and cum_c == total_c, "market: totals do not match"
        self._hives[hive] = hw | ((nxt + 1) << 72)
        self._open[hive] = 0
        log PeriodSettled(
            hive=hive, period=period, production=total_p, consumption=total_c, matched=matched
        )
    else:
        self._hives[hive] = hw | (nxt << 72) | (submitted << 128) | (1 << 144)
        self._open[hive] = total_p | (total_c << 64) | (cum_p << 128) | (cum_c << 192)


# ---------------------------------------------------------------- views


@view
@external
def worker(worker: address) -> WorkerView:
    """
    @notice A worker's record: hive, balance (negative: debt), last settled period (-1: none;
            for a worker not enrolled, the hive's last), rated maximum (0: not enrolled),
            pending forecast (period -1: none) and its index in the hive (the queen's entries
            name it by this index).
    @param worker The worker.
    @return The record.
    """
    prof: uint256 = self._workers[worker]
    if prof == 0:
        return empty(WorkerView)
    hive: uint256 = (prof >> 96) & MASK32
    index: uint256 = prof & MASK16
    half: uint256 = self._half(self._pairs[self._key(hive, index)], index)
    return WorkerView(
        hive=hive,
        balance=self._balance(half),
        settled_period=convert(self._next_for(self._hives[hive], half), int256) - 1,
        max_wh=half >> 96,
        forecast_period=convert((prof >> 192) & MASK32, int256) - 1,
        forecast_wh=convert(prof >> 224, int256) - OFFSET32,
        index=index,
    )


@view
@external
def debt_of(worker: address) -> uint256:
    """
    @notice What a worker owes (its unpaid bills), 0 when it is not short.
    @param worker The worker.
    @return The debt in base units.
    """
    prof: uint256 = self._workers[worker]
    index: uint256 = prof & MASK16
    balance: int256 = self._balance(self._half(self._pairs[self._key((prof >> 96) & MASK32, index)], index))
    if balance >= 0:
        return 0
    return convert(-balance, uint256)


@view
@external
def market(hive: uint256) -> MarketView:
    """
    @notice A hive's market: start, period length, next period to settle, coin decimals,
            enrolled workers, entries submitted in the open period, queen and owner deposit.
    @param hive The hive.
    @return The record.
    """
    hw: uint256 = self._hives[hive]
    return MarketView(
        start=hw & MASK40,
        period_seconds=(hw >> 40) & MASK32,
        next_period=(hw >> 72) & MASK32,
        decimals=(hw >> 104) & MASK8,
        workers=(hw >> 112) & MASK16,
        submitted=(hw >> 128) & MASK16,
        open=(hw >> 144) & 1 == 1,
        queen=self.queen_of[hive],
        deposit=self.deposit_of[hive],
    )


@view
@external
def tariffs(hive: uint256) -> (uint256, uint256, uint256, uint256):
    """
    @notice The tariffs the next period to settle uses (a pending change counted once due).
    @param hive The hive.
    @return grid buy, grid sell, hive buy, hive sell (1e-4 coin units per kWh).
    """
    tw: uint256 = self._tariffs[hive]
    pending: uint256 = self._pending[hive]
    if pending >> 160 == 1 and (pending >> 128) & MASK32 <= (self._hives[hive] >> 72) & MASK32:
        tw = pending
    return tw & MASK32, (tw >> 32) & MASK32, (tw >> 64) & MASK32, (tw >> 96) & MASK32


@view
@external
def pending_tariffs(hive: uint256) -> (uint256, uint256, uint256, uint256, uint256):
    """
    @notice A waiting tariff change and the period it applies from (all zero: none).
    @param hive The hive.
    @return grid buy, grid sell, hive buy, hive sell, effective period.
    """
    p: uint256 = self._pending[hive]
    if p >> 160 != 1:
        return 0, 0, 0, 0, 0
    return p & MASK32, (p >> 32) & MASK32, (p >> 64) & MASK32, (p >> 96) & MASK32, (p >> 128) & MASK32


@view
@external
def current_period(hive: uint256) -> uint256:
    """
    @notice The period running now (0 before the market's first period ends).
    @param hive The hive.
    @return Its id.
    """
    return self._current_period(self._hives[hive])


@view
@external
def withdraw_reserve(worker: address) -> int256:
    """
    @notice What a worker's balance must keep for periods that started and are not settled
            for it (see `withdraw`).
    @param worker The worker.
    @return The reserve in base units.
    """
    return self._reserve(worker)


@view
@external
def reputation(worker: address) -> (uint256, uint256):
    """
    @notice A worker's forecast reputation (see docs/protocol.md) and how many forecasts
            were scored.
    @param worker The worker.
    @return score (0 .. SCORE_ONE), count.
    """
    prof: uint256 = self._workers[worker]
    return (prof >> 32) & MASK32, (prof >> 64) & MASK32


@view
@external
def ranking(hive: uint256, n: uint256) -> DynArray[Ranked, MAX_RANKED]:
    """
    @notice The hive's best forecasters: enrolled workers with at least one scored forecast,
            by score (then count), at most `n` (<= MAX_RANKED).
    @dev Bounded: the hive's at most 128 meters, a selection of at most 16.
    @param hive The hive.
    @param n How many.
    @return Ranked workers.
    """
    meters: DynArray[address, 128] = staticcall BEEKEEPER.hive_meters(hive)
    keys: DynArray[uint256, 128] = []
    for m: address in meters:
        prof: uint256 = self._workers[m]
        score: uint256 = (prof >> 32) & MASK32
        count: uint256 = (prof >> 64) & MASK32
        if prof == 0 or (prof >> 96) & MASK32 != hive or count == 0:
            continue
        index: uint256 = prof & MASK16
        if self._half(self._pairs[self._key(hive, index)], index) >> 96 != 0:
            keys.append((score << 192) | (count << 160) | convert(m, uint256))
    out: DynArray[Ranked, MAX_RANKED] = []
    for _: uint256 in range(min(n, MAX_RANKED), bound=MAX_RANKED):
        best: uint256 = 0
        at: uint256 = 0
        for i: uint256 in range(len(keys), bound=128):
            if keys[i] > best:
                best = keys[i]
                at = i
        if best == 0:
            break
        keys[at] = 0
        out.append(Ranked(worker=convert(best & MASK160, address), score=best >> 192, scored=(best >> 160) & MASK32))
    return out


# ---------------------------------------------------------------- internal


def _only_governance():
    assert msg.sender == self.governance, "market: not governance"


@view
def _own_active(hive: uint256) -> HiveView:
    info: HiveView = staticcall BEEKEEPER.hive_info(hive)
    assert info.owner == msg.sender, "market: not the hive owner"
    assert info.status == HIVE_ACTIVE, "market: hive not active"
    return info


@view
def _market(hive: uint256) -> uint256:
    hw: uint256 = self._hives[hive]
    assert hw != 0, "market: not open"
    return hw


@view
def _current_period(hw: uint256) -> uint256:
    length: uint256 = (hw >> 40) & MASK32
    if length == 0:
        return 0
    return (block.timestamp - (hw & MASK40)) // length


@pure
def _key(hive: uint256, index: uint256) -> uint256:
    return (hive << 16) | (index >> 1)


@pure
def _half(word: uint256, index: uint256) -> uint256:
    return (word >> ((index & 1) << 7)) & MASK128


@pure
def _put(word: uint256, index: uint256, half: uint256) -> uint256:
    sh: uint256 = (index & 1) << 7
    return (word & ~(MASK128 << sh)) | (half << sh)


@pure
def _balance(half: uint256) -> int256:
    if half == 0:
        return 0
    return convert(half & MASK94, int256) - OFFSET94


@pure
def _with_balance(half: uint256, balance: int256) -> uint256:
    assert balance > -OFFSET94 and balance < OFFSET94, "market: balance overflow"
    return (half & ~MASK94) | convert(balance + OFFSET94, uint256)


@pure
def _next_for(hw: uint256, half: uint256) -> uint256:
    # The first period not settled for an enrolled worker: the hive's next, or the one
    # after it when the worker was settled in the open period (its parity flipped).
    nxt: uint256 = (hw >> 72) & MASK32
    if half >> 96 != 0 and (hw >> 144) & 1 == 1 and ((half >> 94) & 1) != nxt & 1:
        return nxt + 1
    return nxt


def _score(member: uint256, half: uint256, period: uint256, net: int256, cap: uint256) -> uint256:
    # A forecast for this period is scored; an older one (the worker was not settled then)
    # is dropped; a later one waits (the flag stays).
    w: address = self.member[member]
    word: uint256 = self._workers[w]
    fp: uint256 = (word >> 192) & MASK32
    if fp > period + 1:
        return half
    out: uint256 = half & ~FLAG
    if fp != period + 1:
        self._workers[w] = word & (2**192 - 1)
        return out
    forecast: int256 = convert(word >> 224, int256) - OFFSET32
    err: uint256 = convert(abs(forecast - net), uint256)
    accuracy: uint256 = SCORE_ONE - min(SCORE_ONE, err * SCORE_ONE // cap)
    count: uint256 = (word >> 64) & MASK32
    score: uint256 = accuracy
    if count > 0:
        score = (((word >> 32) & MASK32) * 3 + accuracy) // 4
    self._workers[w] = (word & (MASK16 | (MASK32 << 96))) | (score << 32) | (min(count + 1, MASK32) << 64)
    log ReputationChanged(worker=w, period=period, error_wh=err, score=score)
    return out


@view
def _reserve(worker: address) -> int256:
    prof: uint256 = self._workers[worker]
    hive: uint256 = (prof >> 96) & MASK32
    index: uint256 = prof & MASK16
    half: uint256 = self._half(self._pairs[self._key(hive, index)], index)
    cap: uint256 = half >> 96
    if prof == 0 or cap == 0:
        return 0
    hw: uint256 = self._hives[hive]
    if (staticcall BEEKEEPER.hive_info(hive)).status != HIVE_ACTIVE:
        return 0
    nxt: uint256 = self._next_for(hw, half)  # first period not settled for the worker
    running: uint256 = self._current_period(hw) + 1  # periods started
    if running <= nxt:
        return 0
    price: uint256 = max(self._tariffs[hive] & MASK32, self._pending[hive] & MASK32)
    per: uint256 = (cap * price * 10 ** ((hw >> 104) & MASK8) + 9_999_999) // 10**7
    return convert((running - nxt) * per, int256)


def _pull(coin: address, amount: uint256):
    if amount > 0:
        assert extcall IERC20(coin).transferFrom(msg.sender, self, amount, default_return_value=True), (
            "market: transfer failed"
        )


def _push(coin: address, to: address, amount: uint256):
    if amount > 0:
        assert extcall IERC20(coin).transfer(to, amount, default_return_value=True), (
            "market: transfer failed"
        )
