"""Test rig for the oracle: Anvil processes, the ledger, keystores, configs, service processes.

The ledger under test is chosen here, in one place: `LEDGER_CONTRACT`, the real
`EnergyLedger` by default, or the test-only `MockLedger` (same reporting ABI and sequence
semantics, plus a pause and a "no session" refusal to exercise those paths) with
`POWERHIVE_TEST_LEDGER=MockLedger` in the environment; `LedgerRig` hides the differences
(registration by governance, no pause, consumption without a session accepted as
over-consumption), and reads totals from the `EnergyProduced` / `EnergyConsumed` /
`ActualEnergyReported` events both emit.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from oracle.audit import reports_on_chain
from oracle.config import to_toml
from oracle.deployments import ContractRecord, Deployment, write_deployment
from oracle.errors import StateError
from oracle.outbox import Outbox

REPO = Path(__file__).resolve().parents[2]
ANVIL = REPO / ".venv" / "bin" / "anvil"
LEDGER_CONTRACT = os.environ.get("POWERHIVE_TEST_LEDGER", "EnergyLedger")
REAL_LEDGER = LEDGER_CONTRACT == "EnergyLedger"
# The name the oracle looks the ledger up by in deployments/<chain_id>.json.
LEDGER_NAME = "EnergyLedger"
CHAIN_ID = 31337
PASSPHRASE = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Until something listens on 127.0.0.1:`port` (a node started in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class Anvil:
    """An Anvil process of our own on a free port; `--state` keeps the chain across restarts."""

    def __init__(
        self,
        port: int | None = None,
        state: Path | None = None,
        block_time: float | None = None,
        chain_id: int = CHAIN_ID,
    ):
        self.port = port or free_port()
        self.state = state
        self.block_time = block_time
        self.chain_id = chain_id
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def w3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 10}))

    def start(self) -> Anvil:
        cmd = [str(ANVIL), "--port", str(self.port), "--hardfork", "cancun", "--silent"]
        if self.state is not None:
            cmd += ["--state", str(self.state)]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        if self.chain_id != CHAIN_ID:
            cmd += ["--chain-id", str(self.chain_id)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        w3 = self.w3()

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"anvil exited with {self.proc.returncode}")
            try:
                return w3.eth.chain_id == self.chain_id
            except Exception:
                return False

        wait_for(up, 20, f"anvil on port {self.port}")
        return self

    def stop(self) -> None:
        """SIGTERM: Anvil dumps `--state` on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LedgerRig:
    """A deployed ledger and the knobs the tests turn on it."""

    w3: Web3
    address: str
    abi: list[dict[str, Any]]
    governance: str
    deploy_block: int
    real: bool = REAL_LEDGER

    @property
    def contract(self):
        return self.w3.eth.contract(address=self.address, abi=self.abi)

    def _transact(self, fn, sender: str) -> dict:
        tx_hash = fn.transact({"from": sender})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1, fn
        return receipt

    def register(self, unit: str) -> None:
        """Governance registers (or re-activates) the unit; the deployer is governance here."""
        fn = self.contract.functions
        call = fn.register_storage_unit(unit, self.governance) if self.real else fn.register(unit)
        self._transact(call, self.governance)

    def deactivate(self, unit: str) -> None:
        fn = self.contract.functions
        call = fn.remove_storage_unit(unit) if self.real else fn.deactivate(unit)
        self._transact(call, self.governance)

    def set_max_report(self, unit: str, wh: int) -> None:
        """Governance caps the unit's single report (the real ledger only)."""
        assert self.real, "MockLedger has no per-unit maximum"
        self._transact(self.contract.functions.set_unit_max_report(unit, wh), self.governance)

    def pause(self, paused: bool = True) -> None:
        """MockLedger only: every report reverts "ledger: paused"."""
        self._transact(self.contract.functions.set_paused(paused), self.governance)

    def open_session(self, consumer: str, unit: str) -> None:
        """MockLedger refuses consumption without a session; the real ledger accepts it as
        over-consumption (a session needs ENT, which only production mints), so there the
        tests report consumption without one and nothing is needed."""
        if not self.real:
            self._transact(self.contract.functions.start_session(unit, 10**18), consumer)

    def last_seq(self, unit: str) -> int:
        return self.contract.functions.last_seq(unit).call()

    def totals(self, unit: str) -> dict[tuple[str, str | None], int]:
        """What the ledger holds for `unit`, from its events: Wh per (kind, account), and the
        last actual energy — the same shape as `Outbox.totals()`."""
        c = self.contract
        totals: dict[tuple[str, str | None], int] = {}
        events = [
            (c.events.EnergyProduced, "produced", "producer"),
            (c.events.EnergyConsumed, "consumed", "consumer"),
        ]
        latest = self.w3.eth.block_number
        seqs: list[int] = []
        for event, kind, who in events:
            for log in event.get_logs(from_block=self.deploy_block, to_block=latest):
                if log.args.unit != unit:
                    continue
                key = (kind, log.args[who])
                totals[key] = totals.get(key, 0) + log.args.wh
                seqs.append(log.args.seq)
        actual = [
            log
            for log in c.events.ActualEnergyReported.get_logs(
                from_block=self.deploy_block, to_block=latest
            )
            if log.args.unit == unit
        ]
        if actual:
            last = max(actual, key=lambda log: log.args.seq)
            totals[("actual", None)] = last.args.wh
            seqs += [log.args.seq for log in actual]
        # Every sequence number was used exactly once.
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), "sequence numbers not 1..n"
        return totals

    def transaction_totals(self, unit: str) -> dict:
        """A second witness besides the events: the unit's successful transactions, decoded."""
        found = reports_on_chain(self.w3, self.contract, unit, self.deploy_block)
        assert sorted(found.seqs) == list(range(1, len(found.seqs) + 1))
        return found.totals


