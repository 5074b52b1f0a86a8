"""Fixed-window counters in a SQLite file of their own, shared by every process that opens it.

SQLite has one writer per database file. Counting each request in the application's own
database made every request, reads included, queue for that lock behind submits' and
workers' transactions; a file of its own has only these one-statement upserts to wait for.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS window_count ("
    " key TEXT NOT NULL, window_start INTEGER NOT NULL, count INTEGER NOT NULL,"
    " PRIMARY KEY (key, window_start)) WITHOUT ROWID"
)
# The new counts come back through a temporary table of this connection's own, filled by
# its own triggers, not through RETURNING: a statement with RETURNING keeps the file's
# write lock until its last row is fetched, and Python fetches each row holding the GIL,
# so a busy process kept every other process's count waiting for its GIL. Measured by
# `python -m bench.windowcounts` (docs/performance.md, "Waits, third pass"): p99 per count
# 1.6-2.2 s with RETURNING, 0.11 s with the triggers.
_SEEN = (
    "CREATE TEMP TABLE seen (key TEXT NOT NULL, count INTEGER NOT NULL)",
    *(
        # Delete, then insert: a trigger's own conflict clause (INSERT OR REPLACE) gives way
        # to the upsert's, so a row an interrupted count left behind would fail the next.
        f"CREATE TEMP TRIGGER seen_after_{event.lower()} AFTER {event} ON main.window_count "
        "BEGIN DELETE FROM seen WHERE key = NEW.key; "
        "INSERT INTO seen (key, count) VALUES (NEW.key, NEW.count); END"
        for event in ("INSERT", "UPDATE")
    ),
)
_UPSERT = (
    "INSERT INTO window_count (key, window_start, count) VALUES {rows} "
    "ON CONFLICT (key, window_start) DO UPDATE SET count = count + 1"
)


class WindowCounts:
    """Counts per (key, window start) in the SQLite file at `path`, created on first use."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 20.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and process: a connection must not cross a fork, and
        # sqlite3 connections are not shared between threads.
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "held", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        # The counts need no durability across a power cut: NORMAL syncs only at checkpoints.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        self._prepare(conn)
        self._local.held = (os.getpid(), conn)
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute(_SCHEMA)
        for statement in _SEEN:
            conn.execute(statement)

    def ensure(self) -> None:
        """Create the file and its table now (at migrate time) rather than on first use."""
        self._connection()

    def hit(self, keys: list[str], window_start: int) -> dict[str, int]:
        """Count one hit against each distinct key in `window_start`; answer the new counts."""
        conn = self._connection()
        rows = ", ".join(["(?, ?, 1)"] * len(keys))
        params = [value for key in keys for value in (key, window_start)]
        conn.execute(_UPSERT.format(rows=rows), params)
        # RETURNING here is harmless: the temporary table is this connection's alone.
        seen = conn.execute("DELETE FROM seen RETURNING key, count")
        counts = {key: int(count) for key, count in seen}
        fresh = [key for key, count in counts.items() if count == 1]
        if fresh:  # the first hit of a window clears the key's older windows
            marks = ", ".join("?" * len(fresh))
            conn.execute(
                f"DELETE FROM window_count WHERE key IN ({marks}) AND window_start < ?",
                [*fresh, window_start],
            )
        return counts

    def clear(self) -> None:
        self._connection().execute("DELETE FROM window_count")

    def close(self) -> None:
        held = getattr(self._local, "held", None)
        if held is not None:
            held[1].close()
            self._local.held = None
