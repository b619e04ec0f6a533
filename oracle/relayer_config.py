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
from typing import Any, Literal

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from oracle.config import _errors, _path, load_toml
from oracle.errors import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RelayerServiceConfig(_Model):
    # The relayer's SQLite state (cursors, events, submissions) and its lock.
    state_dir: Path
    # Seconds between two looks at the chains' heads.
    poll_s: float = Field(1.0, gt=0)
    # Health (`/health`), Prometheus (`/metrics`) and the signatures the peers fetch
    # (`/attestations`). Must be reachable by the peers when M > 1.
    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = Field(9118, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
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

    resolve_paths = field_validator("state_dir", mode="before")(_path)


class RelayerKeyConfig(_Model):
    # This relayer's key: an encrypted JSON keystore (`ape accounts` / `oracle keygen`).
    keystore: Path
    passphrase_file: Path | None = None
    passphrase_env: str = "POWERHIVE_RELAYER_PASSPHRASE"
    # The other relayers' HTTP endpoints (`http://host:port`), asked for their signatures.
    peers: list[str] = Field(default_factory=list)
    # Per peer request.
    peer_timeout_s: float = Field(2.0, gt=0)

    resolve_paths = field_validator("keystore", "passphrase_file", mode="before")(_path)

    @field_validator("peers")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r}: must be an http:// or https:// URL")
        if len(set(value)) != len(value):
            raise ValueError("a peer is listed twice")
        return [url.rstrip("/") for url in value]


class BridgeChainConfig(_Model):
    # A name for logs and metrics ("A", "community-north", ...).
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    rpc_url: str
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
    # Blocks per eth_getLogs request.
    max_block_range: int = Field(2000, ge=1)
    # Block hashes kept per chain to find the fork point of a reorg.
    reorg_window: int = Field(256, ge=1)
    poa: bool | None = None
    rpc_timeout_s: float = Field(10.0, gt=0)
    rpc_retries: int = Field(3, ge=0)
    tx_timeout_s: float = Field(120.0, gt=0)
    gas_margin: float = Field(1.25, ge=1.0)
    max_fee_gwei: float | None = Field(None, gt=0)
    priority_fee_gwei: float | None = Field(None, ge=0)

    resolve_paths = field_validator("deployments_dir", mode="before")(_path)

    @field_validator("rpc_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("bridge_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not is_address(value):
            raise ValueError(f"not an address: {value!r}")
        return to_checksum_address(value)

    @model_validator(mode="after")
    def _where(self) -> BridgeChainConfig:
        if self.bridge_address is None and self.deployments_dir is None:
            raise ValueError("needs deployments_dir or bridge_address")
        if self.confirmations >= self.reorg_window:
            raise ValueError("reorg_window must exceed confirmations")
        return self


class RelayerConfig(_Model):
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
    try:
        return RelayerConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_errors(exc)) from None


def load_relayer_config(path: Path) -> RelayerConfig:
    """Read and validate `path`, raising `ConfigError` with a one-line reason."""
    return load_toml(path, parse_relayer_config)
