"""Meters at protocol level, on 127.0.0.1: an SDM on Modbus RTU, a P1 port, a Shelly."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dsmr_parser.parsers import TelegramParser
from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tests.oracle.rig import free_port

DATA = Path(__file__).parent / "data"
SAMPLE_V5 = (DATA / "dsmr_v5.txt").read_bytes()

F32 = ModbusClientMixin.DATATYPE.FLOAT32


class SdmSimulator:
    """An Eastron SDM's input registers served with RTU framing over TCP, the way an RS-485 to
    Ethernet gateway in transparent mode presents a meter (`socket://` for pyserial)."""

    def __init__(self, device_id: int = 1):
        self.device_id = device_id
        self.import_kwh = 0.0
        self.export_kwh = 0.0
        self.voltage = 230.1
        self.requests = 0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._server: ModbusTcpServer | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    async def _action(self, fc, start, address, count, registers, values):
        # Refresh the energy registers from the simulated meter before each read.
        self.requests += 1
        for reg, value in ((0x00, self.voltage), (0x48, self.import_kwh), (0x4A, self.export_kwh)):
            registers[reg - start : reg - start + 2] = ModbusClientMixin.convert_to_registers(
                value, F32
            )
        return None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            device = SimDevice(
                id=self.device_id,
                simdata=(
                    [SimData(0, values=False, datatype=DataType.BITS)],
                    [SimData(0, values=False, datatype=DataType.BITS)],
                    [SimData(0, count=2, datatype=DataType.REGISTERS)],
                    # 0x0000..0x0180: the SDM's measurement registers, read-only.
                    [SimData(0, count=0x180, datatype=DataType.REGISTERS, readonly=True)],
                ),
                action=self._action,
            )
            self._server = ModbusTcpServer(
                device,
                framer=FramerType.RTU,
                address=("127.0.0.1", self.port),
                ignore_missing_devices=True,
            )
            await self._server.serve_forever(background=True)

        self._loop.run_until_complete(serve())
        self._loop.run_forever()

    def __enter__(self) -> SdmSimulator:
        self._thread.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("modbus simulator did not start")

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def telegram(
    import_t1: str, import_t2: str, export_t1: str, export_t2: str, base: bytes = SAMPLE_V5
) -> bytes:
    """The V5 sample with other counters (kWh strings like "000123.456") and a fresh CRC."""
    text = base.decode("ascii")
    for obis, value in (
        ("1-0:1.8.1", import_t1),
        ("1-0:1.8.2", import_t2),
        ("1-0:2.8.1", export_t1),
        ("1-0:2.8.2", export_t2),
    ):
        start = text.index(obis + "(") + len(obis) + 1
        end = text.index("*kWh)", start)
        text = text[:start] + value + text[end:]
    body = text[: text.index("!") + 1]
    return (body + f"{TelegramParser.crc16(body):04X}\r\n").encode("ascii")


def kwh(wh: int) -> str:
    return f"{Decimal(wh) / 1000:010.3f}"


class P1Server:
    """A P1 port behind a TCP bridge: pushes the current telegram every `interval_s`."""

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.telegram = SAMPLE_V5
        self.port = free_port()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=self._push, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _push(self, conn: socket.socket) -> None:
        with conn:
            while not self._stop.is_set():
                data = self.telegram
                try:
                    # Send in chunks, as a serial line would, so reads see partial telegrams.
                    for i in range(0, len(data), 64):
                        conn.sendall(data[i : i + 64])
                except OSError:
                    return
                time.sleep(self.interval_s)

    def __enter__(self) -> P1Server:
        t = threading.Thread(target=self._serve, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self._listener.close()


class ShellyFake:
    """A Shelly Gen2 meter's HTTP RPC endpoint (`POST /rpc`), totals in Wh."""

    def __init__(self, component: str = "emdata"):
        self.component = component
        self.import_wh = 0.0
        self.export_wh = 0.0
        self.fail_next = 0
        self.calls: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length))
                fake.calls.append(request)
                if fake.fail_next:
                    fake.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                body = json.dumps(fake.answer(request)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def answer(self, request: dict) -> dict:
        method, params = request["method"], request.get("params", {})
        reply = {"id": request["id"], "src": "shellypro3em-0cb815fcaf58"}
        if method == "EMData.GetStatus" and self.component == "emdata":
            reply["result"] = {
                "id": params.get("id", 0),
                "a_total_act_energy": round(self.import_wh * 0.5, 2),
                "a_total_act_ret_energy": round(self.export_wh, 2),
                "b_total_act_energy": round(self.import_wh * 0.3, 2),
                "b_total_act_ret_energy": 0,
                "c_total_act_energy": round(self.import_wh * 0.2, 2),
                "c_total_act_ret_energy": 0,
                "total_act": round(self.import_wh, 2),
                "total_act_ret": round(self.export_wh, 2),
            }
        elif method == "EM1Data.GetStatus" and self.component == "em1data":
            reply["result"] = {
                "id": params.get("id", 0),
                "total_act_energy": round(self.import_wh, 2),
                "total_act_ret_energy": round(self.export_wh, 2),
            }
        else:
            reply["error"] = {"code": 404, "message": f"No handler for {method}"}
        return reply

    def __enter__(self) -> ShellyFake:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
