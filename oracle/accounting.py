"""From cumulative counters to energy deltas, and from deltas to ledger reports. Pure functions.

Rules (SPEC §11):
- a delta is the counter's growth since the previous accepted reading, never negative;
- a counter that goes back to near zero (at most half its old value, or no more than the
  rated power allows since the last reading) is a reset: logged, re-baselined, nothing
  reported for that interval (unless the meter declares a rollover modulus and the wrap is
  plausible); a smaller step back is a glitch: logged, the reading is not used and the
  baseline is kept, so the recovery counts only the energy above the old counter;
- a delta above rated power x elapsed time (plus a margin) is held, never dropped: logged,
  the baseline is kept, and the energy is reported by the first later reading for which the
  time elapsed makes it plausible (a spike reading is thus skipped without losing the next
  interval, and a reboot with the clock behind reports its energy once the clock is right);
- elapsed time comes from the monotonic clock when both readings share one (the same boot, or
  the simulator's clock), so wall-clock steps (NTP on a Pi without RTC) do not matter; across
  clock domains the wall clock is used, and if it went backwards the interval counts as zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from oracle.config import ChannelConfig
from oracle.drivers import Reading

KIND_CODES = {"produced": 0, "consumed": 1, "actual": 2}


@dataclass(frozen=True)
class Baseline:
    """The previous accepted reading of a meter: what the next delta is measured from."""

    ts: float
    import_wh: int
    export_wh: int
    monotonic: float | None = None
    clock: str | None = None

    @classmethod
    def of(cls, reading: Reading) -> Baseline:
        return cls(
            ts=reading.ts,
            import_wh=reading.import_wh,
            export_wh=reading.export_wh,
            monotonic=reading.monotonic,
            clock=reading.clock,
        )


@dataclass(frozen=True)
class Limits:
    rated_power_w: float
    margin: float = 0.1
    rollover_wh: int | None = None

    def allowance_wh(self, elapsed_s: float) -> int:
        # +1: integer counters may show up to one Wh more than the exact energy in an interval.
        return math.floor(self.rated_power_w * elapsed_s / 3600 * (1 + self.margin)) + 1


@dataclass(frozen=True)
class Anomaly:
    kind: str  # reset | rollover | glitch | implausible | clock_backwards
    counter: str  # import | export | "" for the clock
    detail: str


@dataclass(frozen=True)
class Delta:
    """The accepted energy since the baseline, and the new baseline."""

    baseline: Baseline
    import_wh: int
    export_wh: int
    elapsed_s: float | None
    anomalies: tuple[Anomaly, ...] = ()


def elapsed_s(previous: Baseline, reading: Reading) -> tuple[float, list[Anomaly]]:
    wall = reading.ts - previous.ts
    same_clock = (
        previous.clock is not None
        and previous.clock == reading.clock
        and previous.monotonic is not None
        and reading.monotonic is not None
        and reading.monotonic >= previous.monotonic
    )
    if same_clock:
        anomalies = []
        if wall < 0:
            anomalies.append(
                Anomaly(
                    "clock_backwards",
                    "",
                    f"wall clock went back {-wall:.3f} s; elapsed time taken from the "
                    "monotonic clock",
                )
            )
        return reading.monotonic - previous.monotonic, anomalies
    if wall < 0:
        return 0.0, [
            Anomaly(
                "clock_backwards",
                "",
                f"clock went back {-wall:.3f} s across a restart; the interval counts as 0 s",
            )
        ]
    return wall, []


def _counter_delta(
    name: str, old: int, new: int, elapsed: float, limits: Limits
) -> tuple[int, Anomaly | None, bool]:
    """(Wh, anomaly, hold): `hold` means the reading must not become the baseline."""
    allowance = limits.allowance_wh(elapsed)
    if new >= old:
        delta = new - old
        if delta > allowance:
            return (
                0,
                Anomaly(
                    "implausible",
                    name,
                    f"{name} counter rose {delta} Wh in {elapsed:.3f} s, more than the "
                    f"{allowance} Wh a {limits.rated_power_w:g} W meter allows; held, reported "
                    "once the time elapsed makes it plausible",
                ),
                True,
            )
        return delta, None, False
    if limits.rollover_wh is not None and old < limits.rollover_wh:
        wrapped = limits.rollover_wh - old + new
        if wrapped <= allowance:
            return (
                wrapped,
                Anomaly("rollover", name, f"{name} counter rolled over from {old} to {new} Wh"),
                False,
            )
    if 2 * new <= old or new <= allowance:
        return (
            0,
            Anomaly(
                "reset",
                name,
                f"{name} counter went back from {old} to {new} Wh; treated as a reset and "
                "re-baselined",
            ),
            False,
        )
    return (
        0,
        Anomaly(
            "glitch",
            name,
            f"{name} counter stepped back from {old} to {new} Wh; a glitch: reading skipped, "
            "baseline kept",
        ),
        True,
    )


def account(previous: Baseline | None, reading: Reading, limits: Limits) -> Delta:
    """The energy between `previous` and `reading` that may be reported."""
    baseline = Baseline.of(reading)
    if previous is None:
        return Delta(baseline, 0, 0, None)
    elapsed, anomalies = elapsed_s(previous, reading)
    imported, a_import, hold_import = _counter_delta(
        "import", previous.import_wh, reading.import_wh, elapsed, limits
    )
    exported, a_export, hold_export = _counter_delta(
        "export", previous.export_wh, reading.export_wh, elapsed, limits
    )
    anomalies += [a for a in (a_import, a_export) if a is not None]
    if hold_import or hold_export:
        # Nothing of this reading is used; the energy of both counters stays measured from
        # the kept baseline and is reported by a later reading.
        return Delta(previous, 0, 0, elapsed, tuple(anomalies))
    return Delta(baseline, imported, exported, elapsed, tuple(anomalies))


@dataclass(frozen=True)
class ActualState:
    """The last actual energy reported on a channel."""

    wh: int
    ts: float


@dataclass(frozen=True)
class PlannedReport:
    channel: str
    kind: str
    account: str | None
    wh: int


@dataclass
class Plan:
    reports: list[PlannedReport] = field(default_factory=list)
    actual_updates: dict[str, ActualState] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def plan_reports(
    channels: list[ChannelConfig],
    delta: Delta,
    reading: Reading,
    actual_states: dict[str, ActualState],
) -> Plan:
    """The ledger reports one accepted reading gives, in the order they must be applied."""
    plan = Plan()
    for channel in channels:
        if channel.kind == "actual":
            if reading.stored_wh is None:
                plan.notes.append(f"{channel.name}: the meter gave no stored energy")
                continue
            last = actual_states.get(channel.name)
            if last is None or abs(reading.ts - last.ts) >= channel.min_interval_s:
                plan.reports.append(PlannedReport(channel.name, "actual", None, reading.stored_wh))
                plan.actual_updates[channel.name] = ActualState(reading.stored_wh, reading.ts)
            continue
        wh = delta.import_wh if channel.counter == "import" else delta.export_wh
        if wh > 0:
            plan.reports.append(PlannedReport(channel.name, channel.kind, channel.account, wh))
    return plan


def pack_reading(kind: str, wh: int, account: str | None) -> int:
    """One `report_batch` word: `kind << 248 | wh << 160 | account`."""
    if not 0 <= wh < 2**88:
        raise ValueError(f"{wh} Wh does not fit the ledger's 88-bit field")
    address = int(account, 16) if account else 0
    return KIND_CODES[kind] << 248 | wh << 160 | address
