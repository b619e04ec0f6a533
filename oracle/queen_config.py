"""`queen.toml`: the hive queen's configuration (`oracle queen`), validated with pydantic.

The queen is the hive's aggregator (SPEC §8, issue 13): one key, set by the hive owner as the
hive's queen on the `HiveMarket`, and one meter per worker of the hive. Each `[[workers]]`
entry is a worker address plus the same meter section the storage-unit service takes (`name`,
`driver`, `rated_power_w`, `options`, ...): the meter's export counter is what the worker
produced, its import counter what it consumed. The period length and start come from the
chain's market, never from this file. Relative paths are relative to the file; `${VAR}` is
expanded. Every problem is one `ConfigError` line naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from oracle.config import MeterConfig, _errors, _path, load_toml
from oracle.errors import ConfigError

# The market's bound on entries per `submit` (HiveMarket.MAX_BATCH) and workers per hive.
MAX_BATCH = 128


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueenServiceConfig(_Model):
    # The queen's SQLite outbox (periods, baselines, transactions) and its lock.
    state_dir: Path
    # Seconds between two looks at the chain's head and the clock.
    poll_s: float = Field(1.0, gt=0)
    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = Field(9128, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Longest wait between two attempts while the chain is unreachable or refusing for now.
    retry_max_s: float = Field(30.0, gt=0)

    resolve_paths = field_validator("state_dir", mode="before")(_path)


class QueenChainConfig(_Model):
    rpc_url: str
    # Required: the endpoint must serve this chain (checked at every start).
    chain_id: int = Field(gt=0)
    deployments_dir: Path
    # Name of the market contract in `deployments/<chain_id>.json`.
    market: str = "HiveMarket"
    # The queen's key: an encrypted JSON keystore (`ape accounts` / `oracle keygen`).
    keystore: Path
    passphrase_file: Path | None = None
    passphrase_env: str = "POWERHIVE_QUEEN_PASSPHRASE"
    poa: bool | None = None
    rpc_timeout_s: float = Field(10.0, gt=0)
    rpc_retries: int = Field(3, ge=0)
    tx_timeout_s: float = Field(120.0, gt=0)
    # How long the queen waits at start (and after any doubt) for its own pending
    # transactions before it reads what the chain holds.
    settle_timeout_s: float = Field(30.0, ge=0)
    gas_margin: float = Field(1.25, ge=1.0)
    max_fee_gwei: float | None = Field(None, gt=0)
    priority_fee_gwei: float | None = Field(None, ge=0)

    resolve_paths = field_validator(
        "deployments_dir", "keystore", "passphrase_file", mode="before"
    )(_path)

    @field_validator("rpc_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class HiveConfig(_Model):
    # The Beekeeper hive id whose market this queen submits for.
    hive: int = Field(gt=0, lt=2**32)
    # Workers per `submit` transaction (the market takes at most 128).
    batch_size: int = Field(64, ge=1, le=MAX_BATCH)


class WorkerConfig(MeterConfig):
    """A worker of the hive (its Beekeeper meter address) and the meter that measures it."""

    address: str

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not is_address(value):
            raise ValueError(f"not an address: {value!r}")
        return to_checksum_address(value)


class QueenConfig(_Model):
    service: QueenServiceConfig
    chain: QueenChainConfig
    queen: HiveConfig
    workers: list[WorkerConfig] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _distinct(self) -> QueenConfig:
        for what, values in (
            ("worker names", [w.name for w in self.workers]),
            ("worker addresses", [w.address for w in self.workers]),
        ):
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                # The same worker twice would be submitted twice in one period.
                raise ValueError(f"duplicate {what}: {', '.join(duplicates)}")
        return self

    def worker(self, address: str) -> WorkerConfig:
        return next(w for w in self.workers if w.address == address)


def parse_queen_config(data: dict[str, Any], *, base_dir: Path | None = None) -> QueenConfig:
    try:
        return QueenConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_errors(exc)) from None


def load_queen_config(path: Path) -> QueenConfig:
    """Read and validate `path`, raising `ConfigError` with a one-line reason."""
    return load_toml(path, parse_queen_config)
