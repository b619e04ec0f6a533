# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Beekeeper logic (SPEC §7): meters, stablecoins, hives on HVT burn-and-stake
@license GNU Affero General Public License v3.0 only
@notice The state and rules of the Beekeeper, as a module so that every implementation
        (`Beekeeper`, and its successors) shares one storage layout and appends to it.
        - Meters certified by governance (the Council); their owner switches them on or off.
        - Stablecoins listed by governance after an on-chain eligibility check, frozen by it;
          one ENT / coin order book per listed coin, deployed from a blueprint.
        - Hives: `hive_cost + n * meter_cost` HVT, half burned (rounded up), half staked.
        - Hive owners vote on upgrades with power = stake x min(age, 180 days) / 180 days,
          read at the ballot's start. Any number of ballots may be open at once.
@dev Packed words (bit 0 = least significant); every field is written only through the
     `_pack_*` helpers, which assert that each value fits.

     meter word    | owner 0..159 | status 160..167 | index 168..175 | hive 176..255 |
     hive word 0   | owner 0..159 | status 160..167 | count 168..175 | start 176..215 | end 216..255 |
     hive word 1   | stablecoin 0..159 | stake 160..255 |
     hive slot i   | meter 0..159 | meter's stake 160..255 |
     owner word    | stake 0..95 | start 96..135 | snap ballot 136..195 | last voted 196..255 |
     owner snap    | stake 0..95 | start 96..135 |
     globals       | hive count 0..63 | total staked 64..159 | ballot count 160..223 |
     ballot word   | implementation 0..159 | start 160..199 | end 200..239 | status 240..247 |
     ballot tally  | yes 0..127 | no 128..255 |

     96 bits hold any HVT amount (the supply is 10**26 < 2**87); 40-bit timestamps last until
     the year 36812; 80-bit hive ids and 60-bit ballot ids cannot run out. Why packed: one
     cold slot costs 22,100 gas to create and 2,100 to read, and a hive's owner, status and
     meter count are read together by every hive operation.

     Ballots (issue 11: a minority must not be able to freeze the majority). Any number may
     be open; each keeps its start, end and the total stake at its start. An owner's power on
     a ballot is their (stake, start) evaluated at the ballot's start: the owner word if it has
     not changed since (snap ballot < ballot), else the snapshot, which holds the owner's
     state at the start of ballot `snap ballot` (kept on their first change after that ballot
     opened). For an older ballot than the snapshot's that is the state at a later time,
     which can only weigh less at the ballot's start than the true state: a deposit merges
     the start with the age capped at FULL_WEIGHT_AGE first (see `_stake`), so it never adds
     power at an earlier time, and a withdrawal only lowers the stake. Hence counted power is
     never more than the power at the start, exact unless the owner changed their own stake
     both before and after a newer ballot opened. An owner votes at most once per ballot and
     in increasing ballot order (`last voted`): a newly opened ballot always has the highest
     id, so every owner can vote on it whatever they voted before.
@custom:security Governance (the Council) certifies meters, lists and freezes coins, sets
        prices and creates books. Only a passed hive-owner ballot changes the implementation.
