"""SmartPi (enerserve) counter files: cumulative Wh as plain-text decimals.

SmartPi's readout rewrites `<counterdir>/consumecounter` and `<counterdir>/producecounter`
(Wh, e.g. `12345.67890000`) once a minute by truncating and writing the file, so a read can
catch it empty or half written. The driver therefore reads each file until two consecutive
reads agree and parse.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from oracle.drivers.base import DriverOptions, MeterDriver, Reading, floor_wh
from oracle.errors import MeterError


class SmartPiOptions(DriverOptions):
    counter_dir: Path = Path("/var/smartpi")
    import_file: str = "consumecounter"
    export_file: str = "producecounter"
    # Optional gauge file with the energy stored now (Wh), written by a battery management tool.
    stored_file: str | None = None
    # Units of the files: 1 for Wh (SmartPi), 1000 for kWh.
    scale: int = Field(1, ge=1)
    attempts: int = Field(5, ge=2)


class SmartPiMeter(MeterDriver):
    Options = SmartPiOptions
    options: SmartPiOptions

    def _stable(self, name: str) -> int:
        path = self.options.counter_dir / name
        previous: int | None = None
        problem = "never read"
        for attempt in range(self.options.attempts):
            if attempt:
                time.sleep(0.01)
            try:
                text = path.read_text().strip()
                value = floor_wh(text, self.options.scale)
            except FileNotFoundError:
                raise MeterError(f"{path}: no such counter file") from None
            except (OSError, ArithmeticError, ValueError, MeterError) as exc:
                previous, problem = None, f"unreadable ({exc})"
                continue
            if value == previous:
                return value
            previous, problem = value, "changed while reading"
        raise MeterError(f"{path}: {problem}")

    def read(self) -> Reading:
        o = self.options
        stored = self._stable(o.stored_file) if o.stored_file else None
        return Reading(
            ts=time.time(),
            import_wh=self._stable(o.import_file),
            export_wh=self._stable(o.export_file),
            stored_wh=stored,
        )


DRIVER = SmartPiMeter
