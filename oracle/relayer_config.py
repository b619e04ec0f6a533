"""`relayer.toml`: the bridge relayer's configuration, validated with pydantic.

Two chains (`[[chains]]`, exactly two, distinct chain ids), each with its RPC endpoint, its
chain id (required: checked against the endpoint at start, so a typo never signs for the
wrong chain), where its Bridge is (a deployments file, or an address), and how many blocks
make an event final. One relayer key (`[relayer]`), the same keystore and passphrase handling
as the oracle's, and the HTTP endpoints of the other relayers of the set (`peers`), from which
this relayer collects signatures when M > 1. Relative paths are relative to the file; `${VAR}`
is expanded. Every problem is one `ConfigError` line naming the key.
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
from oracle.config import _path, load_toml, validate


class RelayerServiceConfig(ServiceSettings):
    # state_dir: the relayer's SQLite state (cursors, events, submissions) and its lock.
    # Seconds between two looks at the chains' heads.
    poll_s: float = Field(1.0, gt=0)
    # Health (`/health`), Prometheus (`/metrics`) and the signatures the peers fetch
    # (`/attestations`). Must be reachable by the peers when M > 1.
    http_port: int = Field(9118, ge=0, le=65535)
    # The relayer whose turn a transfer is submits at once; every other one takes over once
    # the transfer is this many seconds old and still not done (no minority blocks it).
    takeover_s: float = Field(30.0, ge=0)
    # Longest wait between two attempts while a chain is unreachable.
    retry_max_s: float = Field(30.0, gt=0)
    # Retention of settled transfers (marked or refunded on their source: nothing left to
    # do) in the state: removed once settled this many days ago (0: kept whatever their
    # age), and beyond the newest `retention_transfers` settled ones (0: no count limit).
    # A transfer still to unlock, mark, cancel or refund is never removed.
    retention_days: float = Field(30.0, ge=0)
    retention_transfers: int = Field(100_000, ge=0)


class RelayerKeyConfig(KeySettings):
    passphrase_env: str = "POWERHIVE_RELAYER_PASSPHRASE"
    # The other relayers' HTTP endpoints (`http://host:port`), asked for their signatures.
    peers: list[str] = Field(default_factory=list)
    # Per peer request.
    peer_timeout_s: float = Field(2.0, gt=0)

    @field_validator("peers")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r}: must be an http:// or https:// URL")
        if len(set(value)) != len(value):
            raise ValueError("a peer is listed twice")
        return [url.rstrip("/") for url in value]


class BridgeChainConfig(ChainSettings):
    # A name for logs and metrics ("A", "community-north", ...).
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    # Required: the endpoint must serve this chain (checked at start and on every reconnect).
    chain_id: int = Field(gt=0)
    # Where the Bridge is: `deployments_dir/<chain_id>.json` (contract `bridge_contract`), or
    # `bridge_address` directly (then `deployments_dir` is not needed).
    deployments_dir: Path | None = None
    bridge_contract: str = "Bridge"
    bridge_address: str | None = None
    # An event is acted on once its block has this many blocks on top of it.
    confirmations: int = Field(2, ge=0)
    # First block to scan on a fresh state (default: the Bridge's deployment block, else 0).
    start_block: int | None = Field(None, ge=0)
    # Blocks per eth_getLogs request (`max_block_range`) comes from `ChainSettings`: also
    # the most one scan reads before it stores its events and moves the cursor.
    # Block hashes kept per chain to find the fork point of a reorg.
    reorg_window: int = Field(256, ge=1)

    resolve_paths = field_validator("deployments_dir", mode="before")(_path)

    check_address = field_validator("bridge_address")(checksum_address)

    @model_validator(mode="after")
    def _where(self) -> BridgeChainConfig:
        if self.bridge_address is None and self.deployments_dir is None:
            raise ValueError("needs deployments_dir or bridge_address")
        if self.confirmations >= self.reorg_window:
            raise ValueError("reorg_window must exceed confirmations")
        return self


class RelayerConfig(Model):
    service: RelayerServiceConfig
    relayer: RelayerKeyConfig
    chains: list[BridgeChainConfig] = Field(min_length=2, max_length=2)

    @model_validator(mode="after")
    def _distinct(self) -> RelayerConfig:
        a, b = self.chains
        if a.chain_id == b.chain_id:
            raise ValueError(f"both chains have chain_id {a.chain_id}")
        if a.name == b.name:
            raise ValueError(f"both chains are named {a.name!r}")
        return self

    def other(self, chain_id: int) -> BridgeChainConfig:
        return next(c for c in self.chains if c.chain_id != chain_id)


def parse_relayer_config(data: dict[str, Any], *, base_dir: Path | None = None) -> RelayerConfig:
    return validate(RelayerConfig, data, base_dir)


def load_relayer_config(path: Path) -> RelayerConfig:
    """Read and validate `path`, raising `ConfigError` with a one-line reason."""
    return load_toml(path, parse_relayer_config)
