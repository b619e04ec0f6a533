"""The one way the oracle's services open their SQLite state (the unit's outbox, the queen's
outbox, the relayer's state): autocommit connections shared across threads (each store holds
its own lock), WAL so that `status` and `export` read beside a running service, and
`synchronous=FULL` so that a committed row survives a power cut."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from oracle.errors import StateError


def open_db(
    path: Path,
    *,
    readonly: bool = False,
    missing: str = "no state yet (never started?)",
    timeout: float = 5.0,
    row_factory: type | None = None,
    schema: str | None = None,
) -> sqlite3.Connection:
    """A read-write connection in WAL mode with `synchronous=FULL` (the parent folder
    created), or a read-only one on an existing file (`StateError` "<path>: <missing>" when
    there is none), `schema` (CREATE ... IF NOT EXISTS statements) run on a read-write one.
    Any SQLite error opening it is one `StateError` line."""
    path = Path(path)
    if readonly and not path.exists():
        raise StateError(f"{path}: {missing}")
    try:
        if readonly:
            db = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=timeout
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=timeout
            )
        if row_factory is not None:
            db.row_factory = row_factory
        if not readonly:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            if schema is not None:
                db.executescript(schema)
    except sqlite3.DatabaseError as exc:
        raise StateError(f"{path}: {exc}") from None
    return db
