"""Counters to deltas: resets, rollover, implausible jumps, clocks going backwards."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.accounting import (
    ActualState,
    Baseline,
    Limits,
    account,
    pack_reading,
    plan_reports,
)
from oracle.config import ChannelConfig
from oracle.drivers import Reading

PRODUCER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CONSUMER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
BOOT = "boot:1"


def r(t: float, imp: int, exp: int = 0, *, mono: float | None = None, clock=BOOT, stored=None):
    return Reading(
        ts=t,
        import_wh=imp,
        export_wh=exp,
        stored_wh=stored,
        monotonic=t if mono is None else mono,
        clock=clock,
    )


LIMITS = Limits(rated_power_w=3600)  # 1 Wh per second, +10 %


def test_first_reading_is_only_a_baseline():
    delta = account(None, r(100, 5000, 70), LIMITS)
    assert (delta.import_wh, delta.export_wh, delta.anomalies) == (0, 0, ())
    assert delta.baseline == Baseline(100, 5000, 70, 100, BOOT)


def test_delta_is_the_growth_of_each_counter():
    delta = account(Baseline.of(r(0, 1000, 50)), r(60, 1030, 55), LIMITS)
    assert (delta.import_wh, delta.export_wh, delta.elapsed_s) == (30, 5, 60)
    assert delta.anomalies == ()


def test_counter_going_back_is_a_reset_rebaselined_and_never_negative():
    base = Baseline.of(r(0, 1000, 500))
    delta = account(base, r(60, 3, 510), LIMITS)
    assert (delta.import_wh, delta.export_wh) == (0, 10)
    [anomaly] = delta.anomalies
    assert anomaly.kind == "reset" and anomaly.counter == "import"
    assert "went back from 1000 to 3 Wh" in anomaly.detail
    # The next delta counts from the reset value.
    assert account(delta.baseline, r(120, 20, 510), LIMITS).import_wh == 17


def test_rollover_wraps_when_declared_and_plausible():
    limits = Limits(rated_power_w=3600, rollover_wh=1_000_000)
    delta = account(Baseline.of(r(0, 999_990)), r(60, 25), limits)
    assert delta.import_wh == 35
    assert [a.kind for a in delta.anomalies] == ["rollover"]
    # A wrap that would need more than the rated power is a reset instead.
    delta = account(Baseline.of(r(0, 500_000)), r(60, 25), limits)
    assert delta.import_wh == 0 and [a.kind for a in delta.anomalies] == ["reset"]
    # Without a declared modulus, going back is always a reset.
    assert account(Baseline.of(r(0, 999_990)), r(60, 25), LIMITS).import_wh == 0


def test_implausible_jump_is_held_not_dropped():
    base = Baseline.of(r(0, 1000))
    # 60 s at 3600 W is 60 Wh; +10 % margin and 1 Wh of counter rounding: 67 Wh allowed.
    assert account(base, r(60, 1067), LIMITS).import_wh == 67
    delta = account(base, r(60, 1068), LIMITS)
    assert delta.import_wh == 0
    [anomaly] = delta.anomalies
    assert anomaly.kind == "implausible" and "68 Wh" in anomaly.detail
    assert delta.baseline == base  # held: the energy is reported once time allows
    assert account(delta.baseline, r(120, 1100), LIMITS).import_wh == 100


def test_a_spike_is_skipped_without_losing_the_next_interval():
    base = Baseline.of(r(0, 2125, 10))
    spike = account(base, r(1, 5 * 10**15, 11), LIMITS)
    assert (spike.import_wh, spike.export_wh, spike.baseline) == (0, 0, base)
    after = account(spike.baseline, r(2, 2127, 12), LIMITS)
    assert (after.import_wh, after.export_wh) == (2, 2)


def test_a_small_step_back_is_a_glitch_not_a_reset():
    """2125 -> 2095 -> 2130 is 5 Wh, not 35 (finding 2)."""
    base = Baseline.of(r(0, 2125))
    glitch = account(base, r(1, 2095), LIMITS)
    assert glitch.import_wh == 0 and [a.kind for a in glitch.anomalies] == ["glitch"]
    assert glitch.baseline == base
    assert account(glitch.baseline, r(6, 2130), LIMITS).import_wh == 5


def test_wall_clock_stepping_back_uses_the_monotonic_clock():
    """NTP steps the wall clock back an hour; within one boot the monotonic clock decides."""
    base = Baseline.of(r(10_000, 1000, mono=50))
    delta = account(base, r(6_400 + 60, 1050, mono=110), LIMITS)
    assert (delta.import_wh, delta.elapsed_s) == (50, 60)
    assert [a.kind for a in delta.anomalies] == ["clock_backwards"]


def test_wall_clock_stepping_forward_does_not_widen_the_allowance():
    base = Baseline.of(r(0, 1000, mono=50))
    delta = account(base, r(86_400, 5000, mono=110), LIMITS)  # a day on the wall, 60 s real
    assert delta.import_wh == 0 and delta.anomalies[0].kind == "implausible"


def test_clock_backwards_across_a_reboot_holds_the_energy_until_the_clock_is_right():
    base = Baseline.of(r(10_000, 1000, mono=5_000, clock="boot:old"))
    delta = account(base, r(9_000, 1500, mono=30, clock="boot:new"), LIMITS)
    assert delta.import_wh == 0 and delta.elapsed_s == 0
    assert {a.kind for a in delta.anomalies} == {"clock_backwards", "implausible"}
    assert delta.baseline == base  # held, not re-baselined (finding 1)
    # NTP sets the clock right: the 500 Wh of the gap are reported, none lost.
    later = account(delta.baseline, r(11_000, 1500, mono=90, clock="boot:new"), LIMITS)
    assert later.import_wh == 500
    # A counter that did not move is fine.
    assert account(base, r(9_000, 1000, mono=30, clock="boot:new"), LIMITS).anomalies[0].kind == (
        "clock_backwards"
    )


def test_across_a_reboot_the_wall_clock_measures_the_gap():
    base = Baseline.of(r(10_000, 1000, mono=5_000, clock="boot:old"))
    delta = account(base, r(13_600, 4000, mono=20, clock="boot:new"), LIMITS)
    assert (delta.import_wh, delta.elapsed_s) == (3000, 3600)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.5, 120),  # seconds between readings
            st.integers(0, 130),  # Wh consumed in that time (sometimes implausibly much)
            st.booleans(),  # the meter is reset before this reading
        ),
        min_size=1,
        max_size=40,
    )
)
def test_reported_energy_never_exceeds_metered_energy(steps):
    """Whatever the meter does, the sum of deltas is at most the energy that flowed, and
    exactly that energy when nothing odd happened."""
    limits = Limits(rated_power_w=3600, margin=0.1)
    t, counter, flowed, reported, odd = 0.0, 10_000, 0, 0, False
    baseline = account(None, r(t, counter), limits).baseline
    for dt, wh, reset in steps:
        t += dt
        flowed += wh
        counter = wh if reset else counter + wh
        delta = account(baseline, r(t, counter), limits)
        assert delta.import_wh >= 0
        reported += delta.import_wh
        # A reset to a value above the old counter cannot be seen, only under-reported.
        odd |= bool(delta.anomalies) or reset
        baseline = delta.baseline
    assert reported <= flowed
    if not odd:
        assert reported == flowed


# -- channels to reports ----------------------------------------------------------------------


CHANNELS = [
    ChannelConfig(meter="inv", counter="export", kind="produced", account=PRODUCER),
    ChannelConfig(meter="inv", counter="import", kind="consumed", account=CONSUMER),
    ChannelConfig(meter="inv", counter="stored", kind="actual", min_interval_s=900),
]


def test_plan_maps_counters_to_report_kinds_in_order():
    reading = r(1000, 130, 260, stored=4000)
    delta = account(Baseline.of(r(940, 100, 200)), reading, LIMITS)
    plan = plan_reports(CHANNELS, delta, reading, {})
    assert [(p.kind, p.account, p.wh) for p in plan.reports] == [
        ("produced", PRODUCER, 60),
        ("consumed", CONSUMER, 30),
        ("actual", None, 4000),
    ]
    assert plan.actual_updates == {"inv.stored": ActualState(4000, 1000)}


def test_plan_skips_zero_deltas_and_rate_limits_actual_reports():
    reading = r(1000, 100, 200, stored=4000)
    delta = account(Baseline.of(r(940, 100, 200)), reading, LIMITS)
    recent = {"inv.stored": ActualState(3900, 500)}
    assert plan_reports(CHANNELS, delta, reading, recent).reports == []
    old = {"inv.stored": ActualState(3900, 100)}
    assert [p.kind for p in plan_reports(CHANNELS, delta, reading, old).reports] == ["actual"]


def test_plan_notes_a_meter_without_stored_energy():
    reading = r(1000, 100, 200)
    plan = plan_reports(CHANNELS, account(None, reading, LIMITS), reading, {})
    assert plan.reports == [] and plan.notes == ["inv.stored: the meter gave no stored energy"]


def test_pack_reading_layout():
    word = pack_reading("consumed", 12345, CONSUMER)
    assert word >> 248 == 1
    assert (word >> 160) & (2**88 - 1) == 12345
    assert word & (2**160 - 1) == int(CONSUMER, 16)
    assert pack_reading("actual", 7, None) == 2 << 248 | 7 << 160
    with pytest.raises(ValueError):
        pack_reading("produced", 2**88, PRODUCER)
