"""The queen's outbox: one SQLite file (WAL, synchronous=FULL) with a row per closed period
holding every worker's numbers, the meters' baselines, and the transactions sent.

- **Periods.** Closing a period is one transaction: the period rows (a reading that covers
  several closed periods writes one row each), the meters' new baselines and the next period
  to record. A period id is the primary key, so recording is idempotent; a SIGKILL leaves the
  old baselines and no row (the next reading measures the same energy again) or both.
- **Status.** `pending` until the market's `next_period` has passed it (`settled`). Which of
  its workers are already settled is never kept here: it is read from the chain (the market's
  open period and each worker's `settled_period`), so nothing kept can disagree with it.
- **Transactions** are recorded (hash, nonce, batch) before they are broadcast, for `status`
  and the operator; reconciliation does not need them.
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

PENDING = "pending"
SETTLED = "settled"

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
    settled_at REAL
);
CREATE TABLE IF NOT EXISTS txs (
    tx_hash TEXT PRIMARY KEY, period INTEGER NOT NULL, batch INTEGER NOT NULL,
    nonce INTEGER NOT NULL, workers INTEGER NOT NULL, status TEXT NOT NULL,
    sent_at REAL NOT NULL, block_number INTEGER, gas_used INTEGER
);
"""


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


class QueenStore:
    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        try:
            if readonly:
                if not self.path.exists():
                    raise StateError(f"{self.path}: no queen outbox yet (never started?)")
                self._db = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
                )
            else:
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: {exc}") from None
        self._lock = threading.RLock()

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
                    json.dumps([[e.worker, e.produced, e.consumed] for e in p.entries]),
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

    def mark_settled(self, period: int) -> None:
        self._write(
            [
                (
                    "UPDATE periods SET status = ?, settled_at = ? WHERE period = ?",
                    (SETTLED, time.time(), period),
                )
            ]
        )

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM periods GROUP BY status")
            found = dict(rows.fetchall())
        return {PENDING: found.get(PENDING, 0), SETTLED: found.get(SETTLED, 0)}

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

    def tx_done(self, tx_hash: str, status: str, block: int | None, gas: int | None) -> None:
        self._write(
            [
                (
                    "UPDATE txs SET status = ?, block_number = ?, gas_used = ? WHERE tx_hash = ?",
                    (status, block, gas, tx_hash),
                )
            ]
        )

    def txs(self) -> list[dict]:
        with self._lock:
            cursor = self._db.execute(
                "SELECT tx_hash, period, batch, nonce, workers, status, sent_at, block_number, "
                "gas_used FROM txs ORDER BY sent_at"
            )
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
