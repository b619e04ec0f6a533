"""The SQLite outbox: every reading and every report is on disk before anything is sent.

Life of a report::

    pending ──assign(seq)──▶ sending ──mined──▶ confirmed
       ▲                        │
       └──release (known not ───┤──refused by the ledger──▶ rejected
          applied on chain)     │
                                └──(crash, timeout: stays sending, same seq, until
                                    reconciliation with the ledger's last_seq)

A report gets its sequence number only when it is handed to the chain, and that number is
committed (synchronous=FULL) before the transaction is broadcast. The ledger accepts each
number once, so a report whose transaction was mined but not recorded here is recognised at
reconciliation (the ledger's event for its number, in its own transaction) and never applied
twice.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oracle.accounting import ActualState, Anomaly, Baseline, Delta, PlannedReport, pack_reading
from oracle.drivers import Reading
from oracle.errors import OutboxUnavailable, StateError
from oracle.sqlite_db import open_db

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY,
    meter TEXT NOT NULL,
    ts REAL NOT NULL,
    import_wh INTEGER NOT NULL,
    export_wh INTEGER NOT NULL,
    stored_wh INTEGER,
    monotonic REAL,
    clock TEXT,
    import_delta_wh INTEGER NOT NULL,
    export_delta_wh INTEGER NOT NULL,
    elapsed_s REAL,
    recorded_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meter_state (
    meter TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    reading_id INTEGER NOT NULL REFERENCES readings(id),
    ts REAL NOT NULL,
    import_wh INTEGER NOT NULL,
    export_wh INTEGER NOT NULL,
    monotonic REAL,
    clock TEXT
);
CREATE TABLE IF NOT EXISTS actual_state (
    channel TEXT PRIMARY KEY,
    wh INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS anomalies (
    id INTEGER PRIMARY KEY,
    reading_id INTEGER REFERENCES readings(id),
    meter TEXT NOT NULL,
    kind TEXT NOT NULL,
    counter TEXT NOT NULL,
    detail TEXT NOT NULL,
    recorded_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS txs (
    id INTEGER PRIMARY KEY,
    tx_hash TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    method TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    signed_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'signed'
        CHECK (status IN ('signed', 'mined', 'reverted', 'superseded')),
    block_number INTEGER,
    gas_used INTEGER,
    error TEXT
);
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY,
    reading_id INTEGER NOT NULL REFERENCES readings(id),
    channel TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('produced', 'consumed', 'actual')),
    account TEXT,
    wh INTEGER NOT NULL CHECK (wh >= 0),
    created_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'confirmed', 'rejected')),
    seq INTEGER UNIQUE,
    tx_id INTEGER REFERENCES txs(id),
    confirmed_at REAL,
    error TEXT,
    final INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pruned (
    kind TEXT NOT NULL,
    account TEXT NOT NULL,
    wh INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (kind, account)
);
CREATE TABLE IF NOT EXISTS credits (
    kind TEXT NOT NULL,
    account TEXT NOT NULL,
    wh INTEGER NOT NULL CHECK (wh >= 0),
    PRIMARY KEY (kind, account)
);
CREATE INDEX IF NOT EXISTS reports_by_status ON reports (status, id);
CREATE INDEX IF NOT EXISTS readings_by_meter ON readings (meter, id);
"""


@dataclass(frozen=True)
class Report:
    id: int
    channel: str
    kind: str
    account: str | None
    wh: int
    seq: int | None
    status: str

    def packed(self) -> int:
        return pack_reading(self.kind, self.wh, self.account)


@dataclass(frozen=True)
class MeterState:
    fingerprint: str
    baseline: Baseline


