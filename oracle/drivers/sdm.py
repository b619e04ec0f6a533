"""Eastron SDM120 / SDM630 energy meters over Modbus RTU (pymodbus).

Both models publish "Import active energy" at input register 0x0048 (30073) and "Export active
energy" at 0x004A (30075) as IEEE-754 float32 kWh, high word first, read with function code 4.
`port` is a serial device (`/dev/ttyUSB0`) or any pyserial URL (`socket://host:port` for an
RS-485 gateway in transparent mode, `rfc2217://...`). Factory line settings: SDM120 2400 baud,
SDM630 9600 baud, 8N1, device id 1.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import Field

from oracle.drivers.base import DriverOptions, MeterDriver, Reading, nearest_wh
from oracle.errors import MeterError

# (import register, export register) per model; each is a float32 across two registers.
REGISTERS: dict[str, tuple[int, int]] = {
    "sdm120": (0x0048, 0x004A),
    "sdm630": (0x0048, 0x004A),
}


class SdmOptions(DriverOptions):
    model: Literal["sdm120", "sdm630"] = "sdm120"
    port: str
    baudrate: int = Field(9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    device_id: int = Field(1, ge=1, le=247)
    timeout_s: float = Field(1.0, gt=0)
    retries: int = Field(2, ge=0)


class SdmMeter(MeterDriver):
    Options = SdmOptions
    options: SdmOptions

    def _client(self):
        from pymodbus.client import ModbusSerialClient
        from pymodbus.framer import FramerType

        o = self.options
        return ModbusSerialClient(
            o.port,
            framer=FramerType.RTU,
            baudrate=o.baudrate,
            parity=o.parity,
            stopbits=o.stopbits,
            timeout=o.timeout_s,
            retries=o.retries,
        )

    def read(self) -> Reading:
        # The port is opened for each reading and closed after it: several meters (device
        # ids) share one RS-485 bus, and a port left open would lock the others out.
        from pymodbus.exceptions import ModbusException

        client = self._client()
        first, second = REGISTERS[self.options.model]
        try:
            if not client.connect():
                raise MeterError(f"cannot open {self.options.port}")
            # One request covers both values: they are adjacent (0x48..0x4B).
            response = client.read_input_registers(
                first, count=second - first + 2, device_id=self.options.device_id
            )
        except ModbusException as exc:
            raise MeterError(f"{self.options.port}: {exc}") from None
        finally:
            client.close()
        if response.isError():
            raise MeterError(f"{self.options.port}: modbus exception response {response}")
        regs = response.registers
        convert, f32 = client.convert_from_registers, client.DATATYPE.FLOAT32
        import_kwh = convert(regs[0:2], f32)
        export_kwh = convert(regs[second - first : second - first + 2], f32)
        return Reading(
            ts=time.time(),
            import_wh=nearest_wh(import_kwh),
            export_wh=nearest_wh(export_kwh),
        )


DRIVER = SdmMeter
