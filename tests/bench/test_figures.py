"""The benchmark's arithmetic: overhead per image and its stages, from rows and the log."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from bench import figures

T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_overhead_runs_from_submit_to_stored_less_model_time_and_splits_into_stages(
    tmp_path: Path,
) -> None:
    log = tmp_path / "requests.jsonl"
    # Job a: claimed 0.1 s after submit, reaches the model 0.05 s later, answered after
    # 4.0 s, stored 0.15 s after the answer. Job b waits longer for its claim.
    calls = [("a", 0.15, 4.15), ("b", 1.6, 5.6)]
    log.write_text(
        "\n".join(
            json.dumps(
                {
                    "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
                    "start": _at(start).timestamp(),
                    "end": _at(end).timestamp(),
                    "model_time_ms": round((end - start) * 1000),
                }
            )
            for prompt, start, end in calls
        )
    )
    jobs = [
        {"id": "ja", "created_at": _at(0), "started_at": _at(0.1)},
        {"id": "jb", "created_at": _at(1), "started_at": _at(1.5)},
    ]
    images = [
        {"job_id": "ja", "index": 0, "stored_at": _at(4.3)},
        {"job_id": "jb", "index": 0, "stored_at": _at(5.8)},
    ]

    out = figures.pipeline_figures(
        jobs=jobs,
        images=images,
        prompts={"ja": "a", "jb": "b"},
        request_log=log,
        provider_concurrency=2,
        latency=4.0,
    )

    assert out["overhead_ms"]["matched"] == 2
    assert round(out["overhead_ms"]["p50"]) == 550  # a 300 ms, b 800 ms
    assert round(out["overhead_ms"]["max"]) == 800
    assert round(out["queue_wait_ms"]["max"]) == 500
    assert round(out["claim_to_call_ms"]["p50"]) == 75  # a 50, b 100
    assert round(out["answer_to_stored_ms"]["max"]) == 200  # b 200, a 150
    assert out["model_time_s_mean"] == 4.0