"""


from ..modules import erc1967


initializes: erc1967


interface IHVT:
    def transferFrom(owner: address, to: address, amount: uint256) -> bool: nonpayable
    def transfer(to: address, amount: uint256) -> bool: nonpayable
    def burn(amount: uint256): nonpayable


# @dev Most meters in one hive: bounds every loop over a hive (freeze, split, merge).
MAX_METERS: public(constant(uint256)) = 128
# @dev Stake reaches full voting weight after this long; fresh stake weighs zero.
FULL_WEIGHT_AGE: public(constant(uint256)) = 180 * 86400
# @dev An upgrade ballot is open this long; undecided by then, it has failed (expired).
VOTING_PERIOD: public(constant(uint256)) = 7 * 86400

METER_ACTIVE: public(constant(uint8)) = 1
METER_INACTIVE: public(constant(uint8)) = 2
HIVE_ACTIVE: public(constant(uint8)) = 1
HIVE_FROZEN: public(constant(uint8)) = 2
COIN_LISTED: public(constant(uint8)) = 1
COIN_FROZEN: public(constant(uint8)) = 2
BALLOT_OPEN: public(constant(uint8)) = 1
BALLOT_PASSED: public(constant(uint8)) = 2
BALLOT_REJECTED: public(constant(uint8)) = 3
# @dev Reached a YES majority but its implementation had no code any more: closed, no upgrade.
BALLOT_FAILED: public(constant(uint8)) = 4

MASK160: constant(uint256) = 2**160 - 1
MASK96: constant(uint256) = 2**96 - 1
MASK40: constant(uint256) = 2**40 - 1
MASK60: constant(uint256) = 2**60 - 1
MASK8: constant(uint256) = 2**8 - 1


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


struct BallotView:
    implementation: address
    start: uint256
    end: uint256
    status: uint8
    total_stake: uint256
    yes: uint256
    no: uint256


initialized: public(bool)
governance: public(address)
hvt: public(address)
ent: public(address)
book_blueprint: public(address)
hive_cost: public(uint256)
meter_cost: public(uint256)
_globals: uint256
_meters: HashMap[address, uint256]
_meter_info_hash: HashMap[address, bytes32]
_coins: HashMap[address, uint256]
_coin_codes: HashMap[address, String[8]]
book_of: public(HashMap[address, address])
_hive0: HashMap[uint256, uint256]
_hive1: HashMap[uint256, uint256]
_hive_slots: HashMap[uint256, uint256[MAX_METERS]]
_owners: HashMap[address, uint256]
_owner_snaps: HashMap[address, uint256]
_ballots: HashMap[uint256, uint256]
_tallies: HashMap[uint256, uint256]
_ballot_totals: HashMap[uint256, uint256]


event Initialized:
    governance: indexed(address)
    hvt: indexed(address)
    ent: indexed(address)
    book_blueprint: address
    hive_cost: uint256
    meter_cost: uint256


event PricesSet:
    hive_cost: uint256
    meter_cost: uint256


event MeterAdded:
    meter: indexed(address)
    owner: indexed(address)
    serial: String[64]
    manufacturer: String[64]
    info_hash: bytes32


event MeterStatusChanged:
    meter: indexed(address)
    status: uint8


event StablecoinAdded:
    token: indexed(address)
    code: String[8]
    decimals: uint8


event StablecoinFrozen:
    token: indexed(address)


event BookCreated:
    stablecoin: indexed(address)
    book: indexed(address)


event HiveCreated:
    hive: indexed(uint256)
    owner: indexed(address)
    stablecoin: indexed(address)
    meters: DynArray[address, MAX_METERS]
    burned: uint256
    staked: uint256


event MeterAddedToHive:
    hive: indexed(uint256)
    meter: indexed(address)
    burned: uint256
    staked: uint256


event MeterDroppedFromHive:
    hive: indexed(uint256)
    meter: indexed(address)
    returned: uint256


event HiveFrozen:
    hive: indexed(uint256)
    returned: uint256


event HiveSplit:
    hive: indexed(uint256)
    new_hive: indexed(uint256)
    meters: DynArray[address, MAX_METERS]
    stake_moved: uint256


event HivesMerged:
    into: indexed(uint256)
    merged: indexed(uint256)
    stake_moved: uint256


event UpgradeProposed:
    ballot: indexed(uint256)
    implementation: indexed(address)
    proposer: indexed(address)
    end: uint256
    total_stake: uint256


event Voted:
    ballot: indexed(uint256)
    voter: indexed(address)
    support: bool
    power: uint256


event BallotPassed:
    ballot: indexed(uint256)
    implementation: indexed(address)


event BallotRejected:
    ballot: indexed(uint256)


event BallotFailed:
    ballot: indexed(uint256)
    implementation: indexed(address)


# ---------------------------------------------------------------- setup and governance


@external
def initialize(
    governance: address,
    hvt: address,
    ent: address,
    book_blueprint: address,
    hive_cost: uint256,
    meter_cost: uint256,
):
    """
    @notice Sets up the Beekeeper once, in the proxy's storage (the proxy's constructor
            delegates this call, so nobody can front-run it).
    @param governance The Council: certifies meters, lists coins, sets prices, creates books.
    @param hvt The HVT token burned and staked.
    @param ent The energy token every order book trades.
    @param book_blueprint An ERC-5202 blueprint of `OrderBook`.
    @param hive_cost HVT paid per hive.
    @param meter_cost HVT paid per meter of a hive.
    """
    assert not self.initialized, "beekeeper: already initialized"
    assert governance != empty(address), "beekeeper: zero governance"
    assert hvt.is_contract and ent.is_contract, "beekeeper: token not a contract"
    assert book_blueprint.is_contract, "beekeeper: blueprint not a contract"
    self.initialized = True
    self.governance = governance
    self.hvt = hvt
    self.ent = ent
    self.book_blueprint = book_blueprint
    self._set_prices(hive_cost, meter_cost)
    log Initialized(
        governance=governance,
        hvt=hvt,
        ent=ent,
        book_blueprint=book_blueprint,
        hive_cost=hive_cost,
        meter_cost=meter_cost,
    )


@external
def set_prices(hive_cost: uint256, meter_cost: uint256):
    """
    @notice Governed: the HVT price of a hive and of each of its meters (new payments only;
            what is staked keeps its amount).
    @param hive_cost HVT per hive.
    @param meter_cost HVT per meter.
    """
    self._only_governance()
    self._set_prices(hive_cost, meter_cost)


@external
def add_meter(meter: address, owner: address, serial: String[64], manufacturer: String[64]):
    """
    @notice Governed: certifies `meter` for `owner`. The strings live in the event; storage
            keeps their hash (`meter_info`), which anyone can check against the event.
    @param meter The meter's account.
    @param owner Its owner, who may switch it on and off and put it in hives.
    @param serial The serial number.
    @param manufacturer The manufacturer.
    """
    self._only_governance()
    assert meter != empty(address) and owner != empty(address), "beekeeper: zero address"
    assert self._meters[meter] == 0, "beekeeper: meter exists"
    self._meters[meter] = self._pack_meter(owner, METER_ACTIVE, 0, 0)
    info_hash: bytes32 = keccak256(concat(keccak256(serial), keccak256(manufacturer)))
    self._meter_info_hash[meter] = info_hash
    log MeterAdded(
        meter=meter, owner=owner, serial=serial, manufacturer=manufacturer, info_hash=info_hash
    )


@external
def change_meter_status(meter: address, status: uint8):
    """
    @notice The meter's owner switches it on (1) or off (2). An inactive meter cannot join a
            hive; one already in a hive stays there.
    @param meter The meter.
    @param status METER_ACTIVE or METER_INACTIVE.
    """
    word: uint256 = self._meters[meter]
    assert word != 0, "beekeeper: unknown meter"
    assert msg.sender == self._word_owner(word), "beekeeper: not meter owner"
    assert status == METER_ACTIVE or status == METER_INACTIVE, "beekeeper: bad status"
    self._meters[meter] = (word & ~(MASK8 << 160)) | (convert(status, uint256) << 160)
    log MeterStatusChanged(meter=meter, status=status)


@external
def add_stablecoin(token: address, code: String[8]):
    """
    @notice Governed: lists `token` after checking on chain that it is a contract whose
            `decimals()` answers (at most 36), whose `balanceOf` answers and whose
            `transfer` of zero succeeds without moving anything.
    @param token The ERC-20 stablecoin.
    @param code Its short code ("EUR").
    """
    self._only_governance()
    assert self._coins[token] == 0, "beekeeper: stablecoin exists"
    assert len(code) != 0, "beekeeper: empty code"
    assert token.is_contract, "beekeeper: stablecoin not a contract"
    ok: bool = False
    out: Bytes[32] = b""
    ok, out = raw_call(
        token, method_id("decimals()"), max_outsize=32, is_static_call=True,
        revert_on_failure=False
    )
    assert ok and len(out) == 32, "beekeeper: decimals failed"
    decimals: uint256 = convert(out, uint256)
    assert decimals <= 36, "beekeeper: bad decimals"
    before: uint256 = self._balance_of(token)
    ok, out = raw_call(
        token,
        abi_encode(self, empty(uint256), method_id=method_id("transfer(address,uint256)")),
        max_outsize=32,
        revert_on_failure=False,
    )
    assert ok and (len(out) == 0 or convert(out, bool)), "beekeeper: transfer failed"
    assert self._balance_of(token) == before, "beekeeper: transfer misbehaves"
    self._coins[token] = (decimals << 8) | convert(COIN_LISTED, uint256)
    self._coin_codes[token] = code
    log StablecoinAdded(token=token, code=code, decimals=convert(decimals, uint8))


@external
def freeze_stablecoin(token: address):
    """
    @notice Governed: no new hive, meter or order book may use `token`; hives on it can
            still drop meters and be frozen (owners always get their stake back).
    @param token A listed stablecoin.
    """
    self._only_governance()
    word: uint256 = self._coins[token]
    assert word != 0, "beekeeper: unknown stablecoin"
    assert word & MASK8 == convert(COIN_LISTED, uint256), "beekeeper: stablecoin frozen"
    self._coins[token] = (word & ~MASK8) | convert(COIN_FROZEN, uint256)
    log StablecoinFrozen(token=token)


@external
def create_book(stablecoin: address, tick_size: uint256, lot_size: uint256, min_size: uint256) -> address:
    """
    @notice Governed: deploys the ENT / `stablecoin` order book from the blueprint, with the
            Council as its governance. One book per listed, unfrozen coin.
    @param stablecoin A listed, unfrozen stablecoin without a book.
    @param tick_size Price step (stablecoin base units per ENT).
    @param lot_size Amount step (ENT base units).
    @param min_size Smallest order.
    @return The new book.
    """
    self._only_governance()
    self._assert_coin_open(stablecoin)
    assert self.book_of[stablecoin] == empty(address), "beekeeper: book exists"
    book: address = create_from_blueprint(
        self.book_blueprint,
        self.ent,
        stablecoin,
        tick_size,
        lot_size,
        min_size,
        self.governance,
    )
    self.book_of[stablecoin] = book
    log BookCreated(stablecoin=stablecoin, book=book)
    return book


# ---------------------------------------------------------------- hives


@external
def create_hive(stablecoin: address, meters: DynArray[address, MAX_METERS]) -> uint256:
    """
    @notice Creates a hive of the caller's meters on `stablecoin`, for
            `hive_cost + n * meter_cost` HVT (approved to the Beekeeper): half burned, half
            staked.
    @param stablecoin A listed, unfrozen stablecoin.
    @param meters At least one active meter of the caller, none in a hive.
    @return The new hive's id (from 1).
    """
    self._assert_coin_open(stablecoin)
    n: uint256 = len(meters)
    assert n != 0, "beekeeper: no meters"
    g: uint256 = self._globals
    hive: uint256 = (g & 2**64 - 1) + 1
    meter_stake: uint256 = self.meter_cost // 2
    base_stake: uint256 = self.hive_cost // 2
    for i: uint256 in range(n, bound=MAX_METERS):
        self._join(hive, meters[i], i, meter_stake)
    stake: uint256 = base_stake + n * meter_stake
    paid: uint256 = self.hive_cost + n * self.meter_cost
    self._hive0[hive] = self._pack_hive0(msg.sender, HIVE_ACTIVE, n, block.timestamp, 0)
    self._hive1[hive] = self._pack_hive1(stablecoin, stake)
    self._globals = g + 1
    self._stake(msg.sender, stake)
    self._collect(paid, stake)
    log HiveCreated(
        hive=hive,
        owner=msg.sender,
        stablecoin=stablecoin,
        meters=meters,
        burned=paid - stake,
        staked=stake,
    )
    return hive


@external
def add_meter_to_hive(hive: uint256, meter: address):
    """
    @notice Adds one of the caller's active meters to their hive for `meter_cost` HVT: half
            burned, half staked with the meter.
    @param hive An active hive of the caller on an unfrozen stablecoin.
    @param meter An active meter of the caller, in no hive.
    """
    w0: uint256 = self._own_active_hive(hive)
    w1: uint256 = self._hive1[hive]
    self._assert_coin_open(convert(w1 & MASK160, address))
    count: uint256 = (w0 >> 168) & MASK8
    assert count < MAX_METERS, "beekeeper: hive full"
    cost: uint256 = self.meter_cost
    stake: uint256 = cost // 2
    self._join(hive, meter, count, stake)
    self._hive0[hive] = w0 + (1 << 168)
    self._hive1[hive] = w1 + (stake << 160)
    self._stake(msg.sender, stake)
    self._collect(cost, stake)
    log MeterAddedToHive(hive=hive, meter=meter, burned=cost - stake, staked=stake)


@external
def drop_meter_from_hive(hive: uint256, meter: address):
    """
    @notice Takes `meter` out of the caller's hive and returns the HVT it staked (what was
            burned stays burned). The last meter cannot be dropped: freeze the hive instead.
    @param hive An active hive of the caller.
    @param meter A meter in that hive.
    """
    w0: uint256 = self._own_active_hive(hive)
    count: uint256 = (w0 >> 168) & MASK8
    mw: uint256 = self._meters[meter]
    assert mw != 0, "beekeeper: unknown meter"
    assert mw >> 176 == hive, "beekeeper: meter not in hive"
    assert count > 1, "beekeeper: last meter"
    stake: uint256 = self._leave(hive, mw, meter, count)
    self._hive0[hive] = w0 - (1 << 168)
    self._hive1[hive] = self._hive1[hive] - (stake << 160)
    self._unstake(msg.sender, stake)
    log MeterDroppedFromHive(hive=hive, meter=meter, returned=stake)


@external
def freeze_hive(hive: uint256):
    """
    @notice Ends the caller's hive: its meters are free again, its whole remaining stake is
            returned, and it accepts nothing any more. The record stays.
    @param hive An active hive of the caller.
    """
    w0: uint256 = self._own_active_hive(hive)
    count: uint256 = (w0 >> 168) & MASK8
    for i: uint256 in range(count, bound=MAX_METERS):
        meter: address = convert(self._hive_slots[hive][i] & MASK160, address)
        self._meters[meter] = self._meters[meter] & (2**176 - 1) & ~(MASK8 << 168)
    w1: uint256 = self._hive1[hive]
    stake: uint256 = w1 >> 160
    self._hive0[hive] = self._pack_hive0(
        msg.sender, HIVE_FROZEN, count, (w0 >> 176) & MASK40, block.timestamp
    )
    self._hive1[hive] = w1 & MASK160
    self._unstake(msg.sender, stake)
    log HiveFrozen(hive=hive, returned=stake)


@external
def split_hive(hive: uint256, meters: DynArray[address, MAX_METERS]) -> uint256:
    """
    @notice Moves `meters`, each with its stake, into a new hive of the caller on the same
            stablecoin; the hive's own stake stays. No HVT moves.
    @param hive An active hive of the caller on an unfrozen stablecoin.
    @param meters Some, not all, of its meters.
    @return The new hive's id.
    """
    w0: uint256 = self._own_active_hive(hive)
    w1: uint256 = self._hive1[hive]
    coin: address = convert(w1 & MASK160, address)
    self._assert_coin_open(coin)
    n: uint256 = len(meters)
    count: uint256 = (w0 >> 168) & MASK8
    assert n != 0, "beekeeper: no meters"
    assert n < count, "beekeeper: cannot split every meter"
    g: uint256 = self._globals
    new_hive: uint256 = (g & 2**64 - 1) + 1
    moved: uint256 = 0
    for i: uint256 in range(n, bound=MAX_METERS):
        meter: address = meters[i]
        mw: uint256 = self._meters[meter]
        assert mw != 0, "beekeeper: unknown meter"
        assert mw >> 176 == hive, "beekeeper: meter not in hive"
        stake: uint256 = self._leave(hive, mw, meter, count)
        count -= 1
        # _leave cleared the hive: a meter listed twice fails the check above.
        self._meters[meter] = (self._meters[meter] & (2**168 - 1)) | (i << 168) | (new_hive << 176)
        self._hive_slots[new_hive][i] = convert(meter, uint256) | (stake << 160)
        moved += stake
    self._hive0[hive] = (w0 & ~(MASK8 << 168)) | (count << 168)
    self._hive1[hive] = w1 - (moved << 160)
    self._hive0[new_hive] = self._pack_hive0(msg.sender, HIVE_ACTIVE, n, block.timestamp, 0)
    self._hive1[new_hive] = self._pack_hive1(coin, moved)
    self._globals = g + 1
    log HiveSplit(hive=hive, new_hive=new_hive, meters=meters, stake_moved=moved)
    return new_hive


@external
def merge_hives(into: uint256, merged: uint256):
    """
    @notice Moves every meter and the whole stake of `merged` into `into` (one owner, one
            stablecoin); `merged` ends frozen, empty. No HVT moves.
    @param into An active hive of the caller on an unfrozen stablecoin.
    @param merged Another active hive of the caller on the same stablecoin.
    """
    assert into != merged, "beekeeper: same hive"
    w0: uint256 = self._own_active_hive(into)
    m0: uint256 = self._own_active_hive(merged)
    w1: uint256 = self._hive1[into]
    m1: uint256 = self._hive1[merged]
    assert w1 & MASK160 == m1 & MASK160, "beekeeper: different stablecoins"
    self._assert_coin_open(convert(w1 & MASK160, address))
    count: uint256 = (w0 >> 168) & MASK8
    n: uint256 = (m0 >> 168) & MASK8
    assert count + n <= MAX_METERS, "beekeeper: hive full"
    for i: uint256 in range(n, bound=MAX_METERS):
        slot: uint256 = self._hive_slots[merged][i]
        meter: address = convert(slot & MASK160, address)
        self._meters[meter] = (self._meters[meter] & (2**168 - 1)) | ((count + i) << 168) | (into << 176)
        self._hive_slots[into][count + i] = slot
    moved: uint256 = m1 >> 160
    self._hive0[into] = (w0 & ~(MASK8 << 168)) | ((count + n) << 168)
    self._hive1[into] = w1 + (moved << 160)
    self._hive0[merged] = self._pack_hive0(
        msg.sender, HIVE_FROZEN, 0, (m0 >> 176) & MASK40, block.timestamp
    )
    self._hive1[merged] = m1 & MASK160
    log HivesMerged(into=into, merged=merged, stake_moved=moved)


# ---------------------------------------------------------------- hive-owner governance


@external
def propose_upgrade(implementation: address) -> uint256:
    """
    @notice Opens an upgrade ballot for `implementation` with the caller's YES. Any number
            of ballots may be open; each ends when decided or after VOTING_PERIOD.
    @dev The denominator is the total stake at the start: a ballot passes when the YES power
         (stake weighted by age, at most the stake) is more than half of all HVT staked. A
         strict majority of aged stake therefore always decides, fresh stake never does.
         Liveness: owners whose power now is more than half the stake pass any contract in
         their next transactions (this call, then one vote each), whatever others opened.
    @param implementation The contract the proxy should run.
    @return The ballot id.
    """
    assert implementation.is_contract, "beekeeper: implementation not a contract"
    g: uint256 = self._globals
    power: uint256 = self._power(msg.sender, 0, block.timestamp)
    assert power != 0, "beekeeper: no voting power"
    ballot: uint256 = ((g >> 160) & MASK60) + 1
    end: uint256 = block.timestamp + VOTING_PERIOD
    total: uint256 = (g >> 64) & MASK96
    self._globals = (g & ~(MASK60 << 160)) | (ballot << 160)
    self._ballots[ballot] = (
        convert(implementation, uint256)
        | (block.timestamp << 160)
        | (end << 200)
        | (convert(BALLOT_OPEN, uint256) << 240)
    )
    self._ballot_totals[ballot] = total
    log UpgradeProposed(
        ballot=ballot,
        implementation=implementation,
        proposer=msg.sender,
        end=end,
        total_stake=total,
    )
    self._vote(ballot, True)
    return ballot


@external
def vote(ballot: uint256, support: bool) -> bool:
    """
    @notice Votes once on an open ballot with the caller's power at its start; an owner
            votes on ballots in increasing id order (never on one older than their last).
            The vote that makes YES more than half the staked total executes the upgrade,
            or closes the ballot failed if the implementation has no code any more; the one
            that makes NO at least half rejects it.
    @param ballot An open ballot, newer than the caller's last vote.
    @param support YES (True) or NO.
    @return True when this vote passed the ballot and upgraded the proxy.
    """
    return self._vote(ballot, support)


# ---------------------------------------------------------------- views


@view
@external
def implementation() -> address:
    """
    @notice The implementation the proxy delegates to (the ERC-1967 slot).
    @return The implementation.
    """
    return erc1967.implementation


@view
@external
def meter_info(meter: address) -> MeterView:
    """
    @notice A meter's owner, status, hive (0: none) and the hash of its serial and
            manufacturer (`keccak256(keccak256(serial) ++ keccak256(manufacturer))`).
    @param meter The meter.
    @return The record (all zero: unknown).
    """
    word: uint256 = self._meters[meter]
    return MeterView(
        owner=self._word_owner(word),
        status=convert((word >> 160) & MASK8, uint8),
        hive=word >> 176,
        info_hash=self._meter_info_hash[meter],
    )


@view
@external
def stablecoin_info(token: address) -> StablecoinView:
    """
    @notice A coin's status (0 unknown, 1 listed, 2 frozen), decimals, code and book.
    @param token The coin.
    @return The record.
    """
    word: uint256 = self._coins[token]
    return StablecoinView(
        status=convert(word & MASK8, uint8),
        decimals=convert((word >> 8) & MASK8, uint8),
        code=self._coin_codes[token],
        book=self.book_of[token],
    )


@view
@external
def hive_info(hive: uint256) -> HiveView:
    """
    @notice A hive's record (all zero: unknown id).
    @param hive The hive id.
    @return Owner, stablecoin, staked HVT, status, meter count, start and end.
    """
    w0: uint256 = self._hive0[hive]
    w1: uint256 = self._hive1[hive]
    return HiveView(
        owner=self._word_owner(w0),
        stablecoin=convert(w1 & MASK160, address),
        staked=w1 >> 160,
        status=convert((w0 >> 160) & MASK8, uint8),
        meter_count=(w0 >> 168) & MASK8,
        start=(w0 >> 176) & MASK40,
        end=w0 >> 216,
    )


@view
@external
def hive_meters(hive: uint256) -> DynArray[address, MAX_METERS]:
    """
    @notice The meters of a hive, in slot order.
    @param hive The hive id.
    @return Its meters.
    """
    out: DynArray[address, MAX_METERS] = []
    count: uint256 = (self._hive0[hive] >> 168) & MASK8
    for i: uint256 in range(count, bound=MAX_METERS):
        out.append(convert(self._hive_slots[hive][i] & MASK160, address))
    return out


@view
@external
def meter_stake(hive: uint256, meter: address) -> uint256:
    """
    @notice The HVT `meter` staked in `hive` (returned when it is dropped).
    @param hive The hive id.
    @param meter The meter.
    @return Its stake (0 when not in that hive).
    """
    mw: uint256 = self._meters[meter]
    if mw == 0 or mw >> 176 != hive:
        return 0
    return self._hive_slots[hive][(mw >> 168) & MASK8] >> 160


@view
@external
def hive_count() -> uint256:
    """
    @notice How many hives were ever created (ids 1 .. hive_count).
    @return The count.
    """
    return self._globals & (2**64 - 1)


@view
@external
def total_staked() -> uint256:
    """
    @notice HVT staked over all hives (= the Beekeeper's HVT balance).
    @return The total.
    """
    return (self._globals >> 64) & MASK96


@view
@external
def owner_stake(owner: address) -> (uint256, uint256):
    """
    @notice An owner's stake over all their hives and its weighted start time.
    @param owner The hive owner.
    @return (stake, start).
    """
    w: uint256 = self._owners[owner]
    return w & MASK96, (w >> 96) & MASK40


@view
@external
def voting_power(owner: address) -> uint256:
    """
    @notice The owner's power if a ballot opened now.
    @param owner The hive owner.
    @return stake x min(age, FULL_WEIGHT_AGE) / FULL_WEIGHT_AGE.
    """
    return self._power(owner, 0, block.timestamp)


@view
@external
def power_at(owner: address, ballot: uint256) -> uint256:
    """
    @notice The owner's power on `ballot` at its start (never more; less only if the owner
            changed their stake both before and after a newer ballot opened).
    @param owner The hive owner.
    @param ballot The ballot id.
    @return The power a vote would count now.
    """
    b: uint256 = self._ballots[ballot]
    if b == 0:
        return 0
    return self._power(owner, ballot, (b >> 160) & MASK40)


@view
@external
def ballot_info(ballot: uint256) -> BallotView:
    """
    @notice A ballot's implementation, times, status, staked total at start and tallies.
    @param ballot The ballot id.
    @return The record.
    """
    b: uint256 = self._ballots[ballot]
    t: uint256 = self._tallies[ballot]
    return BallotView(
        implementation=convert(b & MASK160, address),
        start=(b >> 160) & MASK40,
        end=(b >> 200) & MASK40,
        status=convert((b >> 240) & MASK8, uint8),
        total_stake=self._ballot_totals[ballot],
        yes=t & (2**128 - 1),
        no=t >> 128,
    )


@view
@external
def ballot_count() -> uint256:
    """
    @notice How many upgrade ballots were ever opened (ids 1 .. ballot_count; any number of
            them may be open).
    @return The count.
    """
    return (self._globals >> 160) & MASK60


@view
@external
def last_vote(owner: address) -> uint256:
    """
    @notice The ballot `owner` voted on last (0: never); they may vote only on newer ones.
    @param owner The hive owner.
    @return The ballot id.
    """
    return (self._owners[owner] >> 196) & MASK60


# ---------------------------------------------------------------- internal


@internal
def _only_governance():
    assert msg.sender == self.governance, "beekeeper: not governance"


@internal
def _set_prices(hive_cost: uint256, meter_cost: uint256):
    # Bounded so that `hive_cost + MAX_METERS * meter_cost` fits the 96-bit stake fields.
    assert hive_cost <= 10**27 and meter_cost <= 10**24, "beekeeper: price too high"
    self.hive_cost = hive_cost
    self.meter_cost = meter_cost
    log PricesSet(hive_cost=hive_cost, meter_cost=meter_cost)


@view
@internal
def _balance_of(token: address) -> uint256:
    ok: bool = False
    out: Bytes[32] = b""
    ok, out = raw_call(
        token,
        abi_encode(self, method_id=method_id("balanceOf(address)")),
        max_outsize=32,
        is_static_call=True,
        revert_on_failure=False,
    )
    assert ok and len(out) == 32, "beekeeper: balanceOf failed"
    return convert(out, uint256)


@view
@internal
def _assert_coin_open(token: address):
    word: uint256 = self._coins[token]
    assert word != 0, "beekeeper: unknown stablecoin"
    assert word & MASK8 == convert(COIN_LISTED, uint256), "beekeeper: stablecoin frozen"


@pure
@internal
def _word_owner(word: uint256) -> address:
    return convert(word & MASK160, address)


@pure
@internal
def _pack_meter(owner: address, status: uint8, index: uint256, hive: uint256) -> uint256:
    return convert(owner, uint256) | (convert(status, uint256) << 160) | (index << 168) | (hive << 176)


@pure
@internal
def _pack_hive0(owner: address, status: uint8, count: uint256, start: uint256, end: uint256) -> uint256:
    assert start <= MASK40 and end <= MASK40, "beekeeper: time overflow"
    return (
        convert(owner, uint256)
        | (convert(status, uint256) << 160)
        | (count << 168)
        | (start << 176)
        | (end << 216)
    )


@pure
@internal
def _pack_hive1(stablecoin: address, stake: uint256) -> uint256:
    assert stake <= MASK96, "beekeeper: stake overflow"
    return convert(stablecoin, uint256) | (stake << 160)


@view
@internal
def _own_active_hive(hive: uint256) -> uint256:
    w0: uint256 = self._hive0[hive]
    assert w0 != 0, "beekeeper: unknown hive"
    assert self._word_owner(w0) == msg.sender, "beekeeper: not hive owner"
    assert (w0 >> 160) & MASK8 == convert(HIVE_ACTIVE, uint256), "beekeeper: hive frozen"
    return w0


@internal
def _join(hive: uint256, meter: address, index: uint256, stake: uint256):
    mw: uint256 = self._meters[meter]
    assert mw != 0, "beekeeper: unknown meter"
    assert self._word_owner(mw) == msg.sender, "beekeeper: not meter owner"
    assert (mw >> 160) & MASK8 == convert(METER_ACTIVE, uint256), "beekeeper: meter inactive"
    assert mw >> 176 == 0, "beekeeper: meter in a hive"
    self._meters[meter] = (mw & (2**168 - 1)) | (index << 168) | (hive << 176)
    self._hive_slots[hive][index] = convert(meter, uint256) | (stake << 160)


@internal
def _leave(hive: uint256, mw: uint256, meter: address, count: uint256) -> uint256:
    """Frees `meter` (word `mw`) from `hive` of `count` meters: the last slot moves into its
    place. Returns the meter's stake."""
    index: uint256 = (mw >> 168) & MASK8
    stake: uint256 = self._hive_slots[hive][index] >> 160
    last: uint256 = count - 1
    if index != last:
        moved: uint256 = self._hive_slots[hive][last]
        self._hive_slots[hive][index] = moved
        other: address = convert(moved & MASK160, address)
        self._meters[other] = (self._meters[other] & ~(MASK8 << 168)) | (index << 168)
    self._hive_slots[hive][last] = 0
    self._meters[meter] = mw & (2**168 - 1)
    return stake


