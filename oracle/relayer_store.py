"""The relayer's state: one SQLite file with each chain's cursor, the Bridge events it saw, and
its binding (chains, Bridges, relayer key).

- **Cursor.** Per chain, the blocks scanned so far end at the newest row of `blocks`
  (number, hash); older rows, up to the reorg window, are kept to find a fork point.
- **Events** are stored with their block, only from blocks that had the configured
  confirmations when scanned. What remains to do is derived from them, never kept as a
  separate status that could disagree: a transfer needs an `unlock` while its destination
  shows neither `TransferUnlocked` nor `TransferCancelled`; its source needs
  `mark_transferred` while it shows `TransferUnlocked` on the destination and no
  `TransferCompleted` on the source; a refund while `TransferCancelled` and no
  `TransferRefunded`.
- **Rewind.** A reorg on a chain deletes its rows above the fork point in one transaction;
  the rescan puts back what the new branch holds, and the derived work follows: an unlock the
  destination lost is needed again, a transfer the source lost is no longer relayed.

A scan's events and its new cursor are committed together, so a SIGKILL leaves either the
old cursor (the range is scanned again; inserting an event twice is a no-op) or the new one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from oracle.bridge_codec import Transfer
from oracle.errors import StateError
from oracle.sqlite_db import open_db

SENT = "sent"
UNLOCKED = "unlocked"
CANCELLED = "cancelled"
COMPLETED = "completed"
REFUNDED = "refunded"
KINDS = (SENT, UNLOCKED, CANCELLED, COMPLETED, REFUNDED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    chain_id INTEGER NOT NULL, number INTEGER NOT NULL, hash TEXT NOT NULL,
    PRIMARY KEY (chain_id, number)
);
CREATE TABLE IF NOT EXISTS events (
    chain_id INTEGER NOT NULL, number INTEGER NOT NULL, log_index INTEGER NOT NULL,
    block_hash TEXT NOT NULL, tx_hash TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
    -- The transfer's fields (kind 'sent' only), JSON.
    transfer TEXT, seen_at REAL NOT NULL,
    PRIMARY KEY (chain_id, number, log_index)
);
CREATE INDEX IF NOT EXISTS events_by_id ON events (id, kind, chain_id);
CREATE INDEX IF NOT EXISTS events_by_kind ON events (chain_id, kind);
"""


@dataclass(frozen=True)
class Event:
    """One Bridge event as scanned: `kind` (SENT, ...), the transfer id (0x hex), and for SENT
    the transfer itself."""

    chain_id: int
    number: int
    log_index: int
    block_hash: str
    tx_hash: str
    kind: str
    id: str
    transfer: Transfer | None = None


@dataclass(frozen=True)
class Work:
    """An attested call to make on `chain_id`: `action` for `transfer`, needed since
    `since` (wall clock, when this relayer first saw the event that made it needed)."""

    chain_id: int
    action: int
    transfer: Transfer
    id: str
    since: float


def _transfer_json(t: Transfer) -> str:
    return json.dumps(list(t))


def _transfer_of(text: str) -> Transfer:
    return Transfer(*json.loads(text))


