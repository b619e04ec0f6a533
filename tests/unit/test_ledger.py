"""Energy ledger and ENT (SPEC §3): reports, the imbalance cost, sessions, governance.

Worked examples are computed by hand in the comments. Units: 1 Wh = 10**15 ENT base units,
1 kWh = 10**18; parameters are wads. Defaults M = B = 0.5, C = 0.05, F = 0.2, H = 7200 s.
"""

import ape
import pytest

from tests.conftest import ZERO
from tests.ledger_helpers import (
    KWH,
    WH,
    actual,
    assert_ledger_conserved,
    consumed,
    produced,
)

WAD = 10**18


def set_c(ledger, deployer, c):
    p = ledger.params()
    ledger.set_parameters(
        p.max_mint_cost, p.max_burn_cost, c, p.storage_fee, p.session_lifetime, sender=deployer
    )


def test_defaults(ledger, deployer):
    p = ledger.params()
    assert (p.max_mint_cost, p.max_burn_cost) == (WAD // 2, WAD // 2)
    assert (p.recovery_share, p.storage_fee, p.session_lifetime) == (WAD // 20, WAD // 5, 7200)
    assert (ledger.name(), ledger.symbol(), ledger.decimals()) == ("PowerHive Energy", "ENT", 18)
    assert ledger.owner() == deployer


def test_fee_split(ledger, unit, unit2, producer, unit_owner):
    # 1,000 Wh at D = 0: 1 ENT minted; F = 0.2 -> owner 0.2 ENT, producer 0.8 ENT.
    tx = produced(ledger, unit, producer, 1000)
    assert tx.events == [
        ledger.EnergyProduced(unit=unit, producer=producer, seq=1, wh=1000, minted=10**18),
        ledger.Transfer(sender=ZERO, receiver=unit_owner, value=2 * 10**17),
        ledger.Transfer(sender=ZERO, receiver=producer, value=8 * 10**17),
    ]
    assert ledger.balanceOf(producer) == 8 * 10**17
    assert ledger.balanceOf(unit_owner) == 2 * 10**17
    info = ledger.unit_info(unit)
    assert (info.available_wh, info.locked_wh, info.last_seq) == (1000, 0, 1)
    assert ledger.network_energy_wh() == 1000
    assert ledger.imbalance() == 0 and ledger.cost() == 0
    assert_ledger_conserved(ledger, [unit, unit2])


def test_session_at_zero_cost(ledger, unit, unit2, producer, consumer, unit_owner):
    produced(ledger, unit, producer, 2000)
    ledger.transfer(consumer, 6 * 10**17, sender=producer)
    # Escrow 0.5 ENT at R = 0: reserves 500 Wh.
    tx = ledger.start_session(unit, 5 * 10**17, sender=consumer)
    s = ledger.session(consumer, unit)
    assert (s.escrow, s.reserved_wh, s.open, s.expired) == (5 * 10**17, 500, True, False)
    assert s.expires_at == tx.timestamp + 7200
    assert ledger.balanceOf(consumer) == 10**17
    info = ledger.unit_info(unit)
    assert (info.available_wh, info.locked_wh) == (1500, 500)
    sessions = [(consumer, unit)]
    assert_ledger_conserved(ledger, [unit, unit2], sessions)
    # 200 Wh burns 0.2 ENT of escrow.
    tx = consumed(ledger, unit, consumer, 200)
    assert tx.events == [
        ledger.EnergyConsumed(
            unit=unit, consumer=consumer, seq=2, wh=200, burned=2 * 10**17, over_wh=0
        )
    ]
    s = ledger.session(consumer, unit)
    assert (s.escrow, s.reserved_wh) == (3 * 10**17, 300)
    assert_ledger_conserved(ledger, [unit, unit2], sessions)
    # The last 300 Wh use the reserve up: the session ends, nothing left to refund.
    tx = consumed(ledger, unit, consumer, 300)
    assert [e.event_name for e in tx.events] == ["SessionClosed", "EnergyConsumed"]
    assert not ledger.session(consumer, unit).open
    assert ledger.unit_info(unit).available_wh == 1500
    assert ledger.network_energy_wh() == 1500
    assert ledger.imbalance() == 0
    assert_ledger_conserved(ledger, [unit, unit2], sessions)


def test_loss_then_spec_overshoot_example(ledger, deployer, unit, unit2, producer, consumer):
    # C = 0.2 so that the SPEC's example holds: D = 0.2 kWh -> R = 0.2 * 0.2 = 0.04.
    set_c(ledger, deployer, WAD // 5)
    produced(ledger, unit, producer, 20_000)  # 20 ENT minted, book 20,000 Wh
    tx = actual(ledger, unit, 19_800)  # the battery really holds 19.8 kWh: 0.2 kWh lost
    assert ledger.imbalance() == 2 * 10**17
    assert ledger.cost() == 4 * 10**16
    assert ledger.CostChanged(imbalance=2 * 10**17, cost=4 * 10**16) in tx.events
    assert ledger.network_energy_wh() == 19_800
    # A session for 8 kWh at burn rate 1.04 needs 8.32 ENT: reserve 8.32 / 1.04 = 8,000 Wh.
    ledger.transfer(consumer, 832 * 10**16, sender=producer)
    ledger.start_session(unit, 832 * 10**16, sender=consumer)
    assert ledger.session(consumer, unit).reserved_wh == 8000
    sessions = [(consumer, unit)]
    assert_ledger_conserved(ledger, [unit, unit2], sessions)
    # Consuming 8 kWh burns 5 * 1.04 + 3 * 1.00 = 8.2 ENT; D reaches 0 and R resets.
    tx = consumed(ledger, unit, consumer, 8000)
    consumed_event = [e for e in tx.events if e.event_name == "EnergyConsumed"][0]
    assert consumed_event.burned == 82 * 10**17
    assert ledger.imbalance() == 0
    assert ledger.cost() == 0
    # The session's reserve is used up: the rest of the escrow, 0.12 ENT, comes back.
    assert ledger.balanceOf(consumer) == 12 * 10**16
    assert ledger.network_energy_wh() == 11_800
    assert_ledger_conserved(ledger, [unit, unit2], sessions)


def test_recovery_by_minting(ledger, deployer, unit, unit2, producer, unit_owner):
    set_c(ledger, deployer, WAD // 5)
    produced(ledger, unit, producer, 10_000)
    actual(ledger, unit, 9_800)  # D = 0.2 kWh, R = 0.04
    # 1 kWh mints 1 - 0.04 = 0.96 ENT (0.192 to the owner, 0.768 to the producer); D -> 0.16.
    before = ledger.balanceOf(producer)
    produced(ledger, unit, producer, 1000)
    assert ledger.balanceOf(producer) - before == 768 * 10**15
    assert ledger.imbalance() == 16 * 10**16
    assert ledger.cost() == 4 * 10**16  # fixed while |D| shrinks
    # 5 kWh would cost 0.2, but only 0.16 is left: 5 - 0.16 = 4.84 ENT; D = 0, R = 0.
    before = ledger.totalSupply()
    produced(ledger, unit, producer, 5000)
    assert ledger.totalSupply() - before == 484 * 10**16
    assert (ledger.imbalance(), ledger.cost()) == (0, 0)
    # Back at equilibrium: 1 kWh mints 1 ENT again.
    before = ledger.totalSupply()
    produced(ledger, unit, producer, 1000)
    assert ledger.totalSupply() - before == KWH
    assert_ledger_conserved(ledger, [unit, unit2])


def test_surplus_mirror(ledger, deployer, unit, unit2, producer, consumer):
    set_c(ledger, deployer, WAD // 5)
    produced(ledger, unit, producer, 10_000)
    actual(ledger, unit, 10_500)  # 0.5 kWh more than booked: D = -0.5, R = 0.5 * 0.2 = 0.1
    assert ledger.imbalance() == -5 * 10**17
    assert ledger.cost() == 10**17
    # Minting 1 kWh gives 1 + 0.1 = 1.1 ENT; D -> -0.4.
    before = ledger.totalSupply()
    produced(ledger, unit, producer, 1000)
    assert ledger.totalSupply() - before == 11 * 10**17
    assert ledger.imbalance() == -4 * 10**17
    # Burning for 1 kWh takes 1 - 0.1 = 0.9 ENT; D -> -0.3. The reserve for 1.8 ENT is
    # priced at 1 + r_burn (SPEC section 3): 1.8 / 1.1 = 1,636 Wh, so the escrow pays for it
    # even once D has reached 0 and burning is 1:1 or dearer (issue 9, finding 4).
    ledger.transfer(consumer, 18 * 10**17, sender=producer)
    ledger.start_session(unit, 18 * 10**17, sender=consumer)
    assert ledger.session(consumer, unit).reserved_wh == 1636
    tx = consumed(ledger, unit, consumer, 1000)
    assert tx.events[-1].burned == 9 * 10**17
    assert ledger.imbalance() == -3 * 10**17
    assert ledger.cost() == 10**17
    assert_ledger_conserved(ledger, [unit, unit2], [(consumer, unit)])


def test_over_consumption_grows_d_and_ends_session(ledger, unit, unit2, producer, consumer):
    produced(ledger, unit, producer, 1000)
    ledger.transfer(consumer, 10**17, sender=producer)
    ledger.start_session(unit, 10**17, sender=consumer)  # reserves 100 Wh
    # 150 Wh drawn: 100 from the reserve (0.1 ENT burned), 50 Wh over-consumed with no burn.
    tx = consumed(ledger, unit, consumer, 150)
    ev = tx.events[-2]
    assert (ev.burned, ev.over_wh) == (10**17, 50)
    assert tx.events[-1] == ledger.OverConsumed(unit=unit, consumer=consumer, seq=2, wh=50)
    # D = 0.05 kWh, R = 0.05 * 0.05 = 0.0025.
    assert ledger.imbalance() == 50 * WH
    assert ledger.cost() == 25 * 10**14
    assert not ledger.session(consumer, unit).open
    assert ledger.network_energy_wh() == 850
    assert_ledger_conserved(ledger, [unit, unit2], [(consumer, unit)])


def test_consumption_without_session_is_over_consumption(ledger, unit, unit2, producer, consumer):
    produced(ledger, unit, producer, 1000)
    tx = consumed(ledger, unit, consumer, 100)
    # Physics cannot be refused, but it is visible: its own event with the consumer and Wh.
    assert tx.events == [
        ledger.CostChanged(imbalance=100 * WH, cost=100 * WH * (WAD // 20) // WAD),
        ledger.EnergyConsumed(unit=unit, consumer=consumer, seq=2, wh=100, burned=0, over_wh=100),
        ledger.OverConsumed(unit=unit, consumer=consumer, seq=2, wh=100),
    ]
    assert ledger.imbalance() == 100 * WH
    assert_ledger_conserved(ledger, [unit, unit2])


def test_session_expiry_and_close_by_anyone(
    ledger, unit, unit2, producer, consumer, attacker, chain
):
    produced(ledger, unit, producer, 1000)
    ledger.transfer(consumer, 3 * 10**17, sender=producer)
    ledger.start_session(unit, 3 * 10**17, sender=consumer)
    with ape.reverts("ledger: session not expired"):
        ledger.close_session(consumer, unit, sender=attacker)
    chain.pending_timestamp += 7201
    # Expired, but reports may still arrive for it during the grace (900 s by default).
    with ape.reverts("ledger: session in grace"):
        ledger.close_session(consumer, unit, sender=attacker)
    chain.pending_timestamp += 900
    tx = ledger.close_session(consumer, unit, sender=attacker)
    assert tx.events == [
        ledger.Transfer(sender=ZERO, receiver=consumer, value=3 * 10**17),
        ledger.SessionClosed(consumer=consumer, unit=unit, refunded=3 * 10**17, released_wh=300),
    ]
    assert ledger.balanceOf(consumer) == 3 * 10**17
    assert ledger.unit_info(unit).available_wh == 1000
    with ape.reverts("ledger: no session"):
        ledger.close_session(consumer, unit, sender=attacker)
    assert_ledger_conserved(ledger, [unit, unit2], [(consumer, unit)])


def test_consumer_closes_own_session_early(ledger, unit, unit2, producer, consumer, chain):
    produced(ledger, unit, producer, 1000)
    ledger.transfer(consumer, 3 * 10**17, sender=producer)
    ledger.start_session(unit, 3 * 10**17, sender=consumer)
    consumed(ledger, unit, consumer, 100)
    tx = ledger.close_session(consumer, unit, sender=consumer)
    assert tx.events == [
        ledger.SessionEnded(consumer=consumer, unit=unit, grace_ends_at=tx.timestamp + 900)
    ]
    # The refund waits for the grace; then anyone (here the consumer) settles it.
    assert ledger.balanceOf(consumer) == 0
    chain.pending_timestamp += 900
    ledger.close_session(consumer, unit, sender=consumer)
    assert ledger.balanceOf(consumer) == 2 * 10**17
    assert_ledger_conserved(ledger, [unit, unit2], [(consumer, unit)])


def test_batch_applies_in_order(ledger, unit, unit2, producer, consumer, unit_owner):
    def pack(kind, wh, account=ZERO):
        return (kind << 248) | (wh << 160) | int(str(account), 16)

    readings = [
        pack(0, 1000, producer),
        pack(0, 500, producer),
        pack(1, 200, consumer),
        pack(2, 1200),
    ]
    tx = ledger.report_batch(1, readings, sender=unit)
    # One Transfer per run of one producer and one for the owner's fees of the whole batch.
    assert tx.events == [
        ledger.EnergyProduced(unit=unit, producer=producer, seq=1, wh=1000, minted=10**18),
        ledger.EnergyProduced(unit=unit, producer=producer, seq=2, wh=500, minted=5 * 10**17),
        ledger.CostChanged(imbalance=200 * WH, cost=200 * WH * (WAD // 20) // WAD),
        ledger.EnergyConsumed(unit=unit, consumer=consumer, seq=3, wh=200, burned=0, over_wh=200),
        ledger.OverConsumed(unit=unit, consumer=consumer, seq=3, wh=200),
        ledger.CostChanged(imbalance=300 * WH, cost=300 * WH * (WAD // 20) // WAD),
        ledger.ActualEnergyReported(
            unit=unit, seq=4, wh=1200, book_before_wh=1300, book_after_wh=1200
        ),
        ledger.Transfer(sender=ZERO, receiver=unit_owner, value=3 * 10**17),
        ledger.Transfer(sender=ZERO, receiver=producer, value=12 * 10**17),
    ]
    assert ledger.balanceOf(producer) == 12 * 10**17
    assert ledger.balanceOf(unit_owner) == 3 * 10**17
    assert ledger.last_seq(unit) == 4
    # 1,500 Wh in, 200 Wh over-consumed (no session), measured 1,200: book 1,300 -> 1,200.
    assert ledger.network_energy_wh() == 1200
    assert ledger.imbalance() == (1500 - 1200) * WH
    with ape.reverts("ledger: bad sequence"):
        ledger.report_batch(4, readings, sender=unit)
    with ape.reverts("ledger: bad reading kind"):
        ledger.report_batch(5, [pack(3, 1)], sender=unit)
    with ape.reverts("ledger: empty batch"):
        ledger.report_batch(5, [], sender=unit)
    assert_ledger_conserved(ledger, [unit, unit2])


# --- reverts ---------------------------------------------------------------------------------


def test_batch_with_alternating_producers_credits_each(
    ledger, unit, unit2, producer, consumer, unit_owner
):
    def pack(wh, account):
        return (wh << 160) | int(str(account), 16)

    readings = [pack(1000, producer), pack(1000, consumer), pack(1000, producer)]
    tx = ledger.report_batch(1, readings, sender=unit)
    transfers = [e for e in tx.events if e.event_name == "Transfer"]
    assert transfers == [
        ledger.Transfer(sender=ZERO, receiver=producer, value=8 * 10**17),
        ledger.Transfer(sender=ZERO, receiver=consumer, value=8 * 10**17),
        ledger.Transfer(sender=ZERO, receiver=unit_owner, value=6 * 10**17),
        ledger.Transfer(sender=ZERO, receiver=producer, value=8 * 10**17),
    ]
    assert ledger.balanceOf(producer) == 16 * 10**17
    assert ledger.balanceOf(consumer) == 8 * 10**17
    assert_ledger_conserved(ledger, [unit, unit2])


def test_bad_sequence_is_rejected_never_applied_twice(ledger, unit, unit2, producer):
    ledger.energy_produced(producer, 1000, 1, sender=unit)
    supply = ledger.totalSupply()
    for seq in (1, 0, 3):
        with ape.reverts("ledger: bad sequence"):
            ledger.energy_produced(producer, 1000, seq, sender=unit)
        with ape.reverts("ledger: bad sequence"):
            ledger.report_actual_energy(1000, seq, sender=unit)
    assert ledger.totalSupply() == supply
    assert ledger.last_seq(unit) == 1
    assert_ledger_conserved(ledger, [unit, unit2])


@pytest.mark.parametrize("role", ["producer", "consumer", "attacker", "deployer"])
def test_reports_only_by_active_units(ledger, role, request):
    caller = request.getfixturevalue(role)
    with ape.reverts("ledger: unit not active"):
        ledger.energy_produced(caller, 1000, 1, sender=caller)
    with ape.reverts("ledger: unit not active"):
        ledger.energy_consumed(caller, 1000, 1, sender=caller)
    with ape.reverts("ledger: unit not active"):
        ledger.report_actual_energy(1000, 1, sender=caller)
    with ape.reverts("ledger: unit not active"):
        ledger.report_batch(1, [1000 << 160], sender=caller)


def test_bad_report_input(ledger, unit, producer):
    with ape.reverts("ledger: zero energy"):
        ledger.energy_produced(producer, 0, 1, sender=unit)
    with ape.reverts("ledger: zero producer"):
        ledger.energy_produced(ZERO, 10, 1, sender=unit)
    with ape.reverts("ledger: zero energy"):
        ledger.energy_consumed(producer, 0, 1, sender=unit)
    # A report above the unit's maximum (its battery's capacity) is refused; 2**64 Wh would
    # otherwise fill the network's energy counter and stall every other unit (finding 12).
    with ape.reverts("ledger: report above unit maximum"):
        ledger.energy_produced(producer, 2**64, 1, sender=unit)


@pytest.mark.parametrize("role", ["unit", "unit_owner", "producer", "consumer", "attacker"])
def test_governance_only(ledger, role, request, unit):
    caller = request.getfixturevalue(role)
    with ape.reverts("ownable: caller is not the owner"):
        ledger.register_storage_unit(caller, caller, sender=caller)
    with ape.reverts("ownable: caller is not the owner"):
        ledger.remove_storage_unit(unit, sender=caller)
    with ape.reverts("ownable: caller is not the owner"):
        ledger.set_parameters(0, 0, 1, 0, 7200, sender=caller)
    with ape.reverts("ownable: caller is not the owner"):
        ledger.set_session_grace(900, sender=caller)
    with ape.reverts("ownable: caller is not the owner"):
        ledger.set_unit_max_report(unit, 10**6, sender=caller)
    with ape.reverts("ownable: caller is not the owner"):
        ledger.transfer_ownership(caller, sender=caller)


def test_parameters_out_of_range(ledger, deployer):
    ok = (WAD // 2, WAD // 2, WAD // 20, WAD // 5, 7200)
    cases = [
        (0, WAD, "ledger: M out of range"),
        (1, WAD, "ledger: B out of range"),
        (2, 0, "ledger: C out of range"),
        (2, WAD, "ledger: C out of range"),
        (3, WAD, "ledger: F out of range"),
        (4, 59, "ledger: H out of range"),
        (4, 30 * 86400 + 1, "ledger: H out of range"),
    ]
    for index, value, reason in cases:
        args = list(ok)
        args[index] = value
        with ape.reverts(reason):
            ledger.set_parameters(*args, sender=deployer)
    tx = ledger.set_parameters(0, 0, 1, 0, 60, sender=deployer)
    assert tx.events == [
        ledger.ParametersSet(
            max_mint_cost=0, max_burn_cost=0, recovery_share=1, storage_fee=0, session_lifetime=60
        )
    ]


def test_session_reverts(ledger, unit, producer, consumer, attacker):
    produced(ledger, unit, producer, 5000)
    ledger.transfer(consumer, 2 * 10**18, sender=producer)
    with ape.reverts("ledger: zero amount"):
        ledger.start_session(unit, 0, sender=consumer)
    with ape.reverts("ledger: unit not active"):
        ledger.start_session(attacker, 10**17, sender=consumer)
    with ape.reverts("ledger: amount below 1 Wh"):
        ledger.start_session(unit, WH - 1, sender=consumer)
    with ape.reverts("ledger: not enough energy available"):
        ledger.start_session(unit, 5001 * WH, sender=consumer)
    with ape.reverts("erc20: burn amount exceeds balance"):
        ledger.start_session(unit, 10**17, sender=attacker)
    ledger.start_session(unit, 10**17, sender=consumer)
    with ape.reverts("ledger: session open"):
        ledger.start_session(unit, 10**17, sender=consumer)


def test_remove_unit_grows_d(ledger, deployer, unit, unit2, producer):
    produced(ledger, unit, producer, 1000)
    produced(ledger, unit2, producer, 500)
    tx = ledger.remove_storage_unit(unit2, sender=deployer)
    assert ledger.UnitRemoved(unit=unit2, energy_wh=500) in tx.events
    assert ledger.network_energy_wh() == 1000
    assert ledger.imbalance() == 500 * WH
    assert ledger.cost() == 500 * WH * (WAD // 20) // WAD
    with ape.reverts("ledger: unit not active"):
        ledger.energy_produced(producer, 1, 2, sender=unit2)
    with ape.reverts("ledger: unit not active"):
        ledger.remove_storage_unit(unit2, sender=deployer)
    # Re-registered, it keeps its sequence number: an old report cannot be replayed.
    ledger.register_storage_unit(unit2, deployer, sender=deployer)
    with ape.reverts("ledger: bad sequence"):
        ledger.energy_produced(producer, 1, 1, sender=unit2)
    with ape.reverts("ledger: unit already active"):
        ledger.register_storage_unit(unit2, deployer, sender=deployer)
    assert_ledger_conserved(ledger, [unit, unit2])


def test_not_exported_privileges_are_absent(ledger):
    for name in ("mint", "set_minter", "is_minter", "burn", "burn_from", "renounce_ownership"):
        assert not hasattr(ledger, name), name