@internal
def _checkpoint(owner: address, w: uint256, g: uint256) -> uint256:
    """Before an owner's stake changes: keeps (stake, start) as they were when the latest
    ballot started, once per ballot, so that its votes read them. Returns the owner word."""
    ballot: uint256 = (g >> 160) & MASK60
    if ballot != 0 and (w >> 136) & MASK60 != ballot:
        self._owner_snaps[owner] = w & (2**136 - 1)
        return (w & ~(MASK60 << 136)) | (ballot << 136)
    return w


@internal
def _stake(owner: address, amount: uint256):
    """Adds `amount` to the owner's stake; the start becomes the amount-weighted mean of the
    old start and now, rounded up (later start: less power). The old start is first capped
    to at most FULL_WEIGHT_AGE ago (same power now): otherwise stake aged far beyond the cap
    would lend its excess age to the fresh amount, which must weigh zero."""
    g: uint256 = self._globals
    w: uint256 = self._checkpoint(owner, self._owners[owner], g)
    stake: uint256 = w & MASK96
    start: uint256 = (w >> 96) & MASK40
    if start + FULL_WEIGHT_AGE < block.timestamp:
        start = block.timestamp - FULL_WEIGHT_AGE
    new_stake: uint256 = stake + amount
    assert new_stake <= MASK96, "beekeeper: stake overflow"
    new_start: uint256 = block.timestamp
    if new_stake != 0:
        new_start = (stake * start + amount * block.timestamp + new_stake - 1) // new_stake
    self._owners[owner] = (w & ~(2**136 - 1)) | new_stake | (new_start << 96)
    self._globals = g + (amount << 64)