class RelayerStore:
    """Thread-safe (the HTTP endpoint reads while the loop writes): one connection, one lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = open_db(self.path, schema=SCHEMA)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- meta --------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def bind(self, **values: str) -> None:
        """Tie the state to these chains, Bridges and key; a different one is an error."""
        with self._lock:
            meta = self.meta()
            for key, value in values.items():
                if key in meta and meta[key] != value:
                    raise StateError(
                        f"{self.path} belongs to {key} {meta[key]}, not {value}; "
                        "use another state_dir"
                    )
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for key, value in values.items():
                    self._db.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- cursor ------------------------------------------------------------------------------

    def cursor(self, chain_id: int) -> tuple[int, str] | None:
        """The last scanned block (number, hash), None before the first scan."""
        with self._lock:
            row = self._db.execute(
                "SELECT number, hash FROM blocks WHERE chain_id = ? ORDER BY number DESC LIMIT 1",
                (chain_id,),
            ).fetchone()
        return (int(row[0]), row[1]) if row else None

    def checkpoints(self, chain_id: int) -> list[tuple[int, str]]:
        """The kept (number, hash) of scanned blocks, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT number, hash FROM blocks WHERE chain_id = ? ORDER BY number DESC",
                (chain_id,),
            ).fetchall()
        return [(int(n), h) for n, h in rows]

    def advance(
        self,
        chain_id: int,
        events: Iterable[Event],
        number: int,
        block_hash: str,
        window: int,
        *,
        now: float | None = None,
    ) -> int:
        """Record `events` and the new cursor (`number`, `block_hash`) in one transaction;
        returns how many events were new. `now` (wall clock, default the time) is their
        `seen_at`."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                new = 0
                for e in events:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO events (chain_id, number, log_index, block_hash, "
                        "tx_hash, kind, id, transfer, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            chain_id,
                            e.number,
                            e.log_index,
                            e.block_hash,
                            e.tx_hash,
                            e.kind,
                            e.id,
                            _transfer_json(e.transfer) if e.transfer is not None else None,
                            now,
                        ),
                    )
                    new += cur.rowcount
                self._db.execute(
                    "INSERT OR REPLACE INTO blocks (chain_id, number, hash) VALUES (?, ?, ?)",
                    (chain_id, number, block_hash),
                )
                self._db.execute(
                    "DELETE FROM blocks WHERE chain_id = ? AND number NOT IN (SELECT number "
                    "FROM blocks WHERE chain_id = ? ORDER BY number DESC LIMIT ?)",
                    (chain_id, chain_id, window),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def rewind(self, chain_id: int, number: int | None) -> int:
        """Forget what was scanned above block `number` (everything with None); returns how
        many events were dropped."""
        floor = -1 if number is None else number
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                dropped = self._db.execute(
                    "DELETE FROM events WHERE chain_id = ? AND number > ?", (chain_id, floor)
                ).rowcount
                self._db.execute(
                    "DELETE FROM blocks WHERE chain_id = ? AND number > ?", (chain_id, floor)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return dropped

    # -- retention ---------------------------------------------------------------------------

    def prune(self, now: float, max_age_s: float | None, max_transfers: int | None) -> int:
        """Forget settled transfers: those whose source shows `TransferCompleted` or
        `TransferRefunded` (nothing is left to do for them on either chain) and that were
        settled more than `max_age_s` ago (by the settling event's `seen_at`), or that are
        beyond the newest `max_transfers` settled ones. Every event of such a transfer goes,
        on both chains, in one transaction; a transfer not settled on its source (to unlock,
        to mark, to cancel or to refund) is never touched. None: no limit. Returns how many
        transfers were removed."""
        settled = (
            "SELECT s.id AS id, c.seen_at AS at, c.number AS number, c.log_index AS li "
            "FROM events s JOIN events c ON c.id = s.id AND c.chain_id = s.chain_id "
            "AND c.kind IN ('completed', 'refunded') WHERE s.kind = 'sent'"
        )
        parts, args = [], []
        if max_age_s is not None:
            parts.append(f"SELECT id FROM ({settled}) WHERE at < ?")
            args.append(now - max_age_s)
        if max_transfers is not None:
            parts.append(
                f"SELECT id FROM (SELECT id FROM ({settled}) "
                "ORDER BY at DESC, number DESC, li DESC LIMIT -1 OFFSET ?)"
            )
            args.append(max_transfers)
        if not parts:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("CREATE TEMP TABLE IF NOT EXISTS prune_ids (id TEXT PRIMARY KEY)")
                self._db.execute("DELETE FROM prune_ids")
                self._db.execute(
                    "INSERT OR IGNORE INTO prune_ids (id) " + " UNION ".join(parts), args
                )
                removed = self._db.execute("SELECT COUNT(*) FROM prune_ids").fetchone()[0]
                self._db.execute("DELETE FROM events WHERE id IN (SELECT id FROM prune_ids)")
                self._db.execute("DELETE FROM prune_ids")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(removed)

    def transfers(self) -> int:
        """How many transfers (`TransferSent` events) the store holds."""
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM events WHERE kind = 'sent'").fetchone()[0]
            )

    # -- what the events say -----------------------------------------------------------------

    def has(self, chain_id: int, kind: str, transfer_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM events WHERE id = ? AND kind = ? AND chain_id = ? LIMIT 1",
                (transfer_id, kind, chain_id),
            ).fetchone()
        return row is not None

    def sent(self, transfer_id: str) -> tuple[int, Transfer] | None:
        """(source chain, transfer) of a confirmed `TransferSent`, if seen."""
        with self._lock:
            row = self._db.execute(
                "SELECT chain_id, transfer FROM events WHERE id = ? AND kind = ? LIMIT 1",
                (transfer_id, SENT),
            ).fetchone()
        return (int(row[0]), _transfer_of(row[1])) if row else None

    def _work(self, sql: str, args: tuple, chain_of, action: int, limit: int) -> list[Work]:
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY s.number, s.log_index LIMIT ?", (*args, limit))
            rows = rows.fetchall()
        out = []
        for source, text, tid, since in rows:
            t = _transfer_of(text)
            out.append(Work(chain_of(source, t), action, t, tid, float(since)))
        return out

    def needs_unlock(self, source: int, dest: int, action: int, limit: int = 500) -> list[Work]:
        """Transfers sent on `source` to `dest` that `dest` neither unlocked nor cancelled."""
        sql = (
            "SELECT s.chain_id, s.transfer, s.id, s.seen_at FROM events s WHERE s.chain_id = ? "
            "AND s.kind = 'sent' AND NOT EXISTS (SELECT 1 FROM events d WHERE d.id = s.id "
            "AND d.kind IN ('unlocked', 'cancelled') AND d.chain_id = ?)"
        )
        return self._work(sql, (source, dest), lambda _s, _t: dest, action, limit)

    def needs_settle(
        self, source: int, dest: int, seen: str, settled: str, action: int, limit: int = 500
    ) -> list[Work]:
        """Transfers sent on `source` for which `dest` shows `seen` (unlocked or cancelled)
        and `source` does not show `settled` (completed or refunded)."""
        sql = (
            "SELECT s.chain_id, s.transfer, s.id, MAX(s.seen_at, d.seen_at) FROM events s "
            "JOIN events d ON d.id = s.id AND d.kind = ? AND d.chain_id = ? "
            "WHERE s.chain_id = ? AND s.kind = 'sent' AND NOT EXISTS (SELECT 1 FROM events c "
            "WHERE c.id = s.id AND c.kind = ? AND c.chain_id = ?)"
        )
        return self._work(
            sql, (seen, dest, source, settled, source), lambda _s, _t: source, action, limit
        )

    def counts(self, chain_id: int) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, COUNT(*) FROM events WHERE chain_id = ? GROUP BY kind", (chain_id,)
            ).fetchall()
        found = dict(rows)
        return {k: int(found.get(k, 0)) for k in KINDS}
