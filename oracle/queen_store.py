"""The queen's outbox: one SQLite file (WAL, synchronous=FULL) with a row per closed period
holding every worker's numbers, the meters' baselines, and the transactions sent.

- **Periods.** Closing a period is one transaction: the period rows (a reading that covers
  several closed periods writes one row each), the meters' new baselines and the next period
  to record. A period id is the primary key, so recording is idempotent; a SIGKILL leaves the
  old baselines and no row (the next reading measures the same energy again) or both.
- **Status.** `pending` until the market's `next_period` has passed it (`settled`). Which of
  its workers are already settled is never kept here: it is read from the chain (the market's
  open period and each worker's `settled_period`), so nothing kept can disagree with it.
- **Final.** A settled period becomes `final` once every transaction that settled it (the
  queen's own, `mined`, or the chain's `BatchSettled` ones it adopted, `adopted`) is still in
  the block it was seen in and has `confirmations` blocks on top; one whose transaction
  vanished (a reorganisation) goes back to `pending` (`reorged`). Only final periods older
  than the retention are ever deleted.
- **Mismatches.** A period the chain settled with other numbers than recorded keeps the
  error line reported (`mismatch`) until the operator acknowledges it (`acked_at`, `oracle
  queen-ack`): until then the queen's `/health` is 503, across restarts, and the retention
  keeps the period.
- **Transactions** are recorded (hash, nonce, batch) before they are broadcast, and with the
  block (number and hash) they were mined in.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from oracle.accounting import Baseline
from oracle.errors import OutboxUnavailable, StateError
from oracle.sqlite_db import open_db

PENDING = "pending"
SETTLED = "settled"
# Transaction states: sent, mined, reverted, dropped (never broadcast), adopted (the chain's,
# not signed by this outbox), reorged (mined, then gone from the chain).
MINED = "mined"
ADOPTED = "adopted"
REORGED = "reorged"
SETTLING = (MINED, ADOPTED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS baselines (
    worker TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, ts REAL NOT NULL,
    import_wh INTEGER NOT NULL, export_wh INTEGER NOT NULL, monotonic REAL, clock TEXT
);
CREATE TABLE IF NOT EXISTS periods (
    period INTEGER PRIMARY KEY,
    -- JSON [[worker, produced Wh, consumed Wh], ...] in the configuration's worker order.
    entries TEXT NOT NULL,
    production INTEGER NOT NULL, consumption INTEGER NOT NULL,
    recorded_at REAL NOT NULL, status TEXT NOT NULL,
    settled_at REAL,
    -- 1 once every transaction that settled it has `confirmations` blocks on top.
    final INTEGER NOT NULL DEFAULT 0,
    -- When the chain settled other numbers than recorded: the recorded entries (JSON),
    -- the error line reported, and when the operator acknowledged it (`oracle queen-ack`).
    recorded_entries TEXT,
    mismatch TEXT,
    acked_at REAL
);
CREATE TABLE IF NOT EXISTS txs (
    tx_hash TEXT PRIMARY KEY, period INTEGER NOT NULL, batch INTEGER NOT NULL,
    nonce INTEGER NOT NULL, workers INTEGER NOT NULL, status TEXT NOT NULL,
    sent_at REAL NOT NULL, block_number INTEGER, gas_used INTEGER, block_hash TEXT
);
-- Workers of a period the chain answered "worker already settled" for (checked on chain).
CREATE TABLE IF NOT EXISTS done_workers (
    period INTEGER NOT NULL, worker TEXT NOT NULL, PRIMARY KEY (period, worker)
);
"""
# Columns added since the first queen outbox (ALTER TABLE on an older file).
MIGRATIONS = (
    ("periods", "final", "INTEGER NOT NULL DEFAULT 0"),
    ("periods", "recorded_entries", "TEXT"),
    ("txs", "block_hash", "TEXT"),
    ("periods", "mismatch", "TEXT"),
    ("periods", "acked_at", "REAL"),
)


@dataclass(frozen=True)
class Entry:
    worker: str
    produced: int
    consumed: int

    def packed(self, index: int) -> int:
        """The market's entry word: `produced << 192 | consumed << 160 | index`, `index` being
        the worker's index in its hive on the market (`worker(w).index`)."""
        return self.produced << 192 | self.consumed << 160 | index