@internal
def _unstake(owner: address, amount: uint256):
    """Returns `amount` of the owner's stake to them; the rest keeps its age."""
    g: uint256 = self._globals
    w: uint256 = self._checkpoint(owner, self._owners[owner], g)
    self._owners[owner] = w - amount
    self._globals = g - (amount << 64)
    assert extcall IHVT(self.hvt).transfer(owner, amount, default_return_value=True)


@internal
def _collect(paid: uint256, stake: uint256):
    """Takes `paid` HVT from the caller and burns all but `stake`."""
    hvt: IHVT = IHVT(self.hvt)
    assert extcall hvt.transferFrom(msg.sender, self, paid, default_return_value=True)
    if paid > stake:
        extcall hvt.burn(paid - stake)


@view
@internal
def _power(owner: address, ballot: uint256, at: uint256) -> uint256:
    """Power at time `at`; for `ballot` != 0, at its start (see Ballots in the docstring)."""
    w: uint256 = self._owners[owner]
    if ballot != 0 and (w >> 136) & MASK60 >= ballot:
        w = self._owner_snaps[owner]
    stake: uint256 = w & MASK96
    start: uint256 = (w >> 96) & MASK40
    if stake == 0 or at <= start:
        return 0
    return stake * min(at - start, FULL_WEIGHT_AGE) // FULL_WEIGHT_AGE


