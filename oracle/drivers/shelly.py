"""Shelly Gen2+ energy meters over HTTP RPC (`EMData.GetStatus`, `EM1Data.GetStatus`).

Pro 3EM and 3EM-63 keep three-phase totals in the `emdata` component (`total_act` imported,
`total_act_ret` returned to the grid, Wh); Pro EM and EM Gen3 keep one per channel in
`em1data` (`total_act_energy`, `total_act_ret_energy`). The driver posts a JSON-RPC request to
`http://<host>/rpc`; with a password set it answers the device's digest challenge (user
`admin`).
"""

from __future__ import annotations

import time
from typing import Literal

import requests
from pydantic import Field
from requests.auth import HTTPDigestAuth

from oracle.drivers.base import DriverContext, DriverOptions, MeterDriver, Reading, floor_wh
from oracle.errors import MeterError

COMPONENTS = {
    # component: (RPC method, import field, export field)
    "emdata": ("EMData.GetStatus", "total_act", "total_act_ret"),
    "em1data": ("EM1Data.GetStatus", "total_act_energy", "total_act_ret_energy"),
}


class ShellyOptions(DriverOptions):
    # Host name or address, optionally with a port (`192.0.2.10`, `shelly.local:8080`).
    host: str
    component: Literal["emdata", "em1data"] = "emdata"
    id: int = Field(0, ge=0)
    password: str | None = None
    timeout_s: float = Field(5.0, gt=0)


class ShellyMeter(MeterDriver):
    Options = ShellyOptions
    options: ShellyOptions

    def __init__(self, options: ShellyOptions, context: DriverContext):
        super().__init__(options, context)
        self._session = requests.Session()
        if options.password:
            self._session.auth = HTTPDigestAuth("admin", options.password)
        self._request_id = 0

    def rpc(self, method: str, params: dict) -> dict:
        self._request_id += 1
        url = f"http://{self.options.host}/rpc"
        body = {"id": self._request_id, "method": method, "params": params}
        try:
            response = self._session.post(url, json=body, timeout=self.options.timeout_s)
            response.raise_for_status()
            answer = response.json()
        except requests.RequestException as exc:
            raise MeterError(f"{url}: {exc}") from None
        except ValueError:
            raise MeterError(f"{url}: answer is not JSON") from None
        if not isinstance(answer, dict):
            raise MeterError(f"{url}: unexpected answer {answer!r}")
        if "error" in answer:
            raise MeterError(f"{url}: {method} failed: {answer['error']}")
        result = answer.get("result")
        if not isinstance(result, dict):
            raise MeterError(f"{url}: {method} answered without a result")
        return result

    def read(self) -> Reading:
        method, import_field, export_field = COMPONENTS[self.options.component]
        status = self.rpc(method, {"id": self.options.id})
        try:
            import_wh = floor_wh(status[import_field])
            export_wh = floor_wh(status[export_field])
        except KeyError as exc:
            raise MeterError(f"{self.options.host}: {method} lacks {exc}") from None
        except (ArithmeticError, ValueError) as exc:
            raise MeterError(f"{self.options.host}: bad counter ({exc})") from None
        return Reading(ts=time.time(), import_wh=import_wh, export_wh=export_wh)

    def close(self) -> None:
        self._session.close()


DRIVER = ShellyMeter
