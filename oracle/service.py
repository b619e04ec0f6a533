"""The oracle service: a reader thread, a sender thread, an HTTP endpoint, one outbox.

The reader reads every meter each period, turns counters into deltas and deltas into reports,
and commits reading, reports and new baseline together. The sender numbers the oldest pending
reports, commits the numbers, signs, broadcasts and waits for the receipt, one transaction at
a time (`report_batch` when several are pending). After any doubt (a crash, a timeout, a
refusal) it reconciles with the ledger's `last_seq` before sending again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from oracle.accounting import Anomaly, Limits, account, plan_reports
from oracle.chain import ChainClient, OverConsumption
from oracle.config import MeterConfig, OracleConfig
from oracle.daemon import close_service, health_endpoint, released_on_failure
from oracle.drivers import DriverContext, MeterDriver, driver_class
from oracle.errors import (
    ChainError,
    ChainUnavailable,
    LedgerRefusing,
    MeterError,
    OracleError,
    OutboxUnavailable,
    ReportReverted,
    StateError,
    UnitNotRegistered,
)
from oracle.lifecycle import CrashPoints, StopRequest
from oracle.metrics import HttpEndpoint, Metrics
from oracle.outbox import Outbox, Report
from oracle.retry import until_stopped
from oracle.statelock import StateLock
from oracle.wiring import chain_client, check_served_chain, contract, load_key, probe_chain_id

log = logging.getLogger("oracle.service")


def _checksum(account: str | None) -> str | None:
    return to_checksum_address(account) if account else None


OUTBOX_FILE = "outbox.sqlite"
# Written once the state dir is bound to a chain: an empty outbox beside it is an error.
MARKER_FILE = "state.json"


def boot_clock() -> str | None:
    """The clock domain of `time.monotonic()`: it is comparable within one boot."""
    try:
        return "boot:" + Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def make_drivers(config: OracleConfig, state_dir: Path | None) -> dict[str, MeterDriver]:
    return {
        m.name: driver_class(m.driver)(m.driver_options, DriverContext(m.name, state_dir))
        for m in config.meters
    }


class Service:
    def __init__(
        self,
        config: OracleConfig,
        chain: ChainClient,
        outbox: Outbox,
        drivers: dict[str, MeterDriver],
        *,
        chain_id: int | None = None,
        lock: StateLock | None = None,
        crashpoints: CrashPoints | None = None,
        ledger_address: str | None = None,
        deploy_block: int = 0,
        config_path: Path | None = None,
    ):
        self.config = config
        self.ledger_address = ledger_address or chain.ledger.address
        self.deploy_block = deploy_block
        self.config_path = config_path
        self._reconciled_once = False
        # The chain the deployments file and the outbox belong to; checked on first contact.
        self.chain_id = chain_id
        self.chain = chain
        self.outbox = outbox
        self.drivers = drivers
        self.metrics = Metrics()
        self.crash = crashpoints or CrashPoints()
        self._lock = lock
        self._stop = threading.Event()
        self._work = threading.Event()
        # Set when the reader has stopped: only then can the drain know it saw every report.
        self._reader_done = threading.Event()
        self._sender_waiting_reader = False
        self._clock = boot_clock()
        self._next_seq: int | None = None
        self._needs_reconcile = True
        self._isolate_through: int | None = None
        self._started = time.time()
        self._last_read: dict[str, float] = {}
        self._chain_ok: bool | None = None
        self._chain_error: str | None = None
        self._chain_verified = False
        self._last_contact = 0.0
        self._unit_error: str | None = None
        self._refusal: str | None = None
        self.fatal: str | None = None
        # Over-consumption the ledger recorded in this process's transactions.
        self._over_wh = 0
        self._last_over: dict[str, Any] | None = None
        # Set on stop: the sender may deliver until then, and gives up waiting for receipts.
        self._drain_until: float | None = None
        self.http: HttpEndpoint | None = None
        self.http = health_endpoint(
            config.service, self.metrics, self.health, thread_name="oracle-http"
        )
        self.metrics.outbox_depth.set(outbox.depth())

    # -- health ------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        now = time.time()
        stale_after = 3 * self.config.service.period_s + 5
        problems = []
        for meter in self.drivers:
            last = self._last_read.get(meter, self._started)
            if now - last > stale_after:
                problems.append(f"meter {meter}: no reading for {now - last:.0f} s")
        if self._chain_ok is False:
            problems.append(f"chain: {self._chain_error}")
        started = getattr(self.chain, "call_started", None)
        waited = time.monotonic() - started if started is not None else 0.0
        if waited > max(self.config.service.period_s, 1.0):
            # A node that accepts the connection and never answers: shown within a period,
            # long before the RPC timeout and its retries run out.
            problems.append(
                f"chain: {self.config.chain.rpc_url} has not answered for {waited:.0f} s"
            )
        if self._unit_error:
            problems.append(self._unit_error)
        if self._refusal:
            problems.append(self._refusal)
        if self.fatal:
            problems.append(self.fatal)
        detail = {
            "status": "ok" if not problems else "degraded",
            "problems": problems,
            "outbox_depth": self.outbox.depth(),
            "next_seq": self._next_seq,
            "last_readings": {m: self._last_read.get(m) for m in self.drivers},
            "unit": self.chain.unit,
            "over_consumed_wh": self._over_wh,
            "last_over_consumption": self._last_over,
        }
        return not problems, detail

    # -- identity ----------------------------------------------------------------------------

    def bind(self) -> None:
        """Tie the state dir to this chain, ledger and unit; only once the chain answered."""
        meta = self.outbox.meta()
        fresh = "chain_id" not in meta
        chain_id = self.chain_id if self.chain_id is not None else self.chain.chain_id
        self.outbox.bind(chain_id=str(chain_id), ledger=self.ledger_address, unit=self.chain.unit)
        if fresh:
            # A new state dir for a unit that reported before: its history is not ours.
            self.outbox.set_meta("accepted_through", str(self.chain.last_seq()))
        write_marker(self.config.service.state_dir, chain_id, self.ledger_address, self.chain.unit)

    # -- reading -----------------------------------------------------------------------------

    def read_once(self) -> int:
        """Read every meter once and record the results; returns how many were read."""
        done = 0
        for meter in self.config.meters:
            if self._read_meter(meter):
                done += 1
        if done:
            self._work.set()
        return done

    def _read_meter(self, meter: MeterConfig) -> bool:
        driver = self.drivers[meter.name]
        try:
            reading = driver.read()
        except MeterError as exc:
            self.metrics.reading_errors.labels(meter.name).inc()
            log.warning("meter read failed", extra={"meter": meter.name, "error": str(exc)})
            return False
        except Exception:
            self.metrics.reading_errors.labels(meter.name).inc()
            log.exception("meter driver failed", extra={"meter": meter.name})
            driver.close()
            return False
        if reading.clock is None:
            reading = replace(reading, monotonic=time.monotonic(), clock=self._clock)

        fingerprint = meter.fingerprint()
        limits = Limits(meter.rated_power_w, meter.plausibility_margin, meter.rollover_wh)
        channels = self.config.channels_of(meter.name)
        notes: list[str] = []

        def compute(state, actual_states):
            # Runs inside the outbox's write transaction: the baseline it reads is the one
            # the reading replaces, even with another writer on the same database.
            previous, extra = None, []
            if state is not None:
                if state.fingerprint == fingerprint:
                    previous = state.baseline
                else:
                    extra.append(Anomaly("meter_changed", "", "meter configuration changed"))
            delta = account(previous, reading, limits)
            plan = plan_reports(channels, delta, reading, actual_states)
            notes.extend(plan.notes)
            anomalies = tuple(extra) + delta.anomalies
            return fingerprint, reading, delta, plan.reports, plan.actual_updates, anomalies

        _, reports, anomalies = self.outbox.record_reading(meter.name, compute)
        self._last_read[meter.name] = time.time()
        self.metrics.readings.labels(meter.name).inc()
        self.metrics.last_reading.labels(meter.name).set(time.time())
        self.metrics.outbox_depth.set(self.outbox.depth())
        for report in reports:
            self.metrics.reports.labels(report.kind, "created").inc()
        for anomaly in anomalies:
            self.metrics.anomalies.labels(meter.name, anomaly.kind).inc()
            log.warning(
                anomaly.detail,
                extra={"meter": meter.name, "anomaly": anomaly.kind, "counter": anomaly.counter},
            )
        for note in notes:
            log.warning(note, extra={"meter": meter.name})
        log.debug(
            "reading recorded",
            extra={
                "meter": meter.name,
                "import_wh": reading.import_wh,
                "export_wh": reading.export_wh,
                "stored_wh": reading.stored_wh,
                "reports": len(reports),
            },
        )
        return True

    # -- delivery ----------------------------------------------------------------------------

    def reconcile(self) -> bool:
        """Align the outbox with what the ledger's events hold for this unit; True if no own
        transaction was pending.

        A report is confirmed only when its own transaction (by hash, with its content) is
        mined under its number. A number taken by a transaction this outbox did not sign
        sends the report back to pending; confirmed reports the chain lost (a rollback
        shallower than `chain.confirmations`) go back to pending too. Reports on chain that
        this outbox does not know are adopted at start (an older copy of the state dir, a lost
        WAL) or, while running, stop the service: another writer uses this key."""
        if not self._chain_verified:
            served = self.chain.connect()
            if self.chain_id is not None and served != self.chain_id:
                raise StateError(
                    f"{self.config.chain.rpc_url} serves chain {served}, not {self.chain_id}"
                )
            self.bind()
            self._chain_verified = True
        meta = self.outbox.meta()
        if meta.get("foreign_writer"):
            raise StateError(meta["foreign_writer"])
        settled = self.chain.wait_settled(
            self.config.chain.settle_timeout_s,
            sleep=lambda s: self._stop.wait(s),
            give_up=self._give_up_waiting,
        )
        head = self.chain.block_number()
        last = self.chain.last_seq()
        self.metrics.on_chain_seq.set(last)
        confirmations = self.config.chain.confirmations
        final_seq, final_block = self.outbox.final_through()
        if last < final_seq:
            raise StateError(
                f"ledger last_seq {last} for unit {self.chain.unit} is behind the outbox's "
                f"final seq {final_seq}: wrong chain or ledger, or the chain lost more than "
                f"chain.confirmations = {confirmations} blocks"
            )
        scan_from = max(final_block, self.deploy_block)
        on_chain = {
            seq: c
            for seq, c in self.chain.reports_since(scan_from, max(head, scan_from)).items()
            if seq > final_seq
        }
        own = self.outbox.own_txs()
        matched: set[int] = set()
        found, lost, displaced = 0, [], []
        found_in: dict[str, set[int]] = {}  # tx hash -> the seqs confirmed here, not by a receipt
        for r in self.outbox.assigned():
            if r["final"] or r["seq"] <= final_seq:
                # Below the newest final report the events are not read again (mined in
                # earlier blocks, so final too): never taken for lost.
                matched.add(r["seq"])
                continue
            c = on_chain.get(r["seq"])
            content = (r["kind"], _checksum(r["account"]), r["wh"])
            if (
                c is not None
                and c.content() == content
                and (c.tx_hash in own or r["status"] == "sending")
            ):
                # Its own transaction; or (unknown hash, same content) one signed by a lost
                # copy of this outbox.
                matched.add(r["seq"])
                if r["status"] != "confirmed" or (r["tx_hash"] or "").lower() != c.tx_hash:
                    gas = self.chain.gas_used(c.tx_hash)
                    self.outbox.confirm_on_chain(r["id"], r["seq"], c.tx_hash, c.block_number, gas)
                    found += 1
                    found_in.setdefault(c.tx_hash, set()).add(r["seq"])
                elif r["block_number"] != c.block_number:
                    self.outbox.confirm_on_chain(r["id"], r["seq"], c.tx_hash, c.block_number, None)
            elif r["status"] == "confirmed":
                lost.append(r)
            elif c is not None:
                displaced.append(r)
        if lost:
            self.outbox.unconfirm([r["id"] for r in lost])
            log.warning(
                "the chain lost confirmed reports (rolled back); they are pending again",
                extra={"count": len(lost), "first_seq": lost[0]["seq"], "last_seq": last},
            )
        if displaced:
            self.outbox.release([self._as_report(r) for r in displaced])
        if found:
            log.info(
                "reconciled: reports found on chain", extra={"confirmed": found, "last_seq": last}
            )
        for tx_hash, seqs in found_in.items():
            # Their receipts were never seen (a crash, an outage, a stop while waiting): the
            # over-consumption they recorded counts now, once, as the live path counts it.
            over = self.chain.over_consumed_in(tx_hash)
            self._over_consumed(tuple(o for o in over if o.seq in seqs))
        accepted = int(meta.get("accepted_through", "0"))
        unknown = [on_chain[s] for s in sorted(on_chain) if s > accepted and s not in matched]
        if displaced or unknown:
            self._unknown_reports(unknown, displaced, matched, settled)
        if found or lost or displaced or unknown:
            self._after_confirm()
        in_flight = self.outbox.in_flight()
        if settled:
            # Nothing of ours is pending, so whatever is not on chain by now never will be.
            released = self.outbox.release()
            if released:
                log.info("reports not on chain go back to pending", extra={"released": released})
            self._next_seq = last + 1
        else:
            log.warning("own transactions still pending; resending with the same numbers")
            self._next_seq = (in_flight[-1].seq + 1) if in_flight else last + 1
        self.outbox.finalize(head - confirmations)
        self._needs_reconcile = False
        self._reconciled_once = True
        return settled

    @staticmethod
    def _as_report(r: dict[str, Any]) -> Report:
        return Report(
            r["id"], r["channel"], r["kind"], r["account"], r["wh"], r["seq"], r["status"]
        )

    def _foreign(self, what: str) -> StateError:
        message = (
            f"another writer reports for unit {self.chain.unit}: {what}; run one oracle per "
            f"unit key: stop the other one, then run `oracle accept-chain --config "
            f"{self.config_path or '<file>'}` here to go on"
        )
        self.outbox.set_meta("foreign_writer", " ".join(message.split()))
        return StateError(message)

    def _unknown_reports(self, unknown, displaced, matched, settled: bool) -> None:
        """Reports on chain this outbox did not send: adopt them or refuse."""
        if self._reconciled_once:
            first = (displaced or unknown)[0]
            seq = first["seq"] if isinstance(first, dict) else first.seq
            raise self._foreign(f"ledger seq {seq} is in a transaction this outbox did not sign")
        if matched and min(c.seq for c in unknown) < max(matched):
            raise self._foreign(
                f"ledger seq {unknown[0].seq} is in a transaction this outbox did not sign"
            )
        if not settled:
            raise ChainUnavailable("own transactions still pending; adoption waits for them")
        flows = {
            (ch.kind, _checksum(ch.account)) for ch in self.config.channels if ch.kind != "actual"
        }
        actual = any(ch.kind == "actual" for ch in self.config.channels)
        strange = [
            c
            for c in unknown
            if (c.kind, c.account) not in flows and not (c.kind == "actual" and actual)
        ]
        if strange:
            c = strange[0]
            raise self._foreign(
                f"ledger seq {c.seq} reports {c.kind} {c.wh} Wh for {c.account}, an account "
                "this oracle does not report for"
            )
        # Sent by this unit from a copy of the outbox that is lost (a restored backup, a
        # deleted WAL): the pending reports it knows match in order; the rest came from
        # readings it lost, whose energy the next readings measure again (the baseline is
        # older): it becomes a credit taken off them.
        pending = self.outbox.pending()
        i, adopted, credited = 0, 0, 0
        for c in unknown:
            if i < len(pending):
                p = pending[i]
                if (p.kind, _checksum(p.account), p.wh) == c.content():
                    gas = self.chain.gas_used(c.tx_hash)
                    self.outbox.confirm_on_chain(p.id, c.seq, c.tx_hash, c.block_number, gas)
                    i += 1
                    adopted += 1
                    continue
            channel = next(
                ch.name
                for ch in self.config.channels
                if ch.kind == c.kind and (c.kind == "actual" or _checksum(ch.account) == c.account)
            )
            rid = self.outbox.add_adopted(channel, c.kind, c.account, c.wh)
            gas = self.chain.gas_used(c.tx_hash)
            self.outbox.confirm_on_chain(rid, c.seq, c.tx_hash, c.block_number, gas)
            if c.kind != "actual":
                self.outbox.add_credit(c.kind, c.account, c.wh)
                credited += c.wh
        self.outbox.set_meta("accepted_through", str(unknown[-1].seq))
        log.warning(
            "ledger held reports this outbox did not know (an older copy of the state dir?): "
            "adopted, not sent again",
            extra={
                "first_seq": unknown[0].seq,
                "last_seq": unknown[-1].seq,
                "adopted": adopted,
                "credit_wh": credited,
            },
        )

    def _after_confirm(self) -> None:
        self.metrics.outbox_depth.set(self.outbox.depth())
        self.metrics.last_confirmation.set(time.time())

    def deliver_once(self) -> bool:
        """Send one transaction's worth of reports; False when nothing was waiting."""
        if self._next_seq is None or self._needs_reconcile:
            self.reconcile()
        batch = self.outbox.in_flight()
        if not batch:
            first = self.outbox.next_pending_id()
            if first is None:
                return False
            limit = self.config.chain.batch_size
            if self._isolate_through is not None:
                if first <= self._isolate_through:
                    limit = 1
                else:
                    self._isolate_through = None
            assert self._next_seq is not None
            batch = self.outbox.assign(
                self._next_seq, limit, getattr(self.chain, "max_report_wh", None)
            )
            if not batch:
                return False
        self._send(batch)
        return True

    def _send(self, batch: list[Report]) -> None:
        try:
            signed = self.chain.sign(batch)
        except ReportReverted as exc:
            self._refused(batch, exc.reason)
            return
        tx_id = self.outbox.record_tx(batch, signed.tx_hash, signed.nonce, signed.method)
        self.crash.hit("before_broadcast")
        try:
            self.chain.broadcast(signed)
        except ChainError:
            self._needs_reconcile = True
            raise
        self.crash.hit("after_broadcast")
        try:
            mined = self.chain.wait_mined(signed, give_up=self._give_up_waiting)
        except ReportReverted:
            self.outbox.mark_tx(tx_id, "reverted", "reverted on chain")
            self.metrics.transactions.labels(signed.method, "reverted").inc()
            self._refused(batch, None)
            return
        except ChainError:
            self._needs_reconcile = True
            raise
        self.crash.hit("after_receipt")
        self.outbox.confirm(batch, tx_id, mined.block_number, mined.gas_used)
        self.outbox.finalize(mined.block_number - self.config.chain.confirmations)
        self._next_seq = batch[-1].seq + 1
        self.metrics.on_chain_seq.set(batch[-1].seq)
        self._over_consumed(getattr(mined, "over_consumed", ()))
        self._chain_up()
        self._after_confirm()
        self.metrics.transactions.labels(signed.method, "mined").inc()
        self.metrics.gas.inc(mined.gas_used)
        for report in batch:
            self.metrics.reports.labels(report.kind, "confirmed").inc()
            self.metrics.energy.labels(report.kind).inc(report.wh)
        log.info(
            "reports confirmed",
            extra={
                "first_seq": batch[0].seq,
                "count": len(batch),
                "tx": mined.tx_hash,
                "block": mined.block_number,
                "gas": mined.gas_used,
            },
        )

    def _over_consumed(self, found: tuple[OverConsumption, ...]) -> None:
        """The ledger recorded energy drawn without a session (or beyond its reserve): not
        an error of the oracle, but the operator and the consumer must know."""
        for over in found:
            self.metrics.over_consumed.labels(over.consumer).inc(over.wh)
            self.metrics.over_consumptions.labels(over.consumer).inc()
            self._over_wh += over.wh
            self._last_over = {
                "consumer": over.consumer,
                "seq": over.seq,
                "wh": over.wh,
                "tx": over.tx_hash,
                "at": time.time(),
            }
            log.warning(
                "over-consumption: the ledger recorded energy drawn without a session (or "
                "beyond its reserve)",
                extra={
                    "consumer": over.consumer,
                    "seq": over.seq,
                    "over_wh": over.wh,
                    "tx": over.tx_hash,
                    "block": over.block_number,
                },
            )

    def _give_up_waiting(self) -> bool:
        return self._drain_until is not None and time.monotonic() >= self._drain_until

    def _refused(self, batch: list[Report], reason: str | None) -> None:
        """The ledger refused `batch` (estimate or mined revert). Never retried blindly."""
        if not self.reconcile():
            raise ChainUnavailable("own transactions still pending after a refusal")
        status = self.outbox.statuses(batch)
        remaining = [r for r in batch if status.get(r.id) != "confirmed"]
        if reason is not None and "unit not active" in reason:
            raise UnitNotRegistered(
                f"unit {self.chain.unit} is not active on the ledger: reports wait in the outbox"
            )
        if not remaining or reason is None or "bad sequence" in reason:
            # A race with a transaction already on chain, now reconciled; or a mined revert
            # whose reason the next estimate will tell.
            log.info("refusal reconciled", extra={"reason": reason, "next_seq": self._next_seq})
            return
        if len(remaining) > 1:
            self._isolate_through = max(r.id for r in remaining)
            log.warning(
                "batch refused by the ledger; sending its reports one by one",
                extra={"reason": reason, "count": len(remaining)},
            )
            return
        report = remaining[0]
        if "above unit maximum" in reason and report.kind != "actual":
            # Governance lowered the unit's maximum: split to the new one and send again.
            self.chain.unit_info()
            self.outbox.release([report])
            log.warning(
                "report above the unit's maximum on the ledger; splitting it",
                extra={"wh": report.wh, "max_report_wh": self.chain.max_report_wh},
            )
            return
        if not any(r in reason for r in self.config.chain.reject_reasons) and not (
            # A stored-energy level is superseded by the next one: refusing it must not
            # hold every later report back.
            report.kind == "actual" and "above unit maximum" in reason
        ):
            self._refusal = (
                f"the ledger refuses report {report.id} ({report.kind} {report.wh} Wh): "
                f"{reason}; it stays in the outbox"
            )
            raise LedgerRefusing(self._refusal)
        self.outbox.reject(report, reason)
        self.metrics.reports.labels(report.kind, "rejected").inc()
        self.metrics.outbox_depth.set(self.outbox.depth())
        log.error(
            "report rejected by the ledger",
            extra={
                "reason": reason,
                "report_id": report.id,
                "kind": report.kind,
                "account": report.account,
                "wh": report.wh,
            },
        )

    def _chain_up(self) -> None:
        self._chain_ok, self._chain_error = True, None
        self._unit_error = self._refusal = None
        self._last_contact = time.monotonic()
        self.metrics.chain_up.set(1)

    def _chain_down(self, exc: BaseException) -> None:
        # Whatever the chain did meanwhile (a restart from an older state, a reorg) is
        # looked at before the next send.
        self._needs_reconcile = True
        if isinstance(exc, LedgerRefusing):
            # The chain answers; the ledger says no. Not an outage.
            self._refusal = str(exc)
            return
        self._chain_ok, self._chain_error = False, str(exc)
        self.metrics.chain_up.set(0)

    def check_chain(self) -> None:
        """While idle, look at the chain now and then, so health and metrics stay true."""
        try:
            info = self.chain.unit_info()
        except ChainError as exc:
            self._chain_down(exc)
            return
        self._last_contact = time.monotonic()
        self._chain_ok, self._chain_error = True, None
        self.metrics.chain_up.set(1)
        self.metrics.on_chain_seq.set(info.last_seq)
        if self._next_seq is not None and info.last_seq != self._next_seq - 1:
            self._needs_reconcile = True  # the chain moved back (or someone else wrote)
            self._work.set()
        self._unit_error = (
            None if info.active else f"unit {self.chain.unit} is not active on the ledger"
        )

    # -- threads -----------------------------------------------------------------------------

    def _reader_loop(self) -> None:
        try:
            self._read_until_stopped()
        finally:
            self._reader_done.set()
            self._work.set()

    def prune_once(self) -> int:
        retain = self.config.service.retain_s
        dropped = self.outbox.prune(time.time() - retain)
        if dropped:
            log.info("outbox pruned", extra={"reports": dropped, "retain_s": retain})
        return dropped

    def _read_until_stopped(self) -> None:
        period = self.config.service.period_s
        next_at = time.monotonic()
        prune_every = min(3600.0, self.config.service.retain_s)
        prune_at = time.monotonic() + prune_every
        while not self._stop.is_set():
            if time.monotonic() >= prune_at:
                prune_at = time.monotonic() + prune_every
                try:
                    self.prune_once()
                except Exception:
                    log.exception("pruning the outbox failed")
            try:
                self.read_once()
            except OracleError as exc:
                log.error("recording failed", extra={"error": str(exc)})
            except Exception:
                log.exception("recording failed")
            next_at += period
            now = time.monotonic()
            if next_at < now:
                next_at = now
            self._stop.wait(next_at - now)

    def _deliver_with_retries(self) -> bool:
        def before_sleep(state) -> None:
            exc = state.outcome.exception()
            self._chain_down(exc)
            log.log(
                logging.ERROR if isinstance(exc, LedgerRefusing) else logging.WARNING,
                "delivery failed, retrying",
                extra={
                    "error": str(exc),
                    "attempt": state.attempt_number,
                    "retry_in_s": round(state.upcoming_sleep, 2),
                },
            )

        retrying = until_stopped(
            self._stop,
            retry_max_s=self.config.chain.retry_max_s,
            retry_on=lambda e: isinstance(e, ChainError) and not isinstance(e, UnitNotRegistered),
            before_sleep=before_sleep,
        )
        return retrying(self.deliver_once)

    def _sender_loop(self) -> None:
        while True:
            if self._stop.is_set():
                if self._drain_until is None:
                    self._drain_until = time.monotonic() + self.config.service.stop_drain_s
                if time.monotonic() >= self._drain_until:
                    return
                if self.outbox.depth() == 0:
                    if self._reader_done.is_set():
                        return
                    # A reading may still be being recorded: drain what it adds too.
                    self._sender_waiting_reader = True
                    self._reader_done.wait(0.05)
                    continue
            try:
                worked = self._deliver_with_retries()
                if self._chain_ok is not True and worked:
                    self._chain_up()
            except UnitNotRegistered as exc:
                self._unit_error = str(exc)
                log.error(str(exc))
                if self._stop.wait(self.config.chain.retry_max_s):
                    return
                continue
            except OutboxUnavailable as exc:
                # What the outbox did not record is settled by reconciliation once it can.
                self._needs_reconcile = True
                log.error(
                    "delivery paused: the outbox cannot be written", extra={"error": str(exc)}
                )
                if self._stop.wait(self.config.chain.retry_max_s):
                    return
                continue
            except StateError as exc:
                self.fatal = str(exc)
                log.critical(str(exc))
                self.stop()
                return
            except ChainError as exc:
                self._chain_down(exc)
                if self._stop.is_set():
                    return
                continue
            except Exception:
                log.exception("sender failed")
                if self._stop.wait(self.config.chain.retry_max_s):
                    return
                continue
            if not worked:
                if self._stop.is_set():
                    continue  # the check above decides, once the reader has stopped
                idle_check = max(self.config.service.period_s, 15.0)
                if time.monotonic() - self._last_contact >= idle_check:
                    self.check_chain()
                self._work.wait(self.config.service.period_s)
                self._work.clear()

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self, *_: object) -> None:
        if self._drain_until is None:
            self._drain_until = time.monotonic() + self.config.service.stop_drain_s
        self._stop.set()
        self._work.set()

    def run(self, *, install_signals: bool = True, stop: StopRequest | None = None) -> int:
        """Run until SIGTERM/SIGINT (or `stop()`); returns the process exit code.

        `stop` is the request `oracle run` installed before starting (a signal that came
        during the start stops the service at once); without it, `install_signals` wires
        SIGTERM and SIGINT here. Further signals during the shutdown are logged, not obeyed
        twice, and the exit status stays 0."""
        if stop is None and install_signals:
            stop = StopRequest.install()
        if stop is not None:
            stop.on_stop(self.stop)
        if self.http is not None:
            self.http.start()
        log.info(
            "oracle started",
            extra={
                "unit": self.chain.unit,
                "ledger": self.chain.ledger.address,
                "meters": list(self.drivers),
                "period_s": self.config.service.period_s,
                "http_port": self.http.port if self.http else None,
                "outbox_depth": self.outbox.depth(),
            },
        )
        reader = threading.Thread(target=self._reader_loop, name="oracle-reader", daemon=True)
        sender = threading.Thread(target=self._sender_loop, name="oracle-sender", daemon=True)
        reader.start()
        sender.start()
        while not self._stop.wait(0.5):
            pass
        log.info("stopping")
        reader.join()
        # The sender gives up at the drain deadline; allow one RPC round trip beyond it.
        sender.join(self.config.service.stop_drain_s + 3 * self.config.chain.rpc_timeout_s)
        self.close()
        log.info("oracle stopped", extra={"outbox_depth": self.outbox_depth_safe()})
        return 1 if self.fatal else 0

    def outbox_depth_safe(self) -> int | None:
        try:
            return self.outbox.depth()
        except Exception:
            return None

    def close(self) -> None:
        close_service(self.http, self._lock, *(d.close for d in self.drivers.values()))


