"""`oracle check`: everything a new Pi needs before `oracle run`, one line per check.

In order: the configuration, the unit's keystore (decrypted with the configured passphrase),
the chain id the RPC endpoint serves, the deployments file (and code at the ledger's address),
the unit's registration on the ledger (and its gas balance), and one reading from each meter.
A check whose prerequisite failed is reported as skipped (and counts as failed). Nothing is
written: not the outbox, not the simulators' clocks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from oracle.errors import OracleError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: skipped, a prerequisite failed
    detail: str

    def line(self) -> str:
        status = {True: "ok", False: "FAIL", None: "skip"}[self.ok]
        return f"{status:<5}{self.name:<13}{self.detail}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OracleError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_checks(config_path: Path, *, passphrase: str | None = None) -> Iterator[Check]:
    """Yield each check's result as it is known (an operator sees progress on a slow RPC)."""
    from oracle.config import load_config

    def attempt(name: str, fn: Callable[[], str]) -> Check:
        try:
            return Check(name, True, fn())
        except Exception as exc:  # every failure is a line, never a traceback
            return Check(name, False, _one_line(exc))

    state: dict = {}

    def config() -> str:
        state["config"] = c = load_config(config_path)
        return f"{config_path}: {len(c.meters)} meters, {len(c.channels)} channels"

    result = attempt("config", config)
    yield result
    if not result.ok:
        for name in ("keystore", "chain id", "deployments", "registration", "meters"):
            yield Check(name, None, "needs a valid config")
        return
    cfg = state["config"]
    c = cfg.chain

    def keystore() -> str:
        from oracle.keystore import keystore_address
        from oracle.wiring import load_key

        address = keystore_address(c.keystore)
        account = load_key(c.keystore, c.passphrase_file, c.passphrase_env, passphrase)
        if account.address != address:
            raise OracleError(
                f"keystore {c.keystore}: decrypts to {account.address}, not its address {address}"
            )
        state["unit"] = address
        return f"{c.keystore}: unit {address}, the passphrase decrypts it"

    yield attempt("keystore", keystore)

    def chain_id() -> str:
        from oracle.wiring import check_served_chain, rpc_chain_id

        served = rpc_chain_id(c.rpc_url, timeout_s=c.rpc_timeout_s)
        if c.chain_id is not None:
            check_served_chain(c.rpc_url, served, c.chain_id)
        state["served"] = served
        configured = "as configured" if c.chain_id is not None else "chain.chain_id not set"
        return f"{c.rpc_url} serves chain {served} ({configured})"

    result = attempt("chain id", chain_id)
    yield result
    known_chain = c.chain_id if c.chain_id is not None else state.get("served")

    def deployments() -> str:
        from oracle.deployments import deployment_path, load_deployment

        record = load_deployment(c.deployments_dir, known_chain).contract(c.ledger)
        where = f"{deployment_path(c.deployments_dir, known_chain)}: {c.ledger} {record.address}"
        if "served" in state:
            from web3 import Web3

            w3 = Web3(Web3.HTTPProvider(c.rpc_url, request_kwargs={"timeout": c.rpc_timeout_s}))
            if not w3.eth.get_code(Web3.to_checksum_address(record.address)):
                raise OracleError(f"{where} has no code on chain {known_chain} (another chain?)")
            return f"{where}, code on chain"
        return f"{where} (code not checked: the chain did not answer)"

    if known_chain is None:
        yield Check("deployments", None, "needs the chain id (set chain.chain_id)")
    else:
        yield attempt("deployments", deployments)

    def registration() -> str:
        from oracle.wiring import chain_client

        client = chain_client(cfg, chain_id=known_chain, unit=state["unit"])
        info = client.check_unit()
        balance = client.balance_wei() / 10**18
        return (
            f"unit {state['unit']} active (owner {info.owner}), last_seq {info.last_seq}, "
            f"available {info.available_wh:,} Wh, gas balance {balance:.6f}"
        )

    if "unit" not in state or "served" not in state:
        yield Check("registration", None, "needs the keystore and the chain")
    else:
        yield attempt("registration", registration)

    yield from _meters(cfg)


def _meters(cfg) -> Iterator[Check]:
    from oracle.service import make_drivers

    # No state dir: a simulator reads from its own clock, nothing is written.
    try:
        drivers = make_drivers(cfg, None)
    except Exception as exc:
        yield Check("meters", False, _one_line(exc))
        return
    for meter in cfg.meters:
        name = f"meter {meter.name}"
        driver = drivers[meter.name]
        try:
            r = driver.read()
            stored = "" if r.stored_wh is None else f", stored {r.stored_wh:,} Wh"
            yield Check(
                "meters",
                True,
                f"{meter.name} ({meter.driver}): import {r.import_wh:,} Wh, "
                f"export {r.export_wh:,} Wh{stored}",
            )
        except Exception as exc:  # MeterError, or a driver's own bug: a line either way
            yield Check("meters", False, f"{name} ({meter.driver}): {_one_line(exc)}")
        finally:
            with contextlib.suppress(Exception):
                driver.close()
