"""The settings every oracle service shares, one model each, used by `oracle.toml` (the unit
service), `queen.toml` (the hive queen) and `relayer.toml` (the bridge relayer):

- `ChainSettings`: the RPC endpoint and how transactions go out (PoA, timeouts, retries, gas
  margin, fee caps), and how wide a range of blocks one event read may ask for;
- `KeySettings`: the service's key (an encrypted keystore and where its passphrase is);
- `ServiceSettings`: the state dir, the health/metrics endpoint and the logs.

Each service's model inherits them and adds (or re-defaults) its own fields. `resolve_path`
is the path rule of all three files: `${VAR}` expanded, `~` too, relative to the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


def resolve_path(value: Any, info: ValidationInfo) -> Any:
    if value is None:
        return None
    expanded = os.path.expandvars(str(value))
    if "$" in expanded:
        raise ValueError(f"{value!r}: environment variable not set")
    path = Path(expanded).expanduser()
    base = (info.context or {}).get("base_dir")
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return path


def checksum_address(value: str | None) -> str | None:
    """A field validator: an address in checksum form (None stays None)."""
    if value is None:
        return None
    if not is_address(value):
        raise ValueError(f"not an address: {value!r}")
    return to_checksum_address(value)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainSettings(Model):
    rpc_url: str
    # Proof-of-authority chain (extraData longer than 32 bytes); detected when left out.
    poa: bool | None = None
    rpc_timeout_s: float = Field(10.0, gt=0)
    rpc_retries: int = Field(3, ge=0)
    tx_timeout_s: float = Field(120.0, gt=0)
    gas_margin: float = Field(1.25, ge=1.0)
    max_fee_gwei: float | None = Field(None, gt=0)
    priority_fee_gwei: float | None = Field(None, ge=0)
    # Blocks per eth_getLogs request at most (public endpoints cap it: Alchemy and Infura at
    # a few thousand, some at 10 000 results); halved while the node refuses a range.
    max_block_range: int = Field(2000, ge=1)

    @field_validator("rpc_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    def client_options(self) -> dict[str, Any]:
        """The `ChainClient` keyword arguments these settings give."""
        return {
            "rpc_url": self.rpc_url,
            "poa": self.poa,
            "rpc_timeout_s": self.rpc_timeout_s,
            "rpc_retries": self.rpc_retries,
            "tx_timeout_s": self.tx_timeout_s,
            "gas_margin": self.gas_margin,
            "max_fee_gwei": self.max_fee_gwei,
            "priority_fee_gwei": self.priority_fee_gwei,
            "max_block_range": self.max_block_range,
        }


class KeySettings(Model):
    # The service's key: an encrypted JSON keystore (`ape accounts` / `oracle keygen`).
    keystore: Path
    passphrase_file: Path | None = None
    passphrase_env: str

    resolve_key_paths = field_validator("keystore", "passphrase_file", mode="before")(resolve_path)


class ServiceSettings(Model):
    # The service's SQLite state and its lock live here.
    state_dir: Path
    # Health (`/health`) and Prometheus (`/metrics`) endpoint; port 0 picks a free port.
    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = Field(ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    resolve_state_dir = field_validator("state_dir", mode="before")(resolve_path)
