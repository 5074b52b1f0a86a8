"""examples/bulk_client.py over HTTP against a live server, with the poll schedule running."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from batches import dispatch
from batches.models import Batch
from generation.models import Image
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator

ROOT = Path(__file__).resolve().parents[2]


def run_client(live_server: Any, owner: Actor, csv_path: Path, out: Path) -> None:
    """Run the client to the end while this process plays the scheduled poll."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "bulk_client.py"), "--csv", str(csv_path),
         "--out", str(out), "--base-url", live_server.url, "--poll-interval", "0.05"],
        env={**os.environ, "BUNCH_API_KEY": owner.key}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        dispatch.poll()
        time.sleep(0.05)  # the client and the emulator run on their own clocks
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err


def test_example_client_makes_every_row_and_resumes_without_resubmitting(
    inline_worker: GeminiEmulator, owner: Actor, live_server: Any, tmp_path: Path
) -> None:
    csv_path = tmp_path / "rows.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["key", "prompt"])
        writer.writerows([[f"k{i}", f"avatar of robot {i}"] for i in range(4)])
    out = tmp_path / "out"

    run_client(live_server, owner, csv_path, out)
    run_client(live_server, owner, csv_path, out)

    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["key"], r["status"]) for r in rows] == [(f"k{i}", "succeeded") for i in range(4)]
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"k{i}-0.png" for i in range(4)]
    assert Batch.objects.count() == 1 and Image.objects.count() == 4
