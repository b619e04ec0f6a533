# pragma version ~=0.4.3
"""
@title MockLedger: a TEST-ONLY stand-in for EnergyLedger's storage-unit reporting ABI
@license GNU Affero General Public License v3.0 only
@notice Implements `IEnergyLedger` with the same sequence semantics as the real ledger (each
        report must carry `last_seq + 1`; a retried report reverts "ledger: bad sequence")
        and no token economics. It keeps per-unit totals of produced and consumed energy per
        account and the last actual energy, so the oracle's tests can compare on-chain totals
        with meter totals exactly. Never deploy it outside tests.
@custom:security Anyone may `register` a unit, pause reporting and open a session: this is
        a test fixture.
"""


from ..interfaces import IEnergyLedger


implements: IEnergyLedger


KIND_PRODUCED: constant(uint256) = 0
KIND_CONSUMED: constant(uint256) = 1
KIND_ACTUAL: constant(uint256) = 2
MAX_BATCH: constant(uint256) = 64
WH_MASK: constant(uint256) = 2**88 - 1
ACCOUNT_MASK: constant(uint256) = 2**160 - 1


units: HashMap[address, IEnergyLedger.UnitInfo]

# @dev unit -> producer -> Wh reported as produced into the unit.
produced_wh: public(HashMap[address, HashMap[address, uint256]])

# @dev unit -> consumer -> Wh reported as consumed from the unit.
consumed_wh: public(HashMap[address, HashMap[address, uint256]])

# @dev unit -> last reported actual energy (Wh) and how many actual reports were made.
actual_wh: public(HashMap[address, uint256])
actual_reports: public(HashMap[address, uint256])

# @dev unit -> consumer -> whether the consumer opened a session with the unit.
session_open: public(HashMap[address, HashMap[address, bool]])

# @dev While set, every report reverts "ledger: paused" (the real ledger's Council pause).
paused: public(bool)


event UnitRegistered:
    unit: indexed(address)
    owner: indexed(address)


event SessionStarted:
    consumer: indexed(address)
    unit: indexed(address)


event EnergyProduced:
    unit: indexed(address)
    producer: indexed(address)
    wh: uint256
    seq: uint64


event EnergyConsumed:
    unit: indexed(address)
    consumer: indexed(address)
    wh: uint256
    seq: uint64


event ActualEnergyReported:
    unit: indexed(address)
    wh: uint256
    seq: uint64


@external
def register(unit: address):
    """
    @notice Register `unit` as an active storage unit owned by the caller (governance's job
            in the real ledger).
    @param unit The unit's meter account.
    """
    assert unit != empty(address), "ledger: zero unit"
    assert not self.units[unit].active, "ledger: unit exists"
    self.units[unit].owner = msg.sender
    self.units[unit].active = True
    self.units[unit].max_report_wh = 2**40
    log UnitRegistered(unit=unit, owner=msg.sender)


@external
def deactivate(unit: address):
    """
    @notice Deactivate `unit` (the real ledger's unit removal), for "unit not active" tests.
    @param unit The unit's meter account.
    """
    assert self.units[unit].owner == msg.sender, "ledger: not owner"
    self.units[unit].active = False


@external
def set_paused(paused: bool):
    """
    @notice Pause or resume all reporting (anyone may: this is a test fixture).
    @param paused True to pause.
    """
    self.paused = paused


@external
def start_session(unit: address, ent_amount: uint256):
    """
    @notice Open a consumption session with `unit`; the mock escrows nothing.
    @param unit The storage unit.
    @param ent_amount Ignored by the mock.
    """
    self.session_open[unit][msg.sender] = True
    log SessionStarted(consumer=msg.sender, unit=unit)


@external
def energy_produced(producer: address, wh: uint256, seq: uint64):
    """
    @notice The calling unit received `wh` Wh from `producer`.
    @param producer The producer's account.
    @param wh Energy in Wh.
    @param seq Must be the unit's `last_seq + 1`.
    """
    self._begin(msg.sender, seq)
    self._produced(msg.sender, producer, wh, seq)


@external
def energy_consumed(consumer: address, wh: uint256, seq: uint64):
    """
    @notice The calling unit delivered `wh` Wh to `consumer`, who must hold a session.
    @param consumer The consumer's account.
    @param wh Energy in Wh.
    @param seq Must be the unit's `last_seq + 1`.
    """
    self._begin(msg.sender, seq)
    self._consumed(msg.sender, consumer, wh, seq)


@external
def report_actual_energy(wh: uint256, seq: uint64):
    """
    @notice The calling unit measured `wh` Wh stored.
    @param wh Energy in Wh.
    @param seq Must be the unit's `last_seq + 1`.
    """
    self._begin(msg.sender, seq)
    self._actual(msg.sender, wh, seq)


@external
def report_batch(first_seq: uint64, readings: DynArray[uint256, MAX_BATCH]):
    """
    @notice Several reports in one transaction, taking sequence numbers `first_seq`, ...
    @param first_seq Must be the unit's `last_seq + 1`.
    @param readings Each `kind << 248 | wh << 160 | account`.
    """
    assert len(readings) > 0, "ledger: empty batch"
    self._begin(msg.sender, first_seq)
    seq: uint64 = first_seq
    for reading: uint256 in readings:
        kind: uint256 = reading >> 248
        wh: uint256 = (reading >> 160) & WH_MASK
        account: address = convert(convert(reading & ACCOUNT_MASK, uint160), address)
        if kind == KIND_PRODUCED:
            self._produced(msg.sender, account, wh, seq)
        elif kind == KIND_CONSUMED:
            self._consumed(msg.sender, account, wh, seq)
        elif kind == KIND_ACTUAL:
            self._actual(msg.sender, wh, seq)
        else:
            raise "ledger: bad kind"
        seq += 1
    self.units[msg.sender].last_seq = seq - 1


@view
@external
def unit_info(unit: address) -> IEnergyLedger.UnitInfo:
    """
    @notice The unit's record.
    @param unit The unit's meter account.
    @return Owner, active flag, available and locked Wh, last sequence number.
    """
    return self.units[unit]


@view
@external
def last_seq(unit: address) -> uint64:
    """
    @notice The sequence number of the unit's last accepted report.
    @param unit The unit's meter account.
    @return 0 before the first report.
    """
    return self.units[unit].last_seq


@internal
def _begin(unit: address, seq: uint64):
    assert not self.paused, "ledger: paused"
    assert self.units[unit].active, "ledger: unit not active"
    assert seq == self.units[unit].last_seq + 1, "ledger: bad sequence"
    self.units[unit].last_seq = seq


@internal
def _produced(unit: address, producer: address, wh: uint256, seq: uint64):
    self.produced_wh[unit][producer] += wh
    self.units[unit].available_wh += wh
    log EnergyProduced(unit=unit, producer=producer, wh=wh, seq=seq)


@internal
def _consumed(unit: address, consumer: address, wh: uint256, seq: uint64):
    assert self.session_open[unit][consumer], "ledger: no session"
    self.consumed_wh[unit][consumer] += wh
    # The mock's book floors at zero; the real ledger accounts over-consumption instead.
    self.units[unit].available_wh -= min(wh, self.units[unit].available_wh)
    log EnergyConsumed(unit=unit, consumer=consumer, wh=wh, seq=seq)


@internal
def _actual(unit: address, wh: uint256, seq: uint64):
    self.actual_wh[unit] = wh
    self.actual_reports[unit] += 1
    self.units[unit].available_wh = wh
    log ActualEnergyReported(unit=unit, wh=wh, seq=seq)
