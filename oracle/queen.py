"""The hive queen (`oracle queen`): reads every worker's meter at each period boundary of the
hive's market and submits the period to `HiveMarket.submit`, in batches, each period once.

Two threads, the unit service's shape:

- **Reader.** The market's periods are chain time: period `p` ends at `start + (p + 1) *
  period_seconds` (both read from the market once, at the first start). The queen's clock is
  the chain's: the newest block's timestamp carried forward on the monotonic clock, never
  behind the wall clock, never going back. Once a period has ended the reader reads every
  meter, turns counters into deltas (`oracle.accounting`: resets, glitches, implausible jumps
  as for a unit), and commits the period's row (every worker's Wh produced = export growth,
  Wh consumed = import growth), the new baselines and the next period in one SQLite
  transaction, before anything is sent. A reading that covers several ended periods (the
  queen was off, a meter failed) splits each worker's delta evenly over them, so nothing is
  lost and each period stays within the rated maximum it would have had. A meter that cannot
  be read keeps its baseline: its energy goes into the next period it is read.
- **Sender.** For the oldest pending period, reads what the chain holds (the market's
  `next_period`, whether it is open and each worker's `settled_period`), and submits only the
  workers the chain has not settled, in batches of `batch_size`, the first one declaring the
  period's totals. At start, and after any doubt (a receipt that did not come, a refusal that
  means the chain moved), it first waits until none of its own transactions is pending, so a
  transaction broadcast before a SIGKILL is counted before anything is sent again; the
  market's per-worker guard refuses any copy anyway.

Refusals the operator must fix (not the queen, a worker not in the hive, a worker above its
rated maximum, the worker sets differing) stop the queen: one critical line, exit 1, the
period kept pending in the outbox. "owner deposit short" and "period not over" (the chain's
clock behind) are waited out.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from web3.exceptions import BadFunctionCallOutput, ContractLogicError, TransactionNotFound

from oracle.accounting import Baseline, Limits, account
from oracle.chain import ChainClient, SignedReport, revert_reason
from oracle.daemon import close_service, health_endpoint, released_on_failure
from oracle.drivers import DriverContext, MeterDriver, driver_class
from oracle.errors import (
    ChainError,
    ChainUnavailable,
    MeterError,
    OracleError,
    OutboxUnavailable,
    ReportReverted,
    StateError,
    TxPending,
    UnitUnfunded,
)
from oracle.lifecycle import CrashPoints, StopRequest
from oracle.metrics import HttpEndpoint, MetricSet
from oracle.queen_config import QueenConfig
from oracle.queen_store import SETTLING, Entry, Period, QueenStore
from oracle.retry import backoff
from oracle.statelock import StateLock
from oracle.wiring import check_served_chain, contract, load_key

log = logging.getLogger("oracle.queen")

STATE_FILE = "queen.sqlite"
LOCK_FILE = "queen.lock"
CRASH_ENV = "POWERHIVE_QUEEN_CRASHPOINT"
# Refusals meaning the chain moved under the queen (its own earlier transaction, mined after
# all): read the chain again.
RECONCILE_REASONS = ("wrong period", "worker already settled")
# How often the retention runs (seconds; at start too).
PRUNE_EVERY_S = 3600.0
# Refusals that pass by themselves or by someone else's action: wait and try again.
WAIT_REASONS = ("period not over", "owner deposit short")


class QueenRefused(OracleError):
    """The market refuses the period for a reason the operator must fix."""


class _Reconcile(Exception):
    pass


class _Wait(Exception):
    pass


def boot_clock() -> str | None:
    """The clock domain of `time.monotonic()`: comparable within one boot."""
    try:
        return "boot:" + Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def split(wh: int, parts: int) -> list[int]:
    """`wh` over `parts` periods, as even as integers allow, summing to `wh` exactly."""
    base, rest = divmod(wh, parts)
    return [base + (1 if i < rest else 0) for i in range(parts)]


def _word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def unpack(word: int, worker: str) -> Entry:
    """A market entry word back into (worker, produced, consumed); `worker` is the address
    of the index the word names (`QueenClient.member`)."""
    return Entry(worker, (word >> 192) & (2**32 - 1), (word >> 160) & (2**32 - 1))


@dataclass(frozen=True)
class SettledBatch:
    tx_hash: str
    block_number: int
    block_hash: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class MarketState:
    start: int
    period_seconds: int
    next_period: int
    workers: int
    submitted: int
    open: bool
    queen: str
    deposit: int


class QueenMetrics(MetricSet):
    def __init__(self) -> None:
        super().__init__()
        c, g = self.counter, self.gauge
        self.readings = c("queen_readings", "Meter readings", "worker")
        self.reading_errors = c("queen_reading_errors", "Meter reads that failed", "worker")
        self.anomalies = c("queen_anomalies", "Counter resets, glitches, jumps", "worker", "kind")
        self.recorded = c("queen_periods_recorded", "Periods written")
        self.settled = c("queen_periods_settled", "Periods the chain settled")
        self.batches = c("queen_batches", "submit transactions by outcome", "outcome")
        self.energy = c("queen_energy_submitted_wh", "Wh in mined batches", "kind")
        self.gas = c("queen_gas_used", "Gas used by mined batches")
        self.depth = g("queen_outbox_depth", "Periods recorded, not settled")
        self.chain_up = g("queen_chain_up", "1 when the last chain call worked")
        self.last_settled = g("queen_last_settled_period", "The newest period the chain settled")
        self.foreign = c(
            "queen_foreign_periods",
            "Periods settled (partly) by transactions the outbox did not sign",
        )
        self.mismatched = c(
            "queen_chain_mismatch_periods",
            "Periods the chain settled with other numbers than the outbox recorded",
        )
        self.reorged = c(
            "queen_reorged_periods", "Settled periods a reorganisation took back (sent again)"
        )
        self.already_settled = c(
            "queen_already_settled_workers",
            "Workers the chain answered 'already settled' for, taken as done",
        )
        self.pruned = c("queen_periods_pruned", "Final periods deleted by the retention")
        self.chain_time = g("queen_chain_time_seconds", "The queen's estimate of the chain's time")


class QueenClient(ChainClient):
    """The chain client (retries, PoA, fees, nonces) pointed at the HiveMarket, `unit` being
    the queen's address."""

    # Where the market's events start (its deployment block).
    market_from_block: int = 0

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        # The market's index of each worker in its hive (`worker(w).index`, fixed from its
        # first enrolment there and never reused): entries name workers by it.
        self.indices: dict[str, int] = {}
        self._members: dict[tuple[int, int], str] = {}

    @property
    def market(self):
        return self.ledger

    def view(self, name: str, *args: Any) -> Any:
        self._ensure_poa()
        try:
            return self.rpc(getattr(self.market.functions, name)(*args).call)
        except ContractLogicError as exc:
            raise ChainError(
                f"the contract at {self.market.address} on {self.rpc_url} is not a HiveMarket "
                f"({name} reverted: {revert_reason(exc)}): check chain.market and the "
                "deployments file"
            ) from None
        except BadFunctionCallOutput:
            raise ChainError(
                f"no HiveMarket at {self.market.address} on {self.rpc_url} (wrong chain or "
                "deployment?)"
            ) from None

    def market_state(self, hive: int) -> MarketState:
        m = self.view("market", hive)
        return MarketState(
            int(m[0]), int(m[1]), int(m[2]), int(m[4]), int(m[5]), bool(m[6]),
            to_checksum_address(m[7]), int(m[8]),
        )  # fmt: skip

    def worker_state(self, worker: str, block: str = "latest") -> tuple[int, int, int]:
        """(hive, settled period (-1: none), rated maximum Wh (0: not enrolled)) at `block`;
        also notes the worker's index in its hive, which `sign_submit`'s entries name it by."""
        self._ensure_poa()
        try:
            w = self.rpc(self.market.functions.worker(worker).call, block_identifier=block)
        except (ContractLogicError, BadFunctionCallOutput):
            w = self.view("worker", worker)  # the one-line error for a contract that is not
        self.indices[worker] = int(w[6])
        return int(w[0]), int(w[2]), int(w[3])

    def batches(self, hive: int, period: int, from_block: int) -> list[SettledBatch]:
        """The market's `BatchSettled` events of `period` (in chain order)."""
        self._ensure_poa()
        event = self.market.events.BatchSettled()
        query = {
            "address": self.market.address,
            "topics": [self.market.events.BatchSettled.topic, _word(hive), _word(period)],
        }
        raw = self.logs(
            lambda first, last: self.w3.eth.get_logs(
                {**query, "fromBlock": first, "toBlock": last}
            ),
            from_block,
        )
        out = []
        for entry in raw:
            log = event.process_log(entry)
            out.append(
                SettledBatch(
                    log["transactionHash"].to_0x_hex(),
                    int(log["blockNumber"]),
                    log["blockHash"].to_0x_hex(),
                    tuple(unpack(word, self.member(hive, word)) for word in log["args"]["entries"]),
                )
            )
        return out

    def member(self, hive: int, word: int) -> str:
        """The worker an entry word names by its index in `hive` (`member`; cached: an index
        is never reused)."""
        key = (hive, word & (2**16 - 1))
        if key not in self._members:
            address = self.view("member", (hive << 16) | key[1])
            self._members[key] = to_checksum_address(address)
        return self._members[key]

    def receipt(self, tx_hash: str) -> dict | None:
        try:
            return self.rpc(self.w3.eth.get_transaction_receipt, tx_hash)
        except TransactionNotFound:
            return None

    def head(self) -> tuple[int, str, int]:
        """The newest block: (number, hash, timestamp)."""
        block = self.rpc(self.w3.eth.get_block, "latest")
        return int(block["number"]), block["hash"].to_0x_hex(), int(block["timestamp"])

    def sign_submit(self, hive: int, period: Period, batch: list[Entry]) -> SignedReport:
        """Estimate and sign one `submit`; `ReportReverted` when the market would refuse it."""
        return self.sign_call(
            lambda: self.market.functions.submit(
                hive,
                period.period,
                period.production,
                period.consumption,
                [e.packed(self.indices[e.worker]) for e in batch],
            ),
            "submit",
            period.period,
            len(batch),
            "queen",
        )


