"""DSMR P1 port telegrams (Dutch/Belgian smart meters), parsed with dsmr_parser.

Import is the sum of tariffs 1.8.1 + 1.8.2 (delivered to the client), export 2.8.1 + 2.8.2
(delivered by the client), both kWh with three decimals, so the Wh counters are exact. The
meter pushes a telegram every second (DSMR 5) or ten (DSMR 4); the driver drops what is
buffered and waits for the next complete telegram, so a reading is never stale. `port` is the
serial device of the P1 cable or a pyserial URL (`socket://host:port` for a P1-to-TCP bridge).
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import Field

from oracle.drivers.base import DriverContext, DriverOptions, MeterDriver, Reading, floor_wh
from oracle.errors import MeterError

IMPORT_FIELDS = ("ELECTRICITY_USED_TARIFF_1", "ELECTRICITY_USED_TARIFF_2")
EXPORT_FIELDS = ("ELECTRICITY_DELIVERED_TARIFF_1", "ELECTRICITY_DELIVERED_TARIFF_2")


_SCALE = {"kWh": 1000, "Wh": 1}


def _wh(obj) -> int:
    scale = _SCALE.get(obj.unit)
    if scale is None:
        raise MeterError(f"unexpected energy unit {obj.unit!r}")
    return floor_wh(obj.value, scale)


class DsmrOptions(DriverOptions):
    port: str = "/dev/ttyUSB0"
    # dsmr_parser.telegram_specifications name: V2_2, V3, V4, V5, BELGIUM_FLUVIUS, ...
    specification: str = "V5"
    # DSMR 4/5: 115200 8N1. DSMR 2.2/3: 9600 7E1.
    baudrate: int = Field(115_200, gt=0)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(12.0, gt=0)


class DsmrMeter(MeterDriver):
    Options = DsmrOptions
    options: DsmrOptions

    def __init__(self, options: DsmrOptions, context: DriverContext):
        super().__init__(options, context)
        from dsmr_parser import telegram_specifications
        from dsmr_parser.parsers import TelegramParser

        spec = getattr(telegram_specifications, options.specification, None)
        if not isinstance(spec, dict):
            raise MeterError(f"unknown DSMR specification {options.specification!r}")
        self._parser = TelegramParser(spec)
        self._serial = None

    def _open(self):
        import serial

        if self._serial is None:
            o = self.options
            try:
                self._serial = serial.serial_for_url(
                    o.port,
                    baudrate=o.baudrate,
                    bytesize=o.bytesize,
                    parity=o.parity,
                    stopbits=o.stopbits,
                    timeout=0.2,
                )
            except (OSError, ValueError, serial.SerialException) as exc:
                raise MeterError(f"cannot open {o.port}: {exc}") from None
        return self._serial

    def read_telegram(self):
        """The next complete, checksum-valid telegram after this call started."""
        import serial
        from dsmr_parser.clients.telegram_buffer import TelegramBuffer
        from dsmr_parser.exceptions import InvalidChecksumError, ParseError

        port = self._open()
        buffer = TelegramBuffer()
        deadline = time.monotonic() + self.options.timeout_s
        problem = "no telegram"
        try:
            port.reset_input_buffer()
            while time.monotonic() < deadline:
                chunk = port.read(max(1, port.in_waiting))
                if not chunk:
                    continue
                buffer.append(chunk.decode("ascii", errors="replace"))
                for raw in buffer.get_all():
                    try:
                        return self._parser.parse(raw)
                    except (InvalidChecksumError, ParseError) as exc:
                        problem = f"bad telegram ({exc})"
        except (OSError, serial.SerialException) as exc:
            self.close()
            raise MeterError(f"{self.options.port}: {exc}") from None
        raise MeterError(f"{self.options.port}: {problem} within {self.options.timeout_s:g} s")

    def read(self) -> Reading:
        telegram = self.read_telegram()

        def total(fields: tuple[str, ...]) -> int:
            present = [getattr(telegram, name, None) for name in fields]
            objects = [obj for obj in present if obj is not None]
            if not objects:
                raise MeterError(f"{self.options.port}: telegram lacks {' / '.join(fields)}")
            return sum(_wh(obj) for obj in objects)

        return Reading(
            ts=time.time(), import_wh=total(IMPORT_FIELDS), export_wh=total(EXPORT_FIELDS)
        )

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
            self._serial = None


DRIVER = DsmrMeter