def ledger_artifact(compiled, name: str = LEDGER_CONTRACT) -> tuple[list[dict[str, Any]], str, str]:
    """(abi, deployment bytecode, contract name) of a ledger; `compiled` is the conftest's
    fixture (`tests/oracle/artifacts.py`: Ape's project or the `.build` manifest)."""
    abi, bytecode = compiled(name)
    return abi, bytecode, name


def deploy_ledger(w3: Web3, artifact: tuple[list, str, str], deployments_dir: Path) -> LedgerRig:
    abi, bytecode, name = artifact
    real = name == "EnergyLedger"
    governance = w3.eth.accounts[0]
    factory = w3.eth.contract(abi=abi, bytecode=bytecode)
    args = (governance,) if real else ()
    receipt = w3.eth.wait_for_transaction_receipt(
        factory.constructor(*args).transact({"from": governance}), timeout=30
    )
    address = receipt["contractAddress"]
    deployment = Deployment(
        chain_id=CHAIN_ID,
        network="ethereum:local:anvil",
        deployer=governance,
        deploy_block=receipt["blockNumber"],
        evm_version="cancun",
        contracts={LEDGER_NAME: ContractRecord(address, receipt["blockNumber"], abi)},
    )
    write_deployment(deployment, deployments_dir, force=True)
    return LedgerRig(w3, address, abi, governance, receipt["blockNumber"], real)


class Counters:
    """A SmartPi-style meter whose counters the test sets."""

    def __init__(self, directory: Path, name: str):
        self.dir = directory / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.set(1000, 2000, 5000)

    def set(self, imp: int, exp: int, stored: int | None = None) -> None:
        self.imp, self.exp = imp, exp
        files = {"consumecounter": imp, "producecounter": exp}
        if stored is not None:
            files["stored"] = stored
        for name, value in files.items():
            tmp = self.dir / f".{name}"
            tmp.write_text(f"{value}.00000000")
            os.replace(tmp, self.dir / name)

    def add(self, imp: int = 0, exp: int = 0, stored: int | None = None) -> None:
        self.set(self.imp + imp, self.exp + exp, stored)

    def meter(self, name: str, rated_power_w: float = 1e9, stored: bool = True) -> dict:
        options = {"counter_dir": str(self.dir)}
        if stored:
            options["stored_file"] = "stored"
        return {
            "name": name,
            "driver": "smartpi",
            "rated_power_w": rated_power_w,
            "options": options,
        }


@dataclass
class Unit:
    address: str
    key: bytes
    keystore: Path