class Queen:
    def __init__(
        self,
        config: QueenConfig,
        chain: QueenClient,
        store: QueenStore,
        drivers: dict[str, MeterDriver],
        *,
        lock: StateLock | None = None,
        crashpoints: CrashPoints | None = None,
    ):
        self.config = config
        self.hive = config.queen.hive
        self.chain = chain
        self.store = store
        self.drivers = drivers
        self.address = chain.unit
        self.metrics = QueenMetrics()
        self.crash = crashpoints or CrashPoints(env=CRASH_ENV)
        self._lock = lock
        self._stop = threading.Event()
        self._boot = boot_clock()
        self._clock_lock = threading.Lock()
        self._anchor: tuple[float, float] | None = None  # (chain ts, monotonic) observed
        self._settled = False  # no own transaction pending, known since the last doubt
        self._chain_ok = False
        self._verified = False  # chain id, market, queen and workers checked since start
        self._waiting: str | None = None
        self._meter_problems: dict[str, str] = {}
        self._pruned_at = -float("inf")
        self._confirmed_at: tuple | None = None  # (head, periods) last checked
        self.fatal: str | None = None
        self.http: HttpEndpoint | None = None
        self.metrics.depth.set(store.counts()["pending"])
        last = store.last_settled()
        if last is not None:
            self.metrics.last_settled.set(last["period"])
        self.http = health_endpoint(
            config.service, self.metrics, self.health, thread_name="queen-http"
        )

    # -- binding and clock -------------------------------------------------------------------

    def bind(self) -> MarketState:
        """Check the chain, the market, the queen and the workers; tie the outbox to them."""
        c = self.config.chain
        check_served_chain(c.rpc_url, self.chain.connect(), c.chain_id)
        state = self.chain.market_state(self.hive)
        if state.period_seconds == 0:
            raise QueenRefused(
                f"hive {self.hive} has no open market on {self.chain.market.address} "
                "(the hive owner calls open_market first)"
            )
        self._check(state)
        self.store.bind(
            chain_id=str(c.chain_id),
            market=self.chain.market.address,
            hive=str(self.hive),
            start=str(state.start),
            period_seconds=str(state.period_seconds),
        )
        if self.store.next_to_record() is None:
            # The first period this queen measures: the chain's next one. Periods that ended
            # before its first reading are submitted as zero (it measured nothing of them).
            self.store.record([], {}, state.next_period)
        self._chain_ok = self._verified = True
        return state

    def _check(self, state: MarketState) -> None:
        if state.queen != self.address:
            raise QueenRefused(
                f"{self.address} is not the queen of hive {self.hive} (the market's queen is "
                f"{state.queen}): run with the queen's keystore, or the hive owner calls "
                "set_queen"
            )
        if not state.open and state.workers != len(self.config.workers):
            raise QueenRefused(
                f"hive {self.hive} has {state.workers} workers enrolled on the market, the "
                f"config meters {len(self.config.workers)}: every enrolled worker needs a "
                "[[workers]] entry and every entry an enrolled worker"
            )

    def observe(self, ts: float) -> None:
        with self._clock_lock:
            if self._anchor is None or ts > self._estimate():
                self._anchor = (float(ts), time.monotonic())

    def _estimate(self) -> float:
        if self._anchor is None:
            return 0.0
        ts, mono = self._anchor
        return ts + (time.monotonic() - mono)

    def now(self) -> float:
        """The chain's time as the queen knows it (never behind the wall clock)."""
        with self._clock_lock:
            return max(time.time(), self._estimate())

    def current_period(self) -> int | None:
        meta = self.store.meta()
        if "start" not in meta:
            return None
        start, length = int(meta["start"]), int(meta["period_seconds"])
        now = self.now()
        return 0 if now < start else int(now - start) // length

    # -- reader ------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        """A reading per worker; None for a meter that failed (its baseline stays)."""
        readings: dict[str, Any] = {}
        for w in self.config.workers:
            driver = self.drivers[w.address]
            try:
                reading = driver.read()
            except MeterError as exc:
                readings[w.address] = None
                self._meter_problems[w.name] = str(exc)
                self.metrics.reading_errors.labels(w.name).inc()
                log.warning("meter read failed", extra={"worker": w.name, "error": str(exc)})
                continue
            except Exception as exc:
                readings[w.address] = None
                self._meter_problems[w.name] = f"{type(exc).__name__}: {exc}"
                self.metrics.reading_errors.labels(w.name).inc()
                log.exception("meter driver failed", extra={"worker": w.name})
                driver.close()
                continue
            if reading.clock is None:
                reading = replace(reading, monotonic=time.monotonic(), clock=self._boot)
            self._meter_problems.pop(w.name, None)
            self.metrics.readings.labels(w.name).inc()
            readings[w.address] = reading
        return readings

    def record_due(self) -> bool:
        """Take missing baselines; record every period that has ended. True if it wrote."""
        nxt = self.store.next_to_record()
        current = self.current_period()
        if nxt is None or current is None:
            return False
        old = self.store.baselines()
        missing = any(
            w.address not in old or old[w.address][0] != w.fingerprint()
            for w in self.config.workers
        )
        if current <= nxt and not missing:
            return False
        readings = self._read()
        baselines: dict[str, tuple[str, Baseline]] = {}
        energy: dict[str, tuple[int, int]] = {}
        for w in self.config.workers:
            reading = readings[w.address]
            energy[w.address] = (0, 0)
            if reading is None:
                continue
            fp = w.fingerprint()
            prev = old.get(w.address)
            if prev is None or prev[0] != fp:
                baselines[w.address] = (fp, Baseline.of(reading))
                continue
            delta = account(
                prev[1], reading, Limits(w.rated_power_w, w.plausibility_margin, w.rollover_wh)
            )
            for a in delta.anomalies:
                self.metrics.anomalies.labels(w.name, a.kind).inc()
                log.warning("meter anomaly", extra={"worker": w.name, "detail": a.detail})
            baselines[w.address] = (fp, delta.baseline)
            energy[w.address] = (delta.export_wh, delta.import_wh)
        periods: list[Period] = []
        if current > nxt:
            parts = current - nxt
            shares = {a: (split(p, parts), split(c, parts)) for a, (p, c) in energy.items()}
            for i in range(parts):
                periods.append(
                    Period(
                        nxt + i,
                        tuple(
                            Entry(w.address, shares[w.address][0][i], shares[w.address][1][i])
                            for w in self.config.workers
                        ),
                    )
                )
        self.store.record(periods, baselines, max(current, nxt))
        self.metrics.depth.set(self.store.counts()["pending"])
        for p in periods:
            self.metrics.recorded.inc()
            log.info(
                "period recorded",
                extra={
                    "period": p.period,
                    "production": p.production,
                    "consumption": p.consumption,
                },
            )
        if periods:
            self.crash.hit("after_record")
        return True

    def _reader(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.record_due()
                failures = 0
            except OutboxUnavailable as exc:
                failures += 1
                log.warning(str(exc))
            except Exception:
                failures += 1
                log.exception("recording failed")
            self._stop.wait(
                min(self.config.service.poll_s, 0.25)
                if not failures
                else backoff(failures, self.config.service.retry_max_s)
            )

    # -- sender ------------------------------------------------------------------------------

    def turn(self) -> bool:
        head = self.chain.head()
        self.observe(head[2])
        self.metrics.chain_time.set(self.now())
        self._chain_ok = True
        self.metrics.chain_up.set(1)
        if not self._verified:
            try:
                self.bind()
            except ChainUnavailable:
                raise
            except ChainError as exc:  # the wrong chain or contract: the operator's to fix
                raise QueenRefused(str(exc)) from None
        if not self._settled:
            if not self.chain.wait_settled(
                self.config.chain.settle_timeout_s, give_up=self._stop.is_set
            ):
                raise ChainUnavailable("the queen's own transactions are still pending")
            self._settle_txs()
            self._settled = True
        self.confirm(head[:2])
        self._prune()
        period = self.store.oldest_pending()
        self.metrics.depth.set(self.store.counts()["pending"])
        if period is None:
            self._waiting = None
            return False
        try:
            self.deliver(period)
        except _Reconcile as exc:
            log.info("the chain moved; reading it again", extra={"reason": str(exc)})
            self._settled = False
            # A chain that keeps moving under the queen is read again at the poll's pace.
            self._stop.wait(min(self.config.service.poll_s, 1.0))
        return True

    def _settle_txs(self) -> None:
        """With nothing of ours pending, every transaction still marked `sent` was mined (its
        receipt not recorded before a crash) or never got out (`dropped`)."""
        for tx in self.store.txs():
            if tx["status"] != "sent":
                continue
            try:
                receipt = self.chain.rpc(self.chain.w3.eth.get_transaction_receipt, tx["tx_hash"])
            except TransactionNotFound:
                self.store.tx_done(tx["tx_hash"], "dropped", None, None)
                continue
            status = "mined" if receipt["status"] == 1 else "reverted"
            self.store.tx_done(
                tx["tx_hash"],
                status,
                int(receipt["blockNumber"]),
                int(receipt["gasUsed"]),
                receipt["blockHash"].to_0x_hex(),
            )

    def deliver(self, period: Period) -> None:
        state = self.chain.market_state(self.hive)
        self._check(state)
        if state.next_period > period.period:
            self._settled_period(period)
            return
        if state.next_period < period.period:
            raise StateError(
                f"the market of hive {self.hive} expects period {state.next_period} next, the "
                f"outbox's oldest unsettled period is {period.period}: another queen's "
                "outbox, or periods lost from this one; use the state_dir that submitted "
                f"period {state.next_period - 1}"
            )
        if not state.open and len(period.entries) != state.workers:
            raise QueenRefused(
                f"period {period.period} was recorded for {len(period.entries)} workers, the "
                f"market of hive {self.hive} has {state.workers} enrolled now: enrol or remove "
                "workers so that they match the period's (see docs/oracle.md, queen mode)"
            )
        names = {w.address: w.name for w in self.config.workers}
        done = self.store.done_workers(period.period)
        todo = []
        for e in period.entries:
            hive, settled, cap = self.chain.worker_state(e.worker)
            name = names.get(e.worker, "not in the config")
            if hive != self.hive or cap == 0:
                raise QueenRefused(
                    f"worker {e.worker} ({name}) is not a worker of hive {self.hive} on the "
                    "market: the hive owner enrols it, or remove it from the config"
                )
            if (state.open and settled >= period.period) or e.worker in done:
                continue
            for what, wh in (("produced", e.produced), ("consumed", e.consumed)):
                if wh > cap:
                    raise QueenRefused(
                        f"period {period.period}: worker {e.worker} ({name}) {what} {wh} Wh, "
                        f"above its rated maximum of {cap} Wh per period on the market: check "
                        "the meter, or the hive owner enrols it with a higher maximum"
                    )
            todo.append(e)
        size = self.config.queen.batch_size
        for start in range(0, len(todo), size):
            self._submit(period, start // size, todo[start : start + size])
        if self.chain.market_state(self.hive).next_period > period.period:
            self._settled_period(period)
        elif not todo:
            # Every worker sent or taken as done on the chain's word, the period not closed:
            # the chain has yet to show the rest (read again at the poll's pace, nothing sent).
            raise _Wait(
                f"period {period.period}: every worker is settled or taken as done, the "
                "market has not closed the period yet"
            )

    def _submit(self, period: Period, index: int, batch: list[Entry]) -> None:
        try:
            signed = self.chain.sign_submit(self.hive, period, batch)
        except ReportReverted as exc:
            if "worker already settled" in exc.reason:
                self._already_settled(period, index, batch, exc.reason)
            self._refused(period, exc.reason)
        self.store.tx_sent(signed.tx_hash, period.period, index, signed.nonce, len(batch))
        self.crash.hit("before_broadcast")
        self.chain.broadcast(signed)
        self.crash.hit("after_broadcast")
        try:
            mined = self.chain.wait_mined(signed, give_up=self._stop.is_set)
        except TxPending:
            self._settled = False
            raise
        except ReportReverted as exc:
            self.store.tx_done(signed.tx_hash, "reverted", None, None)
            self.metrics.batches.labels("reverted").inc()
            raise _Reconcile(f"batch {index} of period {period.period} reverted on chain") from exc
        self.store.tx_done(
            signed.tx_hash, "mined", mined.block_number, mined.gas_used, mined.block_hash
        )
        self.metrics.batches.labels("mined").inc()
        self.metrics.gas.inc(mined.gas_used)
        self.metrics.energy.labels("produced").inc(sum(e.produced for e in batch))
        self.metrics.energy.labels("consumed").inc(sum(e.consumed for e in batch))
        self._waiting = None
        log.info(
            "batch mined",
            extra={
                "period": period.period,
                "batch": index,
                "workers": len(batch),
                "tx": signed.tx_hash,
                "gas": mined.gas_used,
            },
        )
        self.crash.hit("after_batch")

    def _refused(self, period: Period, reason: str):
        if any(r in reason for r in RECONCILE_REASONS):
            raise _Reconcile(reason)
        if any(r in reason for r in WAIT_REASONS):
            raise _Wait(f"period {period.period}: {reason}")
        raise QueenRefused(
            f"hive {self.hive} period {period.period}: the market refuses the queen's "
            f"submission: {reason}; nothing was sent, the period stays in the outbox"
        )

    def _already_settled(self, period: Period, index: int, batch: list[Entry], reason: str) -> None:
        """The market says a worker of `batch` is already settled for the period: check each
        one's `settled_period` (latest and pending state); those the chain shows settled are
        done for this period (kept in the outbox, never sent again), the rest go out at
        once. With none of them settled on the chain, it is read again (`_Reconcile`)."""
        done = []
        for e in batch:
            settled = max(
                self.chain.worker_state(e.worker, block)[1] for block in ("latest", "pending")
            )
            if settled >= period.period:
                done.append(e.worker)
        if not done:
            raise _Reconcile(reason)
        self.store.mark_done(period.period, done)
        self.metrics.already_settled.inc(len(done))
        log.warning(
            "the market has workers of the period settled already: taken as done",
            extra={"period": period.period, "workers": done},
        )
        rest = [e for e in batch if e.worker not in done]
        if rest:
            self._submit(period, index, rest)
        raise _Reconcile(f"period {period.period}: {len(done)} workers settled already")

    def _settled_period(self, period: Period) -> None:
        """The chain has the whole period: its `BatchSettled` events are what was settled.
        Those this outbox did not sign are adopted (kept for the reorg check); numbers that
        differ from the recorded ones are reported (one error line, a metric) and the
        chain's are recorded in their place. Nothing is sent for the period again."""
        txs = self.store.txs()
        ours = {t["tx_hash"].lower() for t in txs if t["status"] == "mined"}
        # The market takes period p only once p - 1 is closed: its batches are in blocks from
        # the one that closed p - 1 on (less `confirmations`, for a block that moved since),
        # not from the market's deployment (a read of every block since, on a long chain).
        before = [
            t["block_number"]
            for t in txs
            if t["period"] == period.period - 1
            and t["status"] in SETTLING
            and t["block_number"] is not None
        ]
        since = self.chain.market_from_block
        if before:
            since = max(since, max(before) - self.config.chain.confirmations)
        batches = self.chain.batches(self.hive, period.period, since)
        chain: dict[str, Entry] = {}
        for b in batches:
            if b.tx_hash.lower() not in ours:
                self.store.adopt_tx(
                    b.tx_hash, period.period, len(b.entries), b.block_number, b.block_hash
                )
            chain.update({e.worker: e for e in b.entries})
        recorded = {e.worker: e for e in period.entries}
        foreign = sum(len(b.entries) for b in batches if b.tx_hash.lower() not in ours)
        differ = [w for w in recorded if w in chain and chain[w] != recorded[w]]
        entries = mismatch = None
        if differ or set(chain) - set(recorded):
            order = [e.worker for e in period.entries] + sorted(set(chain) - set(recorded))
            entries = tuple(chain.get(w, recorded.get(w)) for w in order)
            detail = "; ".join(
                f"{w}: chain {chain[w].produced}/{chain[w].consumed} Wh, outbox "
                f"{recorded[w].produced}/{recorded[w].consumed} Wh"
                for w in differ[:4]
            )
            mismatch = (
                f"period {period.period} of hive {self.hive}: the chain settled other numbers "
                f"than this outbox recorded for {len(differ)} of its {len(recorded)} workers "
                f"({detail}{'; ...' if len(differ) > 4 else ''}); the chain's are recorded: "
                "another queen process uses this key (stop it), or the outbox was restored "
                "from an older backup"
            )
            self.metrics.mismatched.inc()
            log.error(mismatch)
        if foreign:
            self.metrics.foreign.inc()
            log.warning(
                "period settled (partly) by transactions this outbox did not sign",
                extra={"period": period.period, "workers": foreign},
            )
        self.store.mark_settled(period.period, entries, mismatch)
        self.metrics.settled.inc()
        self.metrics.last_settled.set(period.period)
        self.metrics.depth.set(self.store.counts()["pending"])
        log.info("period settled", extra={"period": period.period})

    def confirm(self, head: tuple[int, str]) -> None:
        """Each settled period not final yet: its settling transactions looked up again. One
        that moved to another block is followed; one gone from the chain (a reorganisation
        dropped it) sends the period back to pending, to be delivered again (the market
        refuses whatever it still has). Final once all have `confirmations` blocks on top."""
        periods = self.store.unfinal()
        if not periods:
            return
        # Receipts change only with the head (a reorganisation changes its hash too).
        seen = (head, tuple(periods))
        if seen == self._confirmed_at:
            return
        head_number = head[0]
        need = self.config.chain.confirmations
        txs: dict[int, list[dict]] = {}
        for t in self.store.txs():
            if t["status"] in SETTLING:
                txs.setdefault(t["period"], []).append(t)
        for p in periods:
            gone, deepest = [], head_number
            for t in txs.get(p, []):
                receipt = self.chain.receipt(t["tx_hash"])
                if receipt is None or receipt["status"] != 1:
                    gone.append(t["tx_hash"])
                    continue
                block, block_hash = int(receipt["blockNumber"]), receipt["blockHash"].to_0x_hex()
                if (block, block_hash) != (t["block_number"], t["block_hash"]):
                    self.store.moved(t["tx_hash"], block, block_hash)
                deepest = min(deepest, block)
            if gone:
                self.store.reorged(p, gone)
                self.chain.reset_nonce()  # the chain's nonce went back with the blocks
                self._settled = False
                self.metrics.reorged.inc()
                self.metrics.depth.set(self.store.counts()["pending"])
                log.warning(
                    "a reorganisation dropped a settled period: sending it again",
                    extra={"period": p, "txs": gone},
                )
            elif not txs.get(p) or head_number - deepest >= need:
                self.store.mark_final(p)
                log.info(
                    "period final", extra={"period": p, "confirmations": head_number - deepest}
                )
        self._confirmed_at = (head, tuple(self.store.unfinal()))

    def _prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        gone = self.store.prune(time.time() - self.config.service.retain_days * 86400)
        if gone:
            self.metrics.pruned.inc(gone)
            log.info("settled periods past the retention deleted", extra={"periods": gone})

    # -- running -----------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        problems = []
        if self.fatal:
            problems.append(self.fatal)
        if not self._chain_ok:
            problems.append("the chain is unreachable")
        if self._waiting:
            problems.append(self._waiting)
        # Mismatches stay until the operator acknowledges them (kept in the outbox).
        problems += [
            f"{line} (once explained, acknowledge it: oracle queen-ack {period}, with this "
            "queen's --config)"
            for period, line in self.store.mismatches()
        ]
        problems += [f"meter {n}: {p}" for n, p in sorted(self._meter_problems.items())]
        counts = self.store.counts()
        detail = {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "outbox_depth": counts["pending"],
            "settled": counts["settled"],
            "next_to_record": self.store.next_to_record(),
            "chain_time": self.now(),
            "queen": self.address,
            "hive": self.hive,
        }
        return not problems, detail

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self, *, stop: StopRequest | None = None) -> int:
        if stop is not None:
            stop.on_stop(self.stop)
        if self.http is not None:
            self.http.start()
        reader = threading.Thread(target=self._reader, name="queen-reader", daemon=True)
        reader.start()
        log.info(
            "queen started",
            extra={
                "queen": self.address,
                "hive": self.hive,
                "workers": len(self.config.workers),
                "http_port": self.http.port if self.http else None,
            },
        )
        poll = self.config.service.poll_s
        failures = 0
        while not self._stop.is_set():
            try:
                progress = self.turn()
                failures = 0
            except (QueenRefused, StateError) as exc:
                self.fatal = " ".join(str(exc).split())
                log.critical(self.fatal)
                break
            except _Wait as exc:
                self._waiting = str(exc)
                failures += 1
                log.warning("waiting", extra={"reason": str(exc)})
                self._stop.wait(min(poll, backoff(failures, self.config.service.retry_max_s)))
                continue
            except (ChainError, OutboxUnavailable) as exc:
                failures += 1
                self._settled = False  # a transaction may have gone out: count it first
                self._chain_ok = isinstance(exc, OutboxUnavailable | UnitUnfunded)
                self.metrics.chain_up.set(0 if not self._chain_ok else 1)
                log.warning("submission failed, retrying", extra={"error": str(exc)})
                self._stop.wait(backoff(failures, self.config.service.retry_max_s))
                continue
            except Exception:
                failures += 1
                log.exception("queen turn failed")
                self._stop.wait(backoff(failures, self.config.service.retry_max_s))
                continue
            if not progress:
                self._stop.wait(poll)
        log.info("stopping")
        self._stop.set()
        reader.join(timeout=10)
        self.close()
        log.info("queen stopped")
        return 1 if self.fatal else 0

    def close(self) -> None:
        closers = [d.close for d in self.drivers.values()]
        close_service(self.http, self._lock, *closers, self.store.close)


def make_client(config: QueenConfig, account, address: str) -> QueenClient:
    c = config.chain
    record = contract(c.deployments_dir, c.chain_id, c.market)
    client = QueenClient(
        account=account,
        unit=address,
        ledger_address=record.address,
        ledger_abi=record.abi,
        **c.client_options(),
    )
    client.market_from_block = record.block
    return client


def open_queen(
    config: QueenConfig,
    *,
    passphrase: str | None = None,
    crashpoints: CrashPoints | None = None,
) -> Queen:
    """Everything `oracle queen` checks before it starts, each failure one `OracleError` line:
    the state lock, the key, the market, and (when the chain answers) the chain id, the
    queen and the worker count. A chain down at start is waited for, unless the outbox was
    never bound (then the market's start and period length are not known yet either, and
    the first turn binds it)."""
    state_dir = config.service.state_dir
    with released_on_failure(StateLock(state_dir, what="queen", lock_file=LOCK_FILE)) as lock:
        c = config.chain
        account = load_key(c.keystore, c.passphrase_file, c.passphrase_env, passphrase)
        address = to_checksum_address(account.address)
        client = make_client(config, account, address)
        store = QueenStore(Path(state_dir) / STATE_FILE)
        drivers = {
            w.address: driver_class(w.driver)(w.driver_options, DriverContext(w.name, state_dir))
            for w in config.workers
        }
        queen = Queen(config, client, store, drivers, lock=lock, crashpoints=crashpoints)
        try:
            queen.bind()
        except ChainUnavailable as exc:
            log.warning("chain unreachable at start; waiting for it", extra={"error": str(exc)})
            queen._chain_ok = False
        return queen