def write_marker(state_dir: Path, chain_id: int, ledger: str, unit: str) -> None:
    path = state_dir / MARKER_FILE
    if path.exists():
        return
    tmp = path.with_suffix(".tmp")
    data = {"chain_id": chain_id, "ledger": ledger, "unit": unit, "at": time.time()}
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError as exc:
        raise StateError(f"{path}: {exc.strerror or exc}") from None


def check_outbox_present(state_dir: Path) -> None:
    """An initialised state dir whose outbox is gone or empty is an error, not a fresh start."""
    if not (state_dir / MARKER_FILE).exists():
        return
    path = state_dir / OUTBOX_FILE
    empty = not path.exists() or path.stat().st_size == 0
    if not empty:
        box = Outbox(path)
        try:
            empty = "chain_id" not in box.meta()
        finally:
            box.close()
    if empty:
        raise StateError(
            f"{path} is missing or empty but {state_dir} was initialised ({MARKER_FILE}): "
            "restore outbox.sqlite from a backup (reports the ledger already holds are "
            f"adopted), or delete {MARKER_FILE} to start over without the lost readings"
        )


def open_service(
    config: OracleConfig,
    *,
    passphrase: str | None = None,
    crashpoints: CrashPoints | None = None,
    config_path: Path | None = None,
) -> Service:
    """Everything `oracle run` checks before it starts, each failure one `OracleError` line."""
    state_dir = config.service.state_dir
    with released_on_failure(StateLock(state_dir)) as lock:
        c = config.chain
        chain_id = probe_chain_id(config)
        ledger = contract(c.deployments_dir, chain_id, c.ledger)
        unit_account = load_key(c.keystore, c.passphrase_file, c.passphrase_env, passphrase)
        chain = chain_client(config, chain_id=chain_id, account=unit_account)
        answered = False
        try:
            served = chain.connect()
            check_served_chain(c.rpc_url, served, chain_id)
            chain.check_unit()
            answered = True
        except ChainUnavailable as exc:
            log.warning(
                "chain unreachable at start; reading meters meanwhile", extra={"error": str(exc)}
            )
        check_outbox_present(state_dir)
        outbox = Outbox(state_dir / OUTBOX_FILE)
        meta = outbox.meta()
        if not answered and "chain_id" in meta and meta["chain_id"] != str(chain_id):
            raise StateError(
                f"{outbox.path} belongs to chain_id {meta['chain_id']}, not {chain_id}; "
                "use another state_dir"
            )
        drivers = make_drivers(config, state_dir)
        service = Service(
            config,
            chain,
            outbox,
            drivers,
            chain_id=chain_id,
            lock=lock,
            crashpoints=crashpoints,
            ledger_address=ledger.address,
            deploy_block=ledger.block,
            config_path=config_path,
        )
        if answered:
            # Bound only once the chain answered: a chain_id typed wrong while the chain is
            # down binds nothing (the first contact refuses it).
            service.bind()
        return service
