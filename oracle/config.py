"""`oracle.toml`: the service's configuration, validated with pydantic.

Relative paths are relative to the configuration file; `${VAR}` in paths is expanded (for
systemd's `$CREDENTIALS_DIRECTORY`). Every problem becomes one `ConfigError` line naming the
offending key.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from oracle.chain_settings import (
    ChainSettings,
    KeySettings,
    Model,
    ServiceSettings,
    checksum_address,
    resolve_path,
)
from oracle.drivers import DriverOptions, driver_class
from oracle.errors import ConfigError, OracleError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Kind = Literal["produced", "consumed", "actual"]
Counter = Literal["import", "export", "stored"]


_path = resolve_path
_Model = Model


class ServiceConfig(ServiceSettings):
    # Seconds between two readings of every meter.
    period_s: float = Field(60.0, gt=0)
    http_port: int = Field(9108, ge=0, le=65535)
    # On SIGTERM, how long the sender may keep delivering pending reports before exiting.
    stop_drain_s: float = Field(5.0, ge=0)
    # Confirmed, final reports (and the readings and transactions only they refer to) older
    # than this are pruned from the outbox; their sums are kept. Pending ones never are.
    retain_s: float = Field(30 * 86400.0, gt=0)


class ChainConfig(ChainSettings, KeySettings):
    # Read from the RPC endpoint when left out; set it to start offline.
    chain_id: int | None = Field(None, gt=0)
    deployments_dir: Path
    # Name of the ledger contract in `deployments/<chain_id>.json`.
    ledger: str = "EnergyLedger"
    passphrase_env: str = "POWERHIVE_ORACLE_PASSPHRASE"
    batch_size: int = Field(64, ge=1, le=64)
    # Longest wait between two delivery attempts while the chain is unreachable.
    retry_max_s: float = Field(30.0, gt=0)
    # How long reconciliation waits for this unit's own pending transactions.
    settle_timeout_s: float = Field(30.0, ge=0)
    # A report is final once its block has this many blocks on top; a chain that rolls back
    # fewer blocks returns the reports it lost to pending (they are sent again).
    confirmations: int = Field(12, ge=0)
    # Refusals that concern one report only (substrings of the revert reason): such a report
    # is marked rejected and skipped. Any other refusal holds delivery back until it passes.
    reject_reasons: list[str] = ["no session", "session expired", "session closed"]

    resolve_paths = field_validator("deployments_dir", mode="before")(_path)


class MeterConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    driver: str = "simulated"
    # The meter's maximum power: a delta above rated power x elapsed time is rejected.
    rated_power_w: float = Field(gt=0)
    plausibility_margin: float = Field(0.1, ge=0)
    # The counter's modulus when it wraps to zero (e.g. 1_000_000_000 Wh for 6 kWh digits).
    rollover_wh: int | None = Field(None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)

    _driver_options: DriverOptions = PrivateAttr()

    @model_validator(mode="after")
    def _check_driver(self, info: ValidationInfo) -> MeterConfig:
        try:
            driver = driver_class(self.driver)
        except OracleError as exc:
            raise ValueError(str(exc)) from None
        options = dict(self.options)
        base = (info.context or {}).get("base_dir")
        try:
            self._driver_options = driver.Options.model_validate(
                options, context={"base_dir": base}
            )
        except ValidationError as exc:
            raise ValueError(f"driver {self.driver!r} options: {_errors(exc)}") from None
        return self

    @property
    def driver_options(self) -> DriverOptions:
        return self._driver_options

    def fingerprint(self) -> str:
        """Identifies the physical meter: a changed driver or address starts a new baseline."""
        return f"{self.driver}:{self._driver_options.model_dump_json()}"


class ChannelConfig(_Model):
    """What a meter counter means for the ledger."""

    meter: str
    counter: Counter
    kind: Kind
    # The producer (kind produced) or consumer (kind consumed); none for kind actual.
    account: str | None = None
    # Kind actual: the shortest time between two actual-energy reports.
    min_interval_s: float = Field(900.0, ge=0)

    @property
    def name(self) -> str:
        return f"{self.meter}.{self.counter}"

    check_address = field_validator("account")(checksum_address)

    @model_validator(mode="after")
    def _consistent(self) -> ChannelConfig:
        if (self.kind == "actual") != (self.counter == "stored"):
            raise ValueError("kind 'actual' goes with counter 'stored', and only with it")
        if self.kind != "actual" and self.account is None:
            raise ValueError(f"kind {self.kind!r} needs an account")
        if self.kind == "actual" and self.account is not None:
            raise ValueError("kind 'actual' takes no account")
        return self


class OracleConfig(_Model):
    service: ServiceConfig
    chain: ChainConfig
    meters: list[MeterConfig] = Field(min_length=1)
    channels: list[ChannelConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> OracleConfig:
        names = [m.name for m in self.meters]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate meter names: {', '.join(duplicates)}")
        seen: set[str] = set()
        for channel in self.channels:
            if channel.meter not in names:
                raise ValueError(f"channel {channel.name}: no meter named {channel.meter!r}")
            if channel.name in seen:
                # The same energy reported twice would be counted twice.
                raise ValueError(f"counter {channel.name} is mapped by more than one channel")
            seen.add(channel.name)
        if sum(c.kind == "actual" for c in self.channels) > 1:
            raise ValueError("at most one channel may report the actual energy")
        return self

    def meter(self, name: str) -> MeterConfig:
        return next(m for m in self.meters if m.name == name)

    def channels_of(self, meter: str) -> list[ChannelConfig]:
        """The meter's channels, flows before the actual energy (it is measured after them)."""
        return sorted(
            (c for c in self.channels if c.meter == meter), key=lambda c: c.kind == "actual"
        )


def _errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        msg = error["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts).replace("\n", " ")


def validate(model: type[M], data: dict[str, Any], base_dir: Path | None) -> M:
    """`data` as `model` (paths relative to `base_dir`), or `ConfigError` with a one-line
    reason: what the three services' `parse_*_config` share."""
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_errors(exc)) from None


def parse_config(data: dict[str, Any], *, base_dir: Path | None = None) -> OracleConfig:
    return validate(OracleConfig, data, base_dir)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(data: dict[str, Any]) -> str:
    """Write a configuration dict as TOML (tables, arrays of tables, inline sub-tables).

    For tools that generate `oracle.toml` (the demo, the benchmark, the tests).
    """
    lines: list[str] = []
    for section, body in data.items():
        items = body if isinstance(body, list) else [body]
        for item in items:
            lines.append(f"[[{section}]]" if isinstance(body, list) else f"[{section}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items() if v is not None)
            lines.append("")
    return "\n".join(lines)


def load_toml(path: Path, parse: Callable[..., T]) -> T:
    """Read the TOML file `path` and validate it with `parse(data, base_dir=...)`, raising
    `ConfigError` with a one-line reason (shared by the meter service and the relayer)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: invalid TOML: {exc}") from None
    try:
        return parse(data, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"config {path}: {exc}") from None


def load_config(path: Path) -> OracleConfig:
    """Read and validate `path`, raising `ConfigError` with a one-line reason."""
    return load_toml(path, parse_config)
