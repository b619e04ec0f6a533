"""A simulated meter (the default driver): PV-like production, household-like load, or a battery.

Power is piecewise constant over `step_s` of simulated time and derived from a seeded hash, so
a meter's counters are a pure function of (options, simulated time): two processes, or a
process before and after a restart, see the same counters at the same simulated time. The
simulated clock runs `compression` times faster than the wall clock from an anchor kept in the
state directory, so a whole day can pass in a minute (`compression = 1440`).
"""

from __future__ import annotations

import json
import math
import os
import time
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from oracle.drivers.base import DriverContext, DriverOptions, MeterDriver, Reading

_MASK64 = (1 << 64) - 1


def _unit_random(seed: int, index: int) -> float:
    """A deterministic uniform number in [0, 1) for (seed, index) (splitmix64)."""
    z = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-(((hour - centre) / width) ** 2))


class SimulatedOptions(DriverOptions):
    profile: Literal["pv", "household", "battery"] = "pv"
    # Peak power of the profile (never exceeded): PV peak, household peak, battery charge rate.
    peak_w: float = Field(4000.0, gt=0)
    # Household base load; inverter standby for PV.
    base_w: float = Field(250.0, ge=0)
    capacity_wh: int = Field(10_000, gt=0)
    seed: int = 1
    compression: float = Field(1.0, gt=0)
    start: datetime = datetime(2024, 6, 21, tzinfo=UTC)
    step_s: float = Field(60.0, gt=0)


class SimulatedMeter(MeterDriver):
    Options = SimulatedOptions
    options: SimulatedOptions

    def __init__(self, options: SimulatedOptions, context: DriverContext):
        super().__init__(options, context)
        start = options.start if options.start.tzinfo else options.start.replace(tzinfo=UTC)
        self._start_epoch = start.timestamp()
        self._wall_anchor = self._load_anchor()
        # Running integral (Wh) over whole steps [0, n): advanced forward only.
        self._steps_done = 0
        self._import_acc = 0.0
        self._export_acc = 0.0

    # -- the clock ---------------------------------------------------------------------------

    def _fingerprint(self) -> str:
        return self.options.model_dump_json()

    def _load_anchor(self) -> float:
        """The wall time at which simulated time was `start`, persisted so restarts continue."""
        state_dir = self.context.state_dir
        if state_dir is None:
            return time.time()
        path = state_dir / f"sim-{self.context.meter}.json"
        try:
            saved = json.loads(path.read_text())
            if saved.get("fingerprint") == self._fingerprint():
                return float(saved["wall_anchor"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        anchor = time.time()
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"wall_anchor": anchor, "fingerprint": self._fingerprint()}))
        os.replace(tmp, path)
        return anchor

    def sim_seconds(self, wall: float | None = None) -> float:
        """Simulated seconds since `start` at wall time `wall` (now by default)."""
        wall = time.time() if wall is None else wall
        return max(0.0, (wall - self._wall_anchor) * self.options.compression)

    # -- the physics -------------------------------------------------------------------------

    def power_w(self, step: int) -> tuple[float, float]:
        """(import W, export W) during simulated step `step`."""
        o = self.options
        t = (step + 0.5) * o.step_s
        hour = ((self._start_epoch + t) % 86_400) / 3600
        noise = _unit_random(o.seed, step)
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 12)) if 6 < hour < 18 else 0.0
        if o.profile == "pv":
            # Clouds change every 15 simulated minutes.
            cloud = 0.55 + 0.45 * _unit_random(o.seed + 7, int(t // 900))
            return (0.0 if sun else min(o.base_w, 15.0), o.peak_w * sun * cloud)
        if o.profile == "household":
            shape = 0.35 * _bump(hour, 7.5, 1.0) + _bump(hour, 19.5, 1.8)
            load = o.base_w * (0.8 + 0.4 * noise) + (o.peak_w - o.base_w) * shape
            return (min(o.peak_w, load), 0.0)
        # Battery: charges from the midday surplus, discharges in the evening.
        charge = o.peak_w * max(0.0, math.sin(math.pi * (hour - 9) / 7)) if 9 < hour < 16 else 0
        discharge = o.peak_w * 0.8 * (_bump(hour, 20.0, 2.0) + 0.15 * _bump(hour, 7.0, 1.0))
        return (charge * (0.9 + 0.1 * noise), discharge * (0.9 + 0.1 * noise))

    def energy_wh(self, sim_t: float) -> tuple[float, float]:
        """Exact (import Wh, export Wh) integrated from `start` to simulated time `sim_t`."""
        step_s = self.options.step_s
        n = int(sim_t // step_s)
        if n < self._steps_done:
            self._steps_done, self._import_acc, self._export_acc = 0, 0.0, 0.0
        while self._steps_done < n:
            p_in, p_out = self.power_w(self._steps_done)
            self._import_acc += p_in * step_s / 3600
            self._export_acc += p_out * step_s / 3600
            self._steps_done += 1
        p_in, p_out = self.power_w(n)
        part = (sim_t - n * step_s) / 3600
        return self._import_acc + p_in * part, self._export_acc + p_out * part

    def counters_at(self, sim_t: float) -> Reading:
        """The reading this meter gives at simulated time `sim_t`."""
        e_in, e_out = self.energy_wh(sim_t)
        import_wh, export_wh = math.floor(e_in), math.floor(e_out)
        stored = None
        if self.options.profile == "battery":
            cap = self.options.capacity_wh
            stored = int(min(cap, max(0, cap // 5 + math.floor(0.95 * e_in) - export_wh)))
        return Reading(
            ts=self._start_epoch + sim_t,
            import_wh=import_wh,
            export_wh=export_wh,
            stored_wh=stored,
            monotonic=sim_t,
            clock=f"sim:{self.context.meter}:{self._wall_anchor:.6f}",
        )

    def read(self) -> Reading:
        return self.counters_at(self.sim_seconds())


DRIVER = SimulatedMeter
