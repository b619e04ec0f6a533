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
from typing import Any

from pydantic import Field, field_validator, model_validator

from oracle.chain_settings import (
    ChainSettings,
    KeySettings,
    Model,
    ServiceSettings,
    checksum_address,
)
from oracle.config import MeterConfig, _path, load_toml, validate

# The market's bound on entries per `submit` (HiveMarket.MAX_BATCH) and workers per hive.
MAX_BATCH = 128


class QueenServiceConfig(ServiceSettings):
    # state_dir: the queen's SQLite outbox (periods, baselines, transactions) and its lock.
    # Seconds between two looks at the chain's head and the clock.
    poll_s: float = Field(1.0, gt=0)
    http_port: int = Field(9128, ge=0, le=65535)
    # Longest wait between two attempts while the chain is unreachable or refusing for now.
    retry_max_s: float = Field(30.0, gt=0)
    # Final settled periods (and their transactions) older than this many days are deleted
    # from the outbox (`oracle queen-export` first to keep them); pending ones never are.
    retain_days: float = Field(400.0, gt=0)


class QueenChainConfig(ChainSettings, KeySettings):
    # Required: the endpoint must serve this chain (checked at every start).
    chain_id: int = Field(gt=0)
    deployments_dir: Path
    # Name of the market contract in `deployments/<chain_id>.json`.
    market: str = "HiveMarket"
    passphrase_env: str = "POWERHIVE_QUEEN_PASSPHRASE"
    # How long the queen waits at start (and after any doubt) for its own pending
    # transactions before it reads what the chain holds.
    settle_timeout_s: float = Field(30.0, ge=0)
    # A settled period is final once the transactions that settled it have this many blocks
    # on top; until then each is looked up again, and a period whose transaction a
    # reorganisation dropped goes back to pending and is sent again.
    confirmations: int = Field(12, ge=0)

    resolve_paths = field_validator("deployments_dir", mode="before")(_path)


class HiveConfig(Model):
    # The Beekeeper hive id whose market this queen submits for.
    hive: int = Field(gt=0, lt=2**32)
    # Workers per `submit` transaction (the market takes at most 128).
    batch_size: int = Field(64, ge=1, le=MAX_BATCH)


class WorkerConfig(MeterConfig):
    """A worker of the hive (its Beekeeper meter address) and the meter that measures it."""

    address: str

    check_address = field_validator("address")(checksum_address)


class QueenConfig(Model):
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
    return validate(QueenConfig, data, base_dir)


def load_queen_config(path: Path) -> QueenConfig:
    """Read and validate `path`, raising `ConfigError` with a one-line reason."""
    return load_toml(path, parse_queen_config)
