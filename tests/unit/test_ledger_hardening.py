"""The ledger defects of the independent review (issue 9), each with the case that showed it.

Findings 4 (free energy while D < 0), 5 (escaping the bill), 9 (ENT sent to the ledger),
10 (views), 12 (packing limits), and the two ambiguities of SPEC section 3 settled in
docs/protocol.md: R may fall when |D| grows again after shrinking, and a jump of D across
zero resets R as reaching zero does. Units: 1 Wh = 10**15 ENT base units; wads.
"""

import ape
import pytest

from tests.ledger_helpers import KWH, WAD, WH, actual, assert_ledger_conserved, consumed, produced

GRACE = 900


def set_c(ledger, deployer, c):
    p = ledger.params()
    ledger.set_parameters(
        p.max_mint_cost, p.max_burn_cost, c, p.storage_fee, p.session_lifetime, sender=deployer
    )


def book(ledger, unit):
    info = ledger.unit_info(unit)
    return info.available_wh + info.locked_wh


def fund(ledger, producer, consumer, ent):
    ledger.transfer(consumer, ent, sender=producer)


# --- finding 4: the reserve is ent / (1 + r_burn), whatever the sign of D -------------------


def test_surplus_session_cannot_consume_for_free(ledger, deployer, unit, unit2, producer, consumer):
    """The review's case: D = -1 kWh, R = 0.5, a 10 ENT session. It used to reserve
    10 / (1 - 0.5) = 20 kWh and take all of it for 10 ENT (D -> +9 kWh)."""
    set_c(ledger, deployer, WAD // 2)
    produced(ledger, unit, producer, 20_000)
    fund(ledger, producer, consumer, 10 * KWH)
    actual(ledger, unit, book(ledger, unit) + 1000)  # 1 kWh more than booked
    assert (ledger.imbalance(), ledger.cost()) == (-KWH, WAD // 2)
    ledger.start_session(unit, 10 * KWH, sender=consumer)
    # 10 / (1 + 0.5) = 6.666 kWh.
    assert ledger.session(consumer, unit).reserved_wh == 6666
    tx = consumed(ledger, unit, consumer, 6666)
    # 2 kWh at 0.5 ENT bring D to 0, the other 4.666 kWh go at 1:1: 5.666 ENT, refund 4.334.
    ev = [e for e in tx.events if e.event_name == "EnergyConsumed"][0]
    assert (ev.burned, ev.over_wh) == (5666 * WH, 0)
    assert ledger.balanceOf(consumer) == 10 * KWH - 5666 * WH
    assert (ledger.imbalance(), ledger.cost()) == (0, 0)
    assert_ledger_conserved(ledger, [unit, unit2], [(consumer, unit)])


def test_rate_rising_in_a_session_bills_only_what_the_escrow_pays(
    ledger, unit, unit2, producer, consumer
):
    """R = 0 at the start (1 ENT reserves 1,000 Wh); a loss then makes burning dearer
    (D = 0.5 kWh, R = 0.025). 1,000 Wh would cost 1.025 ENT: 975 Wh are inside the reserve
    (0.999375 ENT, each paid at 1.025 and shrinking D), the 25 Wh the escrow cannot pay are
    over-consumption, and the session ends with the 0.000625 ENT left refunded."""
    produced(ledger, unit, producer, 10_000)
    fund(ledger, producer, consumer, KWH)
    ledger.start_session(unit, KWH, sender=consumer)
    assert ledger.session(consumer, unit).reserved_wh == 1000
    actual(ledger, unit, book(ledger, unit) - 500)
    assert (ledger.imbalance(), ledger.cost()) == (500 * WH, 25 * 10**15)
    tx = consumed(ledger, unit, consumer, 1000)
    ev = [e for e in tx.events if e.event_name == "EnergyConsumed"][0]
    assert (ev.burned, ev.over_wh) == (999_375 * 10**12, 25)
    assert ledger.OverConsumed(unit=unit, consumer=consumer, seq=3, wh=25) in tx.events
    assert ledger.balanceOf(consumer) == 625 * 10**12
    assert not ledger.session(consumer, unit).open
    # In-reserve energy shrank D by 0.024375; the 25 Wh over-consumed grew it by 0.025.
    assert ledger.imbalance() == 500 * WH - 24_375 * 10**12 + 25 * WH
    assert_ledger_conserved(ledger, [unit, unit2], [(consumer, unit)])


# --- finding 5: reports within the grace are billed to the session ---------------------------


def test_closing_early_does_not_escape_the_bill(ledger, unit, unit2, producer, consumer, chain):
    produced(ledger, unit, producer, 5000)
    fund(ledger, producer, consumer, KWH)
    ledger.start_session(unit, KWH, sender=consumer)
    tx = ledger.close_session(consumer, unit, sender=consumer)
    assert tx.events == [
        ledger.SessionEnded(consumer=consumer, unit=unit, grace_ends_at=tx.timestamp + GRACE)
    ]
    s = ledger.session(consumer, unit)
    assert (s.open, s.expired, s.grace_ends_at) == (True, True, tx.timestamp + GRACE)
    assert ledger.balanceOf(consumer) == 0
    # The energy drawn just before closing is reported a period later: billed, not spread.
    tx = consumed(ledger, unit, consumer, 300)
    assert tx.events == [
        ledger.EnergyConsumed(
            unit=unit, consumer=consumer, seq=2, wh=300, burned=300 * WH, over_wh=0
        )
    ]
    assert ledger.imbalance() == 0
    with ape.reverts("ledger: session in grace"):
        ledger.close_session(consumer, unit, sender=consumer)
    with ape.reverts("ledger: session in grace"):
        ledger.start_session(unit, KWH // 2, sender=consumer)
    chain.pending_timestamp += GRACE
    tx = ledger.close_session(consumer, unit, sender=producer)  # anyone, after the grace
    assert (
        ledger.SessionClosed(consumer=consumer, unit=unit, refunded=700 * WH, released_wh=700)
        in tx.events
    )
    assert ledger.balanceOf(consumer) == 700 * WH
    assert_ledger_conserved(ledger, [unit, unit2], [(consumer, unit)])


def test_report_just_after_expiry_is_billed_then_later_ones_are_over_consumption(
    ledger, unit, unit2, producer, consumer, chain
):
    produced(ledger, unit, producer, 5000)
    fund(ledger, producer, consumer, KWH)
    ledger.start_session(unit, KWH, sender=consumer)
    chain.pending_timestamp += 7200  # mined exactly at expires_at
    tx = consumed(ledger, unit, consumer, 200)
    assert [e.event_name for e in tx.events] == ["EnergyConsumed"]
    assert tx.events[0].burned == 200 * WH
    chain.pending_timestamp += GRACE
    # Past the grace the session is settled first; this consumption had no session.
    tx = consumed(ledger, unit, consumer, 100)
    assert tx.events[0] == ledger.Transfer(
        sender="0x0000000000000000000000000000000000000000", receiver=consumer, value=800 * WH
    )
    assert ledger.OverConsumed(unit=unit, consumer=consumer, seq=3, wh=100) in tx.events
    assert ledger.imbalance() == 100 * WH
    assert_ledger_conserved(ledger, [unit, unit2], [(consumer, unit)])


def test_session_grace_is_governed(ledger, deployer):
    assert ledger.session_grace() == GRACE
    for bad in (59, 86401):
        with ape.reverts("ledger: grace out of range"):
            ledger.set_session_grace(bad, sender=deployer)
    tx = ledger.set_session_grace(60, sender=deployer)
    assert tx.events == [ledger.SessionGraceSet(grace=60)]
    assert ledger.session_grace() == 60


# --- finding 9: ENT sent to the ledger would be stranded --------------------------------------


def test_ent_cannot_be_sent_to_the_ledger(ledger, unit, producer, consumer):
    produced(ledger, unit, producer, 1000)
    with ape.reverts("ledger: transfer to the ledger"):
        ledger.transfer(ledger, WH, sender=producer)
    ledger.approve(consumer, WH, sender=producer)
    with ape.reverts("ledger: transfer to the ledger"):
        ledger.transferFrom(producer, ledger, WH, sender=consumer)
    tx = ledger.transferFrom(producer, consumer, WH, sender=consumer)
    assert tx.events == [
        ledger.Approval(owner=producer, spender=consumer, value=0),
        ledger.Transfer(sender=producer, receiver=consumer, value=WH),
    ]
    assert ledger.allowance(producer, consumer) == 0
    with ape.reverts("erc20: insufficient allowance"):
        ledger.transferFrom(producer, consumer, 1, sender=consumer)
    assert ledger.balanceOf(ledger) == 0


# --- finding 10: views a client needs -------------------------------------------------------


def test_escrow_views(ledger, unit, unit2, producer, consumer):
    produced(ledger, unit, producer, 2000)
    produced(ledger, unit2, producer, 2000)
    fund(ledger, producer, consumer, 3 * KWH // 2)
    ledger.start_session(unit, KWH, sender=consumer)
    ledger.start_session(unit2, KWH // 2, sender=consumer)
    assert ledger.total_escrow() == 3 * KWH // 2
    assert ledger.escrow_of(consumer, [unit, unit2]) == 3 * KWH // 2
    assert ledger.escrow_of(consumer, [unit, unit, unit]) == KWH  # counted once
    assert ledger.escrow_of(producer, [unit, unit2]) == 0
    # The thesis's "ENT supply" is totalSupply + escrow.
    assert ledger.totalSupply() + ledger.total_escrow() == 4 * KWH


def test_rates_view_in_each_regime(ledger, deployer, unit, producer):
    assert tuple(ledger.rates()) == (WAD, WAD, 0, 0)
    set_c(ledger, deployer, 9 * WAD // 10)
    produced(ledger, unit, producer, 10_000)
    actual(ledger, unit, 9000)  # D = +1 kWh, R = 0.9, capped at M = B = 0.5
    assert ledger.cost() == 9 * WAD // 10
    assert tuple(ledger.rates()) == (WAD // 2, 3 * WAD // 2, WAD // 2, WAD // 2)
    actual(ledger, unit, 11_000)  # D = -1 kWh: the mirror image
    assert ledger.imbalance() == -KWH
    assert tuple(ledger.rates()) == (3 * WAD // 2, WAD // 2, -WAD // 2, -WAD // 2)


# --- finding 12: one unit cannot fill the network's energy counter ---------------------------


def test_reports_are_bounded_by_the_unit_maximum(ledger, deployer, unit, unit2, producer):
    assert ledger.unit_info(unit).max_report_wh == ledger.DEFAULT_MAX_REPORT_WH() == 10**8
    tx = ledger.set_unit_max_report(unit, 5000, sender=deployer)
    assert tx.events == [ledger.UnitMaxReportSet(unit=unit, max_report_wh=5000)]
    with ape.reverts("ledger: report above unit maximum"):
        ledger.energy_produced(producer, 5001, 1, sender=unit)
    with ape.reverts("ledger: report above unit maximum"):
        ledger.energy_consumed(producer, 5001, 1, sender=unit)
    with ape.reverts("ledger: report above unit maximum"):
        ledger.report_actual_energy(5001, 1, sender=unit)
    with ape.reverts("ledger: report above unit maximum"):
        ledger.report_batch(1, [(5001 << 160) | int(producer.address, 16)], sender=unit)
    produced(ledger, unit, producer, 5000)
    # The other unit is not limited by it, and neither can fill KWH alone: at most 2**40 Wh
    # a report means 2**24 reports to reach 2**64.
    produced(ledger, unit2, producer, 10**8)
    for bad in (0, 2**40 + 1):
        with ape.reverts("ledger: max report out of range"):
            ledger.set_unit_max_report(unit, bad, sender=deployer)
    with ape.reverts("ledger: unknown unit"):
        ledger.set_unit_max_report(producer, 10, sender=deployer)
    # The maximum survives removal and re-registration.
    ledger.remove_storage_unit(unit, sender=deployer)
    ledger.register_storage_unit(unit, deployer, sender=deployer)
    assert ledger.unit_info(unit).max_report_wh == 5000


# --- the two ambiguities of SPEC section 3 ---------------------------------------------------


def test_cost_may_fall_when_the_gap_grows_again(ledger, deployer, unit, unit2, producer):
    """R is recomputed as |D| * C whenever |D| grows, so after shrinking, a new growth can
    set a lower R than the one in force (docs/protocol.md)."""
    set_c(ledger, deployer, WAD // 2)
    produced(ledger, unit, producer, 10_000)
    actual(ledger, unit, 9000)  # D = +1 kWh, R = 0.5
    assert ledger.cost() == WAD // 2
    produced(ledger, unit, producer, 1000)  # mints 0.5 ENT: D = 0.5, R stays 0.5
    assert (ledger.imbalance(), ledger.cost()) == (KWH // 2, WAD // 2)
    tx = actual(ledger, unit, book(ledger, unit) - 100)  # |D| grows to 0.6: R = 0.3
    assert ledger.CostChanged(imbalance=6 * KWH // 10, cost=3 * WAD // 10) in tx.events
    assert ledger.cost() == 3 * WAD // 10
    assert_ledger_conserved(ledger, [unit, unit2])


def test_a_jump_across_zero_resets_the_cost(ledger, deployer, unit, unit2, producer):
    """D = +0.5 kWh (R = 0.25); a report finds 0.8 kWh more than booked: D = -0.3. Crossing
    zero is reaching equilibrium, so R restarts from the new gap: 0.3 * 0.5 = 0.15 (it would
    have stayed 0.25 had |D| merely shrunk)."""
    set_c(ledger, deployer, WAD // 2)
    produced(ledger, unit, producer, 10_000)
    actual(ledger, unit, 9500)
    assert (ledger.imbalance(), ledger.cost()) == (KWH // 2, WAD // 4)
    tx = actual(ledger, unit, 10_300)
    assert ledger.CostChanged(imbalance=-3 * KWH // 10, cost=15 * WAD // 100) in tx.events
    assert (ledger.imbalance(), ledger.cost()) == (-3 * KWH // 10, 15 * WAD // 100)
    assert_ledger_conserved(ledger, [unit, unit2])


@pytest.mark.parametrize("role", ["unit", "producer", "consumer"])
def test_settling_is_open_to_anyone_only_after_the_grace(
    ledger, unit, producer, consumer, role, request, chain
):
    caller = request.getfixturevalue(role)
    produced(ledger, unit, producer, 5000)
    fund(ledger, producer, consumer, KWH)
    ledger.start_session(unit, KWH, sender=consumer)
    if caller != consumer:
        with ape.reverts("ledger: session not expired"):
            ledger.close_session(consumer, unit, sender=caller)
    chain.pending_timestamp += 7200
    with ape.reverts("ledger: session in grace"):
        ledger.close_session(consumer, unit, sender=caller)
    chain.pending_timestamp += GRACE
    ledger.close_session(consumer, unit, sender=caller)
    assert ledger.balanceOf(consumer) == KWH