class Outbox:
    """One SQLite database in WAL mode, shared by the service's threads behind one lock."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        self._lock = threading.RLock()
        # Read-only for `oracle status` and `export` beside a running service (WAL allows it).
        # FULL: a committed sequence number survives a power cut before its broadcast.
        self._db = open_db(
            self.path,
            readonly=readonly,
            missing="no outbox yet (has `oracle run` started?)",
            timeout=30,
            row_factory=sqlite3.Row,
        )
        try:
            if readonly:
                self._db.execute("SELECT COUNT(*) FROM reports").fetchone()
                return
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(f"{self.path}: written by a newer oracle (schema {version})")
            if version == 1:
                # v2: reports become final after `chain.confirmations` blocks; credits.
                self._db.execute("ALTER TABLE reports ADD COLUMN final INTEGER NOT NULL DEFAULT 0")
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _damage(self) -> Iterator[None]:
        """A damaged database is one line; a full disk, an I/O error or a lock is
        `OutboxUnavailable` (transient: the service retries)."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise OutboxUnavailable(
                f"{self.path}: {exc} (a full disk?); nothing recorded, retrying"
            ) from None
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"{self.path}: {exc}; restore the outbox from a backup (see docs/oracle.md)"
            ) from None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._damage():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            else:
                try:
                    self._db.execute("COMMIT")
                except BaseException:
                    # A COMMIT that failed (full disk, I/O error) may leave the transaction
                    # open: roll it back, or every later BEGIN would fail.
                    if self._db.in_transaction:
                        with suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock, self._damage():
            return self._db.execute(sql, args).fetchall()

    # -- identity ----------------------------------------------------------------------------

    def bind(self, **identity: str) -> None:
        """Tie the state to one unit on one ledger; refuse a state dir of another."""
        with self._tx() as db:
            for key, value in identity.items():
                row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
                if row is None:
                    db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, str(value)))
                elif row["value"].lower() != str(value).lower():
                    raise StateError(
                        f"{self.path} belongs to {key} {row['value']}, not {value}; "
                        "use another state_dir"
                    )

    def is_empty(self) -> bool:
        """Never bound and never written: a fresh database (or one that lost its content)."""
        return not self._query("SELECT 1 FROM meta LIMIT 1") and not self._query(
            "SELECT 1 FROM readings LIMIT 1"
        )

    def set_meta(self, key: str, value: str | None) -> None:
        with self._tx() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self._query("SELECT key, value FROM meta")}

    # -- readings ----------------------------------------------------------------------------

    def meter_state(self, meter: str) -> MeterState | None:
        with self._lock:
            return self._meter_state(self._db, meter)

    @staticmethod
    def _meter_state(db, meter: str) -> MeterState | None:
        rows = db.execute("SELECT * FROM meter_state WHERE meter = ?", (meter,)).fetchall()
        if not rows:
            return None
        r = rows[0]
        baseline = Baseline(
            ts=r["ts"],
            import_wh=r["import_wh"],
            export_wh=r["export_wh"],
            monotonic=r["monotonic"],
            clock=r["clock"],
        )
        return MeterState(r["fingerprint"], baseline)

    def actual_states(self) -> dict[str, ActualState]:
        rows = self._query("SELECT channel, wh, ts FROM actual_state")
        return {r["channel"]: ActualState(r["wh"], r["ts"]) for r in rows}

    def record_reading(self, meter: str, compute) -> tuple[int, list[PlannedReport], tuple]:
        """Read the baseline and record the reading in one transaction (a second writer
        blocks on the database lock, then sees the new baseline).

        `compute(state, actual_states)` returns `(fingerprint, reading, delta, reports,
        actual_updates, anomalies)`; energy the ledger already holds from readings this
        outbox lost (credits, see `add_credit`) is taken off the reports first. Returns the
        reading id, the reports recorded and the anomalies."""
        with self._tx() as db:
            state = self._meter_state(db, meter)
            actual = {
                r["channel"]: ActualState(r["wh"], r["ts"])
                for r in db.execute("SELECT channel, wh, ts FROM actual_state").fetchall()
            }
            fingerprint, reading, delta, reports, updates, anomalies = compute(state, actual)
            kept = []
            for r in reports:
                wh = r.wh
                if r.kind != "actual" and r.account:
                    row = db.execute(
                        "SELECT wh FROM credits WHERE kind = ? AND account = ?",
                        (r.kind, r.account.lower()),
                    ).fetchone()
                    if row is not None and row["wh"] > 0:
                        used = min(row["wh"], wh)
                        wh -= used
                        db.execute(
                            "UPDATE credits SET wh = wh - ? WHERE kind = ? AND account = ?",
                            (used, r.kind, r.account.lower()),
                        )
                        anomalies = (
                            *anomalies,
                            Anomaly(
                                "already_on_chain",
                                "",
                                f"{used} Wh of {r.kind} for {r.account} are on the ledger "
                                "already (sent from readings this outbox lost); not sent again",
                            ),
                        )
                if wh > 0:
                    kept.append(PlannedReport(r.channel, r.kind, r.account, wh))
            reading_id = self._insert(
                db, meter, fingerprint, reading, delta, kept, updates, anomalies
            )
        return reading_id, kept, anomalies

    def add_credit(self, kind: str, account: str, wh: int) -> None:
        """Energy the ledger holds from readings this outbox lost: taken off the pending
        reports of that flow (oldest first; one left at 0 Wh is dropped, it was never sent),
        the rest off the next readings."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, wh FROM reports WHERE status = 'pending' AND kind = ?"
                " AND lower(account) = ? ORDER BY id",
                (kind, account.lower()),
            ).fetchall()
            for row in rows:
                if wh == 0:
                    break
                used = min(wh, row["wh"])
                wh -= used
                if used == row["wh"]:
                    db.execute("DELETE FROM reports WHERE id = ?", (row["id"],))
                else:
                    db.execute("UPDATE reports SET wh = wh - ? WHERE id = ?", (used, row["id"]))
            if wh:
                db.execute(
                    "INSERT INTO credits (kind, account, wh) VALUES (?, ?, ?)"
                    " ON CONFLICT (kind, account) DO UPDATE SET wh = wh + excluded.wh",
                    (kind, account.lower(), wh),
                )

    def credits(self) -> dict[tuple[str, str], int]:
        rows = self._query("SELECT kind, account, wh FROM credits WHERE wh > 0")
        return {(r["kind"], r["account"]): r["wh"] for r in rows}

    def record(
        self,
        meter: str,
        fingerprint: str,
        reading: Reading,
        delta: Delta,
        reports: list[PlannedReport],
        actual_updates: dict[str, ActualState],
        anomalies: tuple[Anomaly, ...] = (),
    ) -> int:
        """Store a reading, its reports, anomalies and the new baseline in one transaction."""
        with self._tx() as db:
            return self._insert(
                db, meter, fingerprint, reading, delta, reports, actual_updates, anomalies
            )

    @staticmethod
    def _insert(db, meter, fingerprint, reading, delta, reports, actual_updates, anomalies) -> int:
        now = time.time()
        reading_id = db.execute(
            "INSERT INTO readings (meter, ts, import_wh, export_wh, stored_wh, monotonic,"
            " clock, import_delta_wh, export_delta_wh, elapsed_s, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                meter,
                reading.ts,
                reading.import_wh,
                reading.export_wh,
                reading.stored_wh,
                reading.monotonic,
                reading.clock,
                delta.import_wh,
                delta.export_wh,
                delta.elapsed_s,
                now,
            ),
        ).lastrowid
        b = delta.baseline
        db.execute(
            "INSERT INTO meter_state (meter, fingerprint, reading_id, ts, import_wh,"
            " export_wh, monotonic, clock) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (meter) DO UPDATE SET fingerprint = excluded.fingerprint,"
            " reading_id = excluded.reading_id, ts = excluded.ts,"
            " import_wh = excluded.import_wh, export_wh = excluded.export_wh,"
            " monotonic = excluded.monotonic, clock = excluded.clock",
            (
                meter,
                fingerprint,
                reading_id,
                b.ts,
                b.import_wh,
                b.export_wh,
                b.monotonic,
                b.clock,
            ),
        )
        db.executemany(
            "INSERT INTO reports (reading_id, channel, kind, account, wh, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(reading_id, r.channel, r.kind, r.account, r.wh, now) for r in reports],
        )
        db.executemany(
            "INSERT INTO actual_state (channel, wh, ts) VALUES (?, ?, ?)"
            " ON CONFLICT (channel) DO UPDATE SET wh = excluded.wh, ts = excluded.ts",
            [(ch, s.wh, s.ts) for ch, s in actual_updates.items()],
        )
        db.executemany(
            "INSERT INTO anomalies (reading_id, meter, kind, counter, detail, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(reading_id, meter, a.kind, a.counter, a.detail, now) for a in anomalies],
        )
        return reading_id

    # -- delivery ----------------------------------------------------------------------------

    @staticmethod
    def _report(row: sqlite3.Row) -> Report:
        return Report(
            id=row["id"],
            channel=row["channel"],
            kind=row["kind"],
            account=row["account"],
            wh=row["wh"],
            seq=row["seq"],
            status=row["status"],
        )

    def depth(self) -> int:
        """Reports not yet confirmed or rejected."""
        return self._query("SELECT COUNT(*) FROM reports WHERE status IN ('pending', 'sending')")[
            0
        ][0]

    def in_flight(self) -> list[Report]:
        rows = self._query("SELECT * FROM reports WHERE status = 'sending' ORDER BY seq")
        return [self._report(r) for r in rows]

    def next_pending_id(self) -> int | None:
        rows = self._query("SELECT MIN(id) FROM reports WHERE status = 'pending'")
        return rows[0][0]

    def assign(self, first_seq: int, limit: int, max_wh: int | None = None) -> list[Report]:
        """Hand the oldest pending reports to the chain: give them `first_seq`, ... .

        A produced or consumed report above `max_wh` (the unit's maximum on the ledger) is
        split in the same transaction: it keeps `max_wh`, the rest becomes a new pending
        report of the same reading (the total is unchanged; nothing waits behind a report
        the ledger would refuse forever)."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM reports WHERE status = 'pending' ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
            if max_wh is not None and max_wh > 0:
                for row in rows:
                    if row["kind"] == "actual" or row["wh"] <= max_wh:
                        continue
                    db.execute("UPDATE reports SET wh = ? WHERE id = ?", (max_wh, row["id"]))
                    db.execute(
                        "INSERT INTO reports (reading_id, channel, kind, account, wh, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            row["reading_id"],
                            row["channel"],
                            row["kind"],
                            row["account"],
                            row["wh"] - max_wh,
                            row["created_at"],
                        ),
                    )
            db.executemany(
                "UPDATE reports SET status = 'sending', seq = ? WHERE id = ?",
                [(first_seq + i, row["id"]) for i, row in enumerate(rows)],
            )
            ids = [row["id"] for row in rows]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            rows = db.execute(
                f"SELECT * FROM reports WHERE id IN ({marks}) ORDER BY seq", ids
            ).fetchall()
        return [self._report(r) for r in rows]

    def record_tx(self, reports: list[Report], tx_hash: str, nonce: int, method: str) -> int:
        """Remember a signed transaction before it is broadcast."""
        with self._tx() as db:
            tx_id = db.execute(
                "INSERT INTO txs (tx_hash, nonce, method, first_seq, count, signed_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (tx_hash, nonce, method, reports[0].seq, len(reports), time.time()),
            ).lastrowid
            db.executemany(
                "UPDATE reports SET tx_id = ? WHERE id = ?", [(tx_id, r.id) for r in reports]
            )
        return tx_id

    def confirm(self, reports: list[Report], tx_id: int, block_number: int, gas_used: int) -> None:
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE txs SET status = 'mined', block_number = ?, gas_used = ? WHERE id = ?",
                (block_number, gas_used, tx_id),
            )
            db.executemany(
                "UPDATE reports SET status = 'confirmed', confirmed_at = ?, tx_id = ?"
                " WHERE id = ? AND status = 'sending'",
                [(now, tx_id, r.id) for r in reports],
            )

    def mark_tx(self, tx_id: int, status: str, error: str | None = None, **receipt: Any) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE txs SET status = ?, error = ?, block_number = COALESCE(?, block_number),"
                " gas_used = COALESCE(?, gas_used) WHERE id = ?",
                (status, error, receipt.get("block_number"), receipt.get("gas_used"), tx_id),
            )

    def assigned(self) -> list[dict[str, Any]]:
        """Reports holding a sequence number (sending or confirmed), with their transaction."""
        rows = self._query(
            "SELECT r.*, t.tx_hash, t.block_number FROM reports r"
            " LEFT JOIN txs t ON t.id = r.tx_id"
            " WHERE r.status IN ('sending', 'confirmed') ORDER BY r.seq"
        )
        return [dict(r) for r in rows]

    def pending(self) -> list[Report]:
        rows = self._query("SELECT * FROM reports WHERE status = 'pending' ORDER BY id")
        return [self._report(r) for r in rows]

    def own_txs(self) -> dict[str, dict[str, Any]]:
        """Every transaction this outbox signed, by lower-case hash."""
        return {r["tx_hash"].lower(): dict(r) for r in self._query("SELECT * FROM txs")}

    def confirm_on_chain(
        self, report_id: int, seq: int, tx_hash: str, block_number: int, gas_used: int | None
    ) -> None:
        """Reconciliation found this report on chain under `seq` in `tx_hash`."""
        with self._tx() as db:
            row = db.execute(
                "SELECT id FROM txs WHERE lower(tx_hash) = ?", (tx_hash.lower(),)
            ).fetchone()
            if row is None:
                # Adopted: sent by this unit from a copy of the outbox that was lost.
                tx_id = db.execute(
                    "INSERT INTO txs (tx_hash, nonce, method, first_seq, count, signed_at,"
                    " status, block_number, gas_used) VALUES (?, -1, 'adopted', ?, 1, ?,"
                    " 'mined', ?, ?)",
                    (tx_hash, seq, time.time(), block_number, gas_used),
                ).lastrowid
            else:
                tx_id = row["id"]
                db.execute(
                    "UPDATE txs SET status = 'mined', block_number = ?,"
                    " gas_used = COALESCE(?, gas_used) WHERE id = ?",
                    (block_number, gas_used, tx_id),
                )
            db.execute(
                "UPDATE reports SET status = 'confirmed', seq = ?, tx_id = ?,"
                " confirmed_at = COALESCE(confirmed_at, ?) WHERE id = ?",
                (seq, tx_id, time.time(), report_id),
            )

    def add_adopted(self, channel: str, kind: str, account: str | None, wh: int) -> int:
        """A row for a report the ledger holds from a reading this outbox lost (attached to
        the newest reading it has); confirmed next by `confirm_on_chain`."""
        with self._tx() as db:
            reading = db.execute("SELECT MAX(id) FROM readings").fetchone()[0]
            if reading is None:
                raise StateError(f"{self.path}: no reading to attach adopted reports to")
            return db.execute(
                "INSERT INTO reports (reading_id, channel, kind, account, wh, created_at,"
                " status, error) VALUES (?, ?, ?, ?, ?, ?, 'sending', 'adopted from the chain')",
                (reading, channel, kind, account, wh, time.time()),
            ).lastrowid

    def unconfirm(self, report_ids: list[int]) -> int:
        """The chain lost these confirmed reports (a rollback): they are pending again."""
        with self._tx() as db:
            return db.executemany(
                "UPDATE reports SET status = 'pending', seq = NULL, tx_id = NULL,"
                " confirmed_at = NULL, final = 0 WHERE id = ? AND status = 'confirmed'",
                [(i,) for i in report_ids],
            ).rowcount

    def finalize(self, through_block: int) -> int:
        """Confirmed reports mined at or below `through_block` are final."""
        with self._tx() as db:
            return db.execute(
                "UPDATE reports SET final = 1 WHERE status = 'confirmed' AND final = 0"
                " AND tx_id IN (SELECT id FROM txs WHERE block_number <= ?)",
                (through_block,),
            ).rowcount

    def final_through(self) -> tuple[int, int]:
        """(highest final seq, the block it was mined in), or (0, 0)."""
        rows = self._query(
            "SELECT r.seq, t.block_number FROM reports r JOIN txs t ON t.id = r.tx_id"
            " WHERE r.status = 'confirmed' AND r.final = 1 ORDER BY r.seq DESC LIMIT 1"
        )
        return (rows[0]["seq"], rows[0]["block_number"]) if rows else (0, 0)

    def prune(self, before: float) -> int:
        """Retention: drop confirmed, final reports confirmed before `before` (the newest
        actual report stays), keeping their sums in `pruned`; then the readings, anomalies
        and transactions nothing refers to any more. Returns the reports dropped."""
        with self._tx() as db:
            old = "status = 'confirmed' AND final = 1 AND confirmed_at < ?"
            db.execute(
                "INSERT INTO pruned (kind, account, wh, count)"
                f" SELECT kind, account, SUM(wh), COUNT(*) FROM reports WHERE {old}"
                " AND kind != 'actual' GROUP BY kind, account"
                " ON CONFLICT (kind, account) DO UPDATE SET wh = wh + excluded.wh,"
                " count = count + excluded.count",
                (before,),
            )
            newest_actual = db.execute(
                "SELECT MAX(seq) FROM reports WHERE kind = 'actual' AND status = 'confirmed'"
            ).fetchone()[0]
            dropped = db.execute(
                f"DELETE FROM reports WHERE {old} AND NOT (kind = 'actual' AND seq IS ?)",
                (before, newest_actual),
            ).rowcount
            unused = (
                "recorded_at < ? AND id NOT IN (SELECT reading_id FROM reports)"
                " AND id NOT IN (SELECT reading_id FROM meter_state)"
            )
            db.execute(
                "DELETE FROM anomalies WHERE reading_id IN"
                f" (SELECT id FROM readings WHERE {unused})",
                (before,),
            )
            db.execute(f"DELETE FROM readings WHERE {unused}", (before,))
            db.execute(
                "DELETE FROM txs WHERE signed_at < ? AND status != 'signed'"
                " AND id NOT IN (SELECT tx_id FROM reports WHERE tx_id IS NOT NULL)",
                (before,),
            )
        return dropped

    def release(self, reports: list[Report] | None = None) -> int:
        """Reports known not to be on chain go back to pending and lose their numbers."""
        with self._tx() as db:
            if reports is None:
                sql, args = "WHERE status = 'sending'", ()
            else:
                marks = ",".join("?" * len(reports))
                sql, args = (
                    f"WHERE status = 'sending' AND id IN ({marks})",
                    tuple(r.id for r in reports),
                )
            return db.execute(
                f"UPDATE reports SET status = 'pending', seq = NULL, tx_id = NULL {sql}", args
            ).rowcount

    def statuses(self, reports: list[Report]) -> dict[int, str]:
        marks = ",".join("?" * len(reports))
        rows = self._query(
            f"SELECT id, status FROM reports WHERE id IN ({marks})", tuple(r.id for r in reports)
        )
        return {r["id"]: r["status"] for r in rows}

    def reject(self, report: Report, reason: str) -> None:
        """The ledger refuses this report for good: keep it, visibly, but never resend it."""
        with self._tx() as db:
            db.execute(
                "UPDATE reports SET status = 'rejected', seq = NULL, error = ? WHERE id = ?",
                (reason, report.id),
            )

    def max_seq(self, status: str = "confirmed") -> int | None:
        return self._query("SELECT MAX(seq) FROM reports WHERE status = ?", (status,))[0][0]

    # -- inspection --------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT status, COUNT(*) AS n FROM reports GROUP BY status")
        counts = {s: 0 for s in ("pending", "sending", "confirmed", "rejected")}
        counts.update({r["status"]: r["n"] for r in rows})
        return counts

    def last_confirmed(self) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT r.seq, r.kind, r.channel, r.wh, r.confirmed_at, t.tx_hash, t.block_number"
            " FROM reports r LEFT JOIN txs t ON t.id = r.tx_id"
            " WHERE r.status = 'confirmed' ORDER BY r.seq DESC LIMIT 1"
        )
        return dict(rows[0]) if rows else None

    def last_readings(self) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT r.* FROM readings r JOIN meter_state m ON m.reading_id = r.id ORDER BY r.meter"
        )
        return [dict(r) for r in rows]

    def totals(self, status: str = "confirmed") -> dict[tuple[str, str | None], int]:
        """Sum of reported Wh per (kind, account) for flows; the last value for actual."""
        rows = self._query(
            "SELECT kind, account, SUM(wh) AS wh FROM reports"
            " WHERE status = ? AND kind != 'actual' GROUP BY kind, account",
            (status,),
        )
        totals = {(r["kind"], r["account"]): r["wh"] for r in rows}
        if status == "confirmed":
            for r in self._query("SELECT kind, account, wh FROM pruned"):
                key = (r["kind"], r["account"])
                totals[key] = totals.get(key, 0) + r["wh"]
        actual = self._query(
            "SELECT wh FROM reports WHERE status = ? AND kind = 'actual' ORDER BY seq DESC LIMIT 1",
            (status,),
        )
        if actual:
            totals[("actual", None)] = actual[0]["wh"]
        return totals

    def table(self, name: str) -> list[dict[str, Any]]:
        if name not in {"readings", "reports", "anomalies", "txs"}:
            raise ValueError(name)
        return [dict(r) for r in self._query(f"SELECT * FROM {name} ORDER BY id")]

    def columns(self, name: str) -> list[str]:
        """The table's column names, in order (an export of an empty table still has them)."""
        if name not in {"readings", "reports", "anomalies", "txs"}:
            raise ValueError(name)
        return [row[1] for row in self._query(f"PRAGMA table_info({name})")]

    def count(self, name: str) -> int:
        if name not in {"readings", "reports", "anomalies", "txs"}:
            raise ValueError(name)
        return self._query(f"SELECT COUNT(*) FROM {name}")[0][0]
