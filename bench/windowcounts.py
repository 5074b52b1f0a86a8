"""`python -m bench.windowcounts`: how long one rate-limit count takes on SQLite's counts
file (core/windowcounts.py) when several busy processes count at once.

Each of `--processes` processes runs `--threads` threads that count two keys every 2 ms
and `--burners` threads that only spend CPU, as a web process's pool threads do beside
its event loop. Two ways of reading the new counts are compared on fresh files:
`returning` (the upsert's RETURNING clause, the first form) and `triggers` (the committed
one). Prints each process's count latencies; asserts nothing.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from core.windowcounts import _SCHEMA, _UPSERT, WindowCounts


class ReturningCounts(WindowCounts):
    """The first form: the upsert answers the new counts itself (no triggers)."""

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute(_SCHEMA)

    def hit(self, keys: list[str], window_start: int) -> dict[str, int]:
        rows = ", ".join(["(?, ?, 1)"] * len(keys))
        params = [value for key in keys for value in (key, window_start)]
        sql = _UPSERT.format(rows=rows) + " RETURNING key, count"
        return {key: int(count) for key, count in self._connection().execute(sql, params)}


def _child(mode: str, path: Path, seconds: float, threads: int, burners: int) -> None:
    store = ReturningCounts(path) if mode == "returning" else WindowCounts(path)
    took: list[float] = []
    stop = time.monotonic() + seconds

    def count(i: int) -> None:
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            store.hit([f"t:{i % 3}", f"k:{i}"], 60)
            took.append(time.perf_counter() - t0)
            time.sleep(0.002)

    def burn() -> None:
        while time.monotonic() < stop:
            sum(range(2000))

    workers = [threading.Thread(target=count, args=(i,)) for i in range(threads)]
    workers += [threading.Thread(target=burn) for _ in range(burners)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    took.sort()
    n = len(took)
    ms = [took[int(n * q)] * 1000 for q in (0.5, 0.99, 0.999)] + [took[-1] * 1000]
    print(
        f"{mode:9} counts {n:6,}  ms p50 / p99 / p99.9 / max  "
        + " / ".join(f"{v:,.2f}" for v in ms)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]), args.seconds, args.threads, args.burners)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("returning", "triggers"):
            path = Path(tmp) / f"{mode}.sqlite3"
            argv = [sys.executable, "-m", "bench.windowcounts", "--child", mode, str(path)]
            argv += ["--seconds", str(args.seconds), "--threads", str(args.threads)]
            argv += ["--burners", str(args.burners)]
            children = [subprocess.Popen(argv) for _ in range(args.processes)]
            for child in children:
                child.wait()


if __name__ == "__main__":
    main()
