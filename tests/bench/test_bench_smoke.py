"""A tiny run of the whole-stack benchmark, so that `make bench` cannot rot unnoticed.

It checks what the run must get right (every job done, one image and one usage event per
requested image, nothing left reserved), never how fast: timings belong to
docs/performance.md, not to the test suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Whole stacks of processes: under pytest-xdist they run one after another, on one worker.
pytestmark = pytest.mark.xdist_group("whole-stack")
ROOT = Path(__file__).resolve().parents[2]


def test_a_small_benchmark_run_stores_and_bills_every_image_once(tmp_path: Path) -> None:
    argv = [
        sys.executable, "-m", "bench", "--broker", "sqlite", "--jobs", "8", "--images", "2",
        "--latency", "0.05", "--jitter", "0", "--provider-concurrency", "4", "--workers", "1",
        "--web-workers", "1", "--web-threads", "4", "--timeout", "120", "--out", str(tmp_path),
    ]  # fmt: skip
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr

    [result_file] = tmp_path.glob("*/result.json")
    result = json.loads(result_file.read_text())
    correct = result["correctness"]
    assert correct["ok"], correct
    assert correct["statuses"] == {"succeeded": 8}
    assert correct["images"] == correct["usage_events"] == correct["requested_images"] == 16
    assert correct["duplicate_image_slots"] == 0
    assert result["submit"]["accepted"] == 8
    assert result["pipeline"]["overhead_ms"]["matched"] == 16
    assert set(result["cpu_s_per_image"]) >= {"web", "worker", "emulator"}
    assert result["queries_per_job"]["web"] > 0
    # Every image's Content Credentials were read when stored, and verify against the
    # emulator's root.
    assert result["provenance"]["states"] == {"trusted": 16}
    assert result["provenance"]["unchecked"] == 0
    assert result["provenance"]["read_ms"]["sample"] == 16


def test_the_bare_sdk_peer_makes_the_same_images_on_the_same_emulator(tmp_path: Path) -> None:
    argv = [
        sys.executable, "-m", "bench", "--broker", "sqlite", "--jobs", "6", "--images", "2",
        "--latency", "0.05", "--jitter", "0", "--provider-concurrency", "4", "--workers", "1",
        "--web-workers", "1", "--timeout", "120", "--out", str(tmp_path), "--peer", "bare-sdk",
        "--keep-media",
    ]  # fmt: skip
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Bunch ÷ peer" in run.stdout

    [result_file] = tmp_path.glob("*/result.json")
    result = json.loads(result_file.read_text())
    peer = result["peer"]
    # The peer asked for exactly what Bunch's workers asked for, one call per image, and
    # wrote every image it was given.
    assert peer["requests"] == peer["images"] == result["correctness"]["images"] == 12
    assert peer["failed"] == 0
    assert peer["distinct_files"] == 12
    assert len(list((result_file.parent / "media" / "peer").glob("*.png"))) == 12
    assert peer["emulator"]["by_model"] == {"gemini-3.1-flash-lite-image": {"ok": 12}}
    assert peer["cpu_ms_per_image"] > 0 and peer["sustained_per_min"] > 0


def test_a_small_waits_run_answers_every_waiter_with_a_finished_job_or_202(
    tmp_path: Path,
) -> None:
    argv = [
        sys.executable, "-m", "bench", "--scenario", "waits", "--waiters", "12", "--wait", "20",
        "--latency", "0.05", "--jitter", "0", "--provider-concurrency", "4", "--workers", "1",
        "--web-workers", "1", "--timeout", "120", "--out", str(tmp_path),
    ]  # fmt: skip
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr

    [result_file] = tmp_path.glob("*/result.json")
    waits = json.loads(result_file.read_text())["waits"]
    assert waits["waiters"] == 12
    assert waits["answered_200"] + waits["answered_202"] == 12
    assert waits["http_5xx"] == waits["errors"] == waits["missing_location"] == 0
    assert waits["probe_me_ms"]["samples"] > 0
