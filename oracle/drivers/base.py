"""The one interface every meter driver implements: cumulative integer Wh counters plus a time.

A driver knows how to talk to one kind of meter and nothing else: no deltas, no plausibility
checks, no persistence of readings (that is `oracle.accounting` and `oracle.outbox`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from oracle.errors import MeterError


@dataclass(frozen=True)
class Reading:
    """One sample of a meter's cumulative counters.

    `import_wh` and `export_wh` are the meter's lifetime counters (they only grow, except when
    the meter is reset or rolls over). `stored_wh` is a gauge (the energy a battery holds now),
    for drivers that know it. `ts` is the wall-clock time of the sample (Unix seconds).
    `monotonic`/`clock` optionally give a monotonic time in a named clock domain; the core
    fills them from `time.monotonic()` and the boot id when a driver leaves them empty.
    """

    ts: float
    import_wh: int
    export_wh: int
    stored_wh: int | None = None
    monotonic: float | None = None
    clock: str | None = None

    def __post_init__(self) -> None:
        for name in ("import_wh", "export_wh"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise MeterError(f"{name} must be a non-negative integer, got {value!r}")
        if self.stored_wh is not None and (
            not isinstance(self.stored_wh, int) or self.stored_wh < 0
        ):
            raise MeterError(f"stored_wh must be a non-negative integer, got {self.stored_wh!r}")


class DriverOptions(BaseModel):
    """Base of each driver's `[meters.options]` table; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class DriverContext:
    """What a driver may know about its surroundings."""

    meter: str
    # Where a driver may keep its own small state (the simulator's clock anchor); None when
    # the caller wants no files written (`oracle read` without a state directory).
    state_dir: Path | None = None


class MeterDriver(ABC):
    """A meter. `read()` returns one `Reading` or raises `MeterError`; `close()` frees the port.

    Subclasses set `Options` to their pydantic options model. A driver module exposes its class
    as `DRIVER`; the module's name is the driver's name in the configuration.
    """

    Options: ClassVar[type[DriverOptions]] = DriverOptions

    def __init__(self, options: DriverOptions, context: DriverContext):
        self.options = options
        self.context = context

    @abstractmethod
    def read(self) -> Reading: ...

    def close(self) -> None:  # noqa: B027 - optional hook, most drivers hold nothing
        """Release the connection; the next `read()` reopens it."""

    def __enter__(self) -> MeterDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def finite(value: float, what: str) -> float:
    if not isinstance(value, int | float | Decimal) or not math.isfinite(value) or value < 0:
        raise MeterError(f"{what}: not a finite non-negative number: {value!r}")
    return value


def floor_wh(value: float | Decimal | str, scale: int = 1) -> int:
    """Whole Wh from a decimal counter (`scale` 1000 for kWh), rounding down.

    Exact for decimal sources (DSMR, SmartPi files, Shelly JSON): the fraction not yet counted
    stays in the cumulative counter and shows up in a later delta, so nothing drifts.
    """
    number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    finite(number, "counter")
    return int((number * scale).to_integral_value(rounding=ROUND_FLOOR))


def nearest_wh(kwh: float) -> int:
    """Whole Wh from a binary float32 kWh register, to the nearest Wh.

    A float32 such as 2.399 is stored as 2.39899992...; flooring would lose a Wh that the meter
    shows. Rounding is still monotonic, so cumulative deltas stay exact.
    """
    finite(kwh, "counter")
    return int(round(kwh * 1000))