@dataclass(frozen=True)
class Period:
    period: int
    entries: tuple[Entry, ...]
    status: str = PENDING

    @property
    def production(self) -> int:
        """Net production P: the sum of each worker's produced - consumed where positive."""
        return sum(max(e.produced - e.consumed, 0) for e in self.entries)

    @property
    def consumption(self) -> int:
        return sum(max(e.consumed - e.produced, 0) for e in self.entries)


# `export_rows`'s columns, in order.
EXPORT_COLUMNS = [
    "period",
    "worker",
    "produced_wh",
    "consumed_wh",
    "status",
    "final",
    "recorded_produced_wh",
    "recorded_consumed_wh",
    "tx_hashes",
    "recorded_at",
    "settled_at",
]


def _entries_json(entries: tuple[Entry, ...]) -> str:
    return json.dumps([[e.worker, e.produced, e.consumed] for e in entries])


class QueenStore:
    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        self._db = open_db(
            self.path,
            readonly=readonly,
            missing="no queen outbox yet (never started?)",
            schema=SCHEMA,
        )
        if not readonly:
            self._migrate()
        self._lock = threading.RLock()

    def _migrate(self) -> None:
        try:
            for table, column, decl in MIGRATIONS:
                have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, args in statements:
                        self._db.execute(sql, args)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise OutboxUnavailable(f"{self.path}: {exc}; nothing recorded") from None

    # -- meta --------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def bind(self, **values: str) -> None:
        """Tie the outbox to this chain, market, hive and queen; a different one is an error."""
        meta = self.meta()
        for key, value in values.items():
            if key in meta and meta[key] != value:
                raise StateError(
                    f"{self.path} belongs to {key} {meta[key]}, not {value}; use another state_dir"
                )
        self._write(
            [("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", kv) for kv in values.items()]
        )

    def next_to_record(self) -> int | None:
        value = self.meta().get("next_period")
        return None if value is None else int(value)

    # -- baselines ---------------------------------------------------------------------------

    def baselines(self) -> dict[str, tuple[str, Baseline]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT worker, fingerprint, ts, import_wh, export_wh, monotonic, clock "
                "FROM baselines"
            ).fetchall()
        return {r[0]: (r[1], Baseline(r[2], r[3], r[4], r[5], r[6])) for r in rows}

    # -- periods -----------------------------------------------------------------------------

    def record(
        self,
        periods: list[Period],
        baselines: dict[str, tuple[str, Baseline]],
        next_period: int,
    ) -> None:
        """Closed periods, the new baselines and the next period to record, in one commit."""
        now = time.time()
        statements: list[tuple[str, tuple]] = [
            (
                "INSERT OR IGNORE INTO periods (period, entries, production, consumption, "
                "recorded_at, status) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    p.period,
                    _entries_json(p.entries),
                    p.production,
                    p.consumption,
                    now,
                    PENDING,
                ),
            )
            for p in periods
        ]
        statements += [
            (
                "INSERT OR REPLACE INTO baselines (worker, fingerprint, ts, import_wh, "
                "export_wh, monotonic, clock) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (w, fp, b.ts, b.import_wh, b.export_wh, b.monotonic, b.clock),
            )
            for w, (fp, b) in baselines.items()
        ]
        statements.append(
            (
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_period', ?)",
                (str(next_period),),
            )
        )
        self._write(statements)

    @staticmethod
    def _period(row: tuple) -> Period:
        return Period(row[0], tuple(Entry(w, p, c) for w, p, c in json.loads(row[1])), row[2])

    def oldest_pending(self) -> Period | None:
        with self._lock:
            row = self._db.execute(
                "SELECT period, entries, status FROM periods WHERE status = ? "
                "ORDER BY period LIMIT 1",
                (PENDING,),
            ).fetchone()
        return None if row is None else self._period(row)

    def periods(self) -> list[Period]:
        with self._lock:
            rows = self._db.execute(
                "SELECT period, entries, status FROM periods ORDER BY period"
            ).fetchall()
        return [self._period(r) for r in rows]

    def mark_settled(
        self,
        period: int,
        chain_entries: tuple[Entry, ...] | None = None,
        mismatch: str | None = None,
    ) -> None:
        """The chain has the period; with `chain_entries` (the chain's numbers, which differ
        from the recorded ones) those replace the recorded entries, which are kept aside, and
        `mismatch` (the error line) waits for the operator's acknowledgement."""
        statements: list[tuple[str, tuple]] = []
        if chain_entries is not None:
            p = Period(period, chain_entries)
            statements.append(
                (
                    "UPDATE periods SET recorded_entries = COALESCE(recorded_entries, entries), "
                    "entries = ?, production = ?, consumption = ? WHERE period = ?",
                    (_entries_json(chain_entries), p.production, p.consumption, period),
                )
            )
        if mismatch is not None:
            statements.append(
                (
                    "UPDATE periods SET mismatch = ?, acked_at = NULL WHERE period = ?",
                    (mismatch, period),
                )
            )
        statements.append(
            (
                "UPDATE periods SET status = ?, settled_at = ?, final = 0 WHERE period = ?",
                (SETTLED, time.time(), period),
            )
        )
        self._write(statements)

    def unfinal(self) -> list[int]:
        """Settled periods not final yet, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT period FROM periods WHERE status = ? AND final = 0 ORDER BY period",
                (SETTLED,),
            ).fetchall()
        return [r[0] for r in rows]

    def mismatches(self) -> list[tuple[int, str]]:
        """(period, error line) of every mismatch not acknowledged yet, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT period, mismatch FROM periods WHERE mismatch IS NOT NULL "
                "AND acked_at IS NULL ORDER BY period"
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def acknowledge(self, period: int) -> float | None:
        """Record the operator's acknowledgement of `period`'s mismatch; returns when it was
        acknowledged before (None: now). `StateError` when there is nothing to acknowledge."""
        with self._lock:
            row = self._db.execute(
                "SELECT mismatch, acked_at FROM periods WHERE period = ?", (period,)
            ).fetchone()
        if row is None:
            raise StateError(f"{self.path}: no period {period} in the queen's outbox")
        if row[0] is None:
            raise StateError(
                f"period {period}: the chain settled the numbers the outbox recorded; "
                "nothing to acknowledge"
            )
        if row[1] is not None:
            return float(row[1])
        self._write(
            [
                (
                    "UPDATE periods SET acked_at = ? WHERE period = ? AND acked_at IS NULL",
                    (time.time(), period),
                )
            ]
        )
        return None

    def mark_final(self, period: int) -> None:
        self._write([("UPDATE periods SET final = 1 WHERE period = ?", (period,))])

    def reorged(self, period: int, tx_hashes: list[str]) -> None:
        """The transactions that settled `period` are gone from the chain: back to pending
        (with the workers marked done for it), the transactions `reorged`."""
        self._write(
            [
                (
                    "UPDATE periods SET status = ?, settled_at = NULL, final = 0 WHERE period = ?",
                    (PENDING, period),
                ),
                ("DELETE FROM done_workers WHERE period = ?", (period,)),
            ]
            + [("UPDATE txs SET status = ? WHERE tx_hash = ?", (REORGED, h)) for h in tx_hashes]
        )

    def moved(self, tx_hash: str, block: int, block_hash: str) -> None:
        """A transaction mined again in another block after a reorganisation."""
        self._write(
            [
                (
                    "UPDATE txs SET block_number = ?, block_hash = ? WHERE tx_hash = ?",
                    (block, block_hash, tx_hash),
                )
            ]
        )

    def done_workers(self, period: int) -> set[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT worker FROM done_workers WHERE period = ?", (period,)
            ).fetchall()
        return {r[0] for r in rows}

    def mark_done(self, period: int, workers: list[str]) -> None:
        self._write(
            [
                ("INSERT OR IGNORE INTO done_workers (period, worker) VALUES (?, ?)", (period, w))
                for w in workers
            ]
        )

    def prune(self, before: float) -> int:
        """Delete final periods settled before `before` (Unix time), their transactions and
        marks; never a pending or a not yet final one, nor an unacknowledged mismatch.
        Returns how many periods went."""
        with self._lock:
            rows = self._db.execute(
                "SELECT period FROM periods WHERE status = ? AND final = 1 AND settled_at < ? "
                "AND (mismatch IS NULL OR acked_at IS NOT NULL)",
                (SETTLED, before),
            ).fetchall()
        periods = [r[0] for r in rows]
        if periods:
            statements: list[tuple[str, tuple]] = []
            for p in periods:
                statements += [
                    ("DELETE FROM txs WHERE period = ?", (p,)),
                    ("DELETE FROM done_workers WHERE period = ?", (p,)),
                    ("DELETE FROM periods WHERE period = ?", (p,)),
                ]
            self._write(statements)
        return len(periods)

    def export_rows(self) -> list[dict]:
        """One row per period and worker: the numbers settled (or recorded, while pending),
        what was recorded when the chain's differ, and the transactions that settled it."""
        txs: dict[int, list[str]] = {}
        for t in self.txs():
            if t["status"] in SETTLING:
                txs.setdefault(t["period"], []).append(t["tx_hash"])
        with self._lock:
            rows = self._db.execute(
                "SELECT period, entries, status, final, recorded_at, settled_at, "
                "recorded_entries FROM periods ORDER BY period"
            ).fetchall()
        out = []
        for period, entries, status, final, recorded_at, settled_at, recorded in rows:
            before = {w: (p, c) for w, p, c in json.loads(recorded)} if recorded else {}
            for worker, produced, consumed in json.loads(entries):
                out.append(
                    {
                        "period": period,
                        "worker": worker,
                        "produced_wh": produced,
                        "consumed_wh": consumed,
                        "status": status,
                        "final": bool(final),
                        "recorded_produced_wh": before.get(worker, (produced, consumed))[0],
                        "recorded_consumed_wh": before.get(worker, (produced, consumed))[1],
                        "tx_hashes": " ".join(txs.get(period, [])),
                        "recorded_at": recorded_at,
                        "settled_at": settled_at,
                    }
                )
        return out

    def counts(self) -> dict[str, int]:
        """Periods pending and settled, and of the settled ones how many are final (every
        settling transaction `confirmations` deep) and how many not yet."""
        with self._lock:
            rows = self._db.execute(
                "SELECT status, final, COUNT(*) FROM periods GROUP BY status, final"
            ).fetchall()
        found: dict[tuple[str, int], int] = {(r[0], int(r[1])): r[2] for r in rows}
        pending = sum(n for (status, _), n in found.items() if status == PENDING)
        final = found.get((SETTLED, 1), 0)
        unfinal = found.get((SETTLED, 0), 0)
        return {PENDING: pending, SETTLED: final + unfinal, "final": final, "not_final": unfinal}

    def last_settled(self) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT period, production, consumption, settled_at FROM periods "
                "WHERE status = ? ORDER BY period DESC LIMIT 1",
                (SETTLED,),
            ).fetchone()
        if row is None:
            return None
        return dict(zip(("period", "production", "consumption", "settled_at"), row, strict=True))

    # -- transactions ------------------------------------------------------------------------

    def tx_sent(self, tx_hash: str, period: int, batch: int, nonce: int, workers: int) -> None:
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO txs (tx_hash, period, batch, nonce, workers, status, "
                    "sent_at) VALUES (?, ?, ?, ?, ?, 'sent', ?)",
                    (tx_hash, period, batch, nonce, workers, time.time()),
                )
            ]
        )

    def tx_done(
        self,
        tx_hash: str,
        status: str,
        block: int | None,
        gas: int | None,
        block_hash: str | None = None,
    ) -> None:
        self._write(
            [
                (
                    "UPDATE txs SET status = ?, block_number = ?, gas_used = ?, block_hash = ? "
                    "WHERE tx_hash = ?",
                    (status, block, gas, block_hash, tx_hash),
                )
            ]
        )

    def adopt_tx(self, tx_hash: str, period: int, workers: int, block: int, block_hash: str):
        """A `BatchSettled` of the period this outbox did not sign (another process with the
        queen's key, or a copy of the outbox that was lost): kept for reorg checks."""
        self._write(
            [
                (
                    "INSERT OR IGNORE INTO txs (tx_hash, period, batch, nonce, workers, status, "
                    "sent_at, block_number, block_hash) VALUES (?, ?, -1, -1, ?, ?, ?, ?, ?)",
                    (tx_hash, period, workers, ADOPTED, time.time(), block, block_hash),
                )
            ]
        )

    def txs(self) -> list[dict]:
        with self._lock:
            cursor = self._db.execute(
                "SELECT tx_hash, period, batch, nonce, workers, status, sent_at, block_number, "
                "gas_used, block_hash FROM txs ORDER BY sent_at"
            )
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