@internal
def _vote(ballot: uint256, support: bool) -> bool:
    b: uint256 = self._ballots[ballot]
    assert b != 0, "beekeeper: unknown ballot"
    assert (b >> 240) & MASK8 == convert(BALLOT_OPEN, uint256), "beekeeper: ballot closed"
    assert block.timestamp < (b >> 200) & MASK40, "beekeeper: ballot expired"
    w: uint256 = self._owners[msg.sender]
    last: uint256 = (w >> 196) & MASK60
    assert last != ballot, "beekeeper: already voted"
    assert last < ballot, "beekeeper: voted on a newer ballot"
    power: uint256 = self._power(msg.sender, ballot, (b >> 160) & MASK40)
    assert power != 0, "beekeeper: no voting power"
    self._owners[msg.sender] = (w & (2**196 - 1)) | (ballot << 196)
    t: uint256 = self._tallies[ballot]
    yes: uint256 = t & (2**128 - 1)
    no: uint256 = t >> 128
    if support:
        yes += power
    else:
        no += power
    self._tallies[ballot] = yes | (no << 128)
    log Voted(ballot=ballot, voter=msg.sender, support=support, power=power)
    total: uint256 = self._ballot_totals[ballot]
    if 2 * yes > total:
        implementation: address = convert(b & MASK160, address)
        if not implementation.is_contract:
            # Its code is gone (created and destroyed in one transaction, EIP-6780): close
            # the ballot failed rather than revert the vote that decided it.
            self._ballots[ballot] = (b & ~(MASK8 << 240)) | (convert(BALLOT_FAILED, uint256) << 240)
            log BallotFailed(ballot=ballot, implementation=implementation)
            return False
        self._ballots[ballot] = (b & ~(MASK8 << 240)) | (convert(BALLOT_PASSED, uint256) << 240)
        log BallotPassed(ballot=ballot, implementation=implementation)
        erc1967._upgrade_to(implementation)
        return True
    if 2 * no >= total:
        self._ballots[ballot] = (b & ~(MASK8 << 240)) | (convert(BALLOT_REJECTED, uint256) << 240)
        log BallotRejected(ballot=ballot)
    return False
