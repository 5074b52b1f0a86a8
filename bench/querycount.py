"""Counting SQL statements in the web and worker processes of a benchmark run.

Installed only by the benchmark's own entry points (`bench.gunicorn_conf`, `bench.worker`):
each process adds an execute wrapper to every connection it opens and writes its running
total to `<dir>/<role>-<pid>.count` about once a second, so totals survive worker recycling.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

_count = 0
_lock = threading.Lock()


def _wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    global _count
    with _lock:
        _count += 1
    return execute(sql, params, many, context)


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_wrapper)


def _flush_forever(path: Path) -> None:
    last = -1
    while True:
        if _count != last:
            last = _count
            tmp = path.with_suffix(".tmp")
            tmp.write_text(str(last))
            tmp.replace(path)
        time.sleep(1.0)


def install(role: str) -> None:
    """Count queries of this process (and of processes forked from it later)."""
    directory = os.environ.get("BUNCH_BENCH_QUERY_DIR")
    if not directory:
        return
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection, weak=False)
    path = Path(directory) / f"{role}-{os.getpid()}.count"
    threading.Thread(target=_flush_forever, args=(path,), daemon=True).start()


def after_fork(role: str) -> None:
    """In a forked child: start from zero and flush under the child's own pid."""
    global _count, _lock
    _count = 0
    _lock = threading.Lock()
    directory = os.environ.get("BUNCH_BENCH_QUERY_DIR")
    if directory:
        path = Path(directory) / f"{role}-{os.getpid()}.count"
        threading.Thread(target=_flush_forever, args=(path,), daemon=True).start()


def totals(directory: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for path in directory.glob("*.count"):
        role = path.name.split("-", 1)[0]
        try:
            out[role] = out.get(role, 0) + int(path.read_text() or 0)
        except ValueError:
            continue
    return out