def make_unit(w3: Web3, directory: Path, *, fund: bool = True) -> Unit:
    """A fresh unit key in a cheap-to-decrypt keystore (tests only), funded for gas."""
    account = Account.create()
    keystore = directory / f"unit-{account.address[2:10]}.json"
    data = Account.encrypt(account.key, PASSPHRASE, kdf="scrypt", iterations=2**4)
    keystore.write_text(json.dumps(data))
    if fund:
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction(
                {"from": w3.eth.accounts[0], "to": account.address, "value": 10**20}
            )
        )
    return Unit(account.address, bytes(account.key), keystore)


@dataclass
class OracleSetup:
    """Everything needed to write an `oracle.toml` for a test."""

    root: Path
    rpc_url: str
    deployments_dir: Path
    unit: Unit
    meters: list[dict[str, Any]] = field(default_factory=list)
    channels: list[dict[str, Any]] = field(default_factory=list)
    service: dict[str, Any] = field(default_factory=dict)
    chain: dict[str, Any] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def data(self) -> dict[str, Any]:
        return {
            "service": {
                "state_dir": str(self.state_dir),
                "period_s": 0.2,
                "http_enabled": False,
                "log_level": "INFO",
                "stop_drain_s": 5.0,
                **self.service,
            },
            "chain": {
                "rpc_url": self.rpc_url,
                "chain_id": CHAIN_ID,
                "deployments_dir": str(self.deployments_dir),
                "keystore": str(self.unit.keystore),
                "rpc_timeout_s": 2.0,
                "rpc_retries": 1,
                "retry_max_s": 1.0,
                "settle_timeout_s": 5.0,
                "tx_timeout_s": 10.0,
                **self.chain,
            },
            "meters": self.meters,
            "channels": self.channels,
        }

    def write(self, name: str = "oracle.toml") -> Path:
        path = self.root / name
        path.write_text(to_toml(self.data()))
        return path

    def outbox(self) -> Outbox:
        return Outbox(self.state_dir / "outbox.sqlite", readonly=True)


class OracleProcess:
    """`python -m oracle run` in a subprocess: killable like the real thing.

    Every started process is remembered in `OracleProcess.started` so the test teardown can
    kill what a failing test left running.
    """

    started: list[OracleProcess] = []  # noqa: RUF012 - test bookkeeping

    command = "run"

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None):
        self.config, self.log, self.proc = config, log, None
        self.preexec_fn = None  # e.g. resource limits for the child
        self.env = {
            **os.environ,
            "POWERHIVE_ORACLE_PASSPHRASE": PASSPHRASE,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }

    def start(self) -> OracleProcess:
        self._fh = open(self.log, "a")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "oracle", self.command, "--config", str(self.config)],
            cwd=REPO,
            env=self.env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=self.preexec_fn,
        )
        OracleProcess.started.append(self)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def handles_stop_signals(self) -> bool:
        """True once `oracle run` caught SIGTERM (it installs SIGINT's handler first), read
        from the kernel's mask of caught signals: a condition to wait on, not a sleep."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except FileNotFoundError:
            return False
        caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
        return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))

    def signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def stopped(self) -> bool:
        """True while the process is stopped by SIGSTOP (state T in /proc/<pid>/status)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except FileNotFoundError:
            return False
        state = next(line for line in status.splitlines() if line.startswith("State:"))
        return state.split()[1] == "T"

    def signals_at_once(self, *sigs: int) -> None:
        """Delivers `sigs` together: queued while the process is stopped (SIGSTOP), then all
        pending at its SIGCONT. Sent one by one to a running process, a loaded host may run
        the whole stop between two of them, and a signal after the exit is never seen."""
        self.signal(signal.SIGSTOP)
        wait_for(self.stopped, 30, "the process stopped by SIGSTOP", every=0.005)
        for sig in sigs:
            self.signal(sig)
        self.signal(signal.SIGCONT)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._fh.close()

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.wait()

    def log_text(self) -> str:
        return self.log.read_text()


def depth(setup: OracleSetup) -> int:
    try:
        box = setup.outbox()
    except StateError:  # not created yet
        return -1
    try:
        return box.depth()
    finally:
        box.close()


def machine() -> str:
    """The host, for the benchmarks' reports: cores, CPU model and Python version."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"
