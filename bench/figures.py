"""Turning a finished run into figures: read the database, the load and emulator logs."""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def submit_figures(load: dict[str, Any]) -> dict[str, Any]:
    requests = load["requests"]
    accepted = [r for r in requests if r[3] == 202]
    latencies = [r[2] * 1000 for r in accepted]
    first = min((r[1] for r in requests), default=0.0)
    last = max((r[1] + r[2] for r in requests), default=0.0)
    span = max(last - first, 1e-9)
    return {
        "requests": len(requests),
        "accepted": len(accepted),
        "statuses": dict(Counter(str(r[3]) for r in requests)),
        "accepted_per_s": len(accepted) / span,
        "latency_ms": {
            "p50": percentile(latencies, 0.5),
            "p95": percentile(latencies, 0.95),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies, default=float("nan")),
        },
        "span_s": span,
    }


@dataclass(frozen=True)
class ModelCall:
    """One answered call as the emulator logged it (epoch seconds)."""

    start: float
    end: float
    model_s: float


def model_calls(request_log: Path) -> dict[str, ModelCall]:
    """The answered call per prompt hash; a retried prompt keeps its last call."""
    out: dict[str, ModelCall] = {}
    if request_log.exists():
        for line in request_log.read_text().splitlines():
            row = json.loads(line)
            out[row["prompt_sha256"]] = ModelCall(
                start=row["start"], end=row["end"], model_s=row["model_time_ms"] / 1000
            )
    return out


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": max(values, default=float("nan")),
    }


def pipeline_figures(
    *,
    jobs: list[dict[str, Any]],
    images: list[dict[str, Any]],
    prompts: dict[str, str],
    request_log: Path,
    provider_concurrency: int,
    latency: float,
) -> dict[str, Any]:
    """Throughput, efficiency and per-image overhead from job and image rows.

    An image counts as stored at its usage event's time (`stored_at`), written inside the
    store's transaction. The overhead (submit → stored, less the model's own time) is split
    into its stages: submit → claim (queue wait), claim → the call reaching the model
    (planning, waiting for a call slot, sending), and the model's answer → stored
    (response transfer and parsing, hashing, file write, the store transaction).
    """
    calls = model_calls(request_log)
    job_by_id = {str(j["id"]): j for j in jobs}
    stored = sorted(i["stored_at"].timestamp() for i in images)
    overheads, waits, to_call, after_call, models = [], [], [], [], []
    for image in images:
        job = job_by_id[str(image["job_id"])]
        call = calls.get(hashlib.sha256(prompts[str(job["id"])].encode()).hexdigest())
        if call is None:
            continue
        submitted, done = job["created_at"].timestamp(), image["stored_at"].timestamp()
        overheads.append((done - submitted - call.model_s) * 1000)
        models.append(call.model_s)
        after_call.append((done - call.end) * 1000)
        if job["started_at"] is not None:
            claimed = job["started_at"].timestamp()
            waits.append((claimed - submitted) * 1000)
            to_call.append((call.start - claimed) * 1000)
    out: dict[str, Any] = {"images": len(images)}
    if not stored:
        return out
    first_submit = min(j["created_at"].timestamp() for j in jobs)
    span = stored[-1] - first_submit
    # Sustained: the middle 80 % of stored images, leaving out ramp-up and the tail.
    lo, hi = stored[len(stored) // 10], stored[(len(stored) * 9) // 10]
    middle = (len(stored) * 9) // 10 - len(stored) // 10
    sustained = middle / (hi - lo) * 60 if hi > lo else float("nan")
    ideal = provider_concurrency / latency * 60
    out.update(
        {
            "end_to_end_per_min": len(stored) / span * 60 if span > 0 else float("nan"),
            "sustained_per_min": sustained,
            "ideal_per_min": ideal,
            "efficiency": sustained / ideal,
            "first_submit_to_last_image_s": span,
            "overhead_ms": {**_spread(overheads), "matched": len(overheads)},
            # The overhead's stages (each one's percentiles on its own).
            "queue_wait_ms": _spread(waits),
            "claim_to_call_ms": _spread(to_call),
            "answer_to_stored_ms": _spread(after_call),
            "model_time_s_mean": statistics.fmean(models) if models else float("nan"),
        }
    )
    return out


def correctness(
    *, jobs: list[dict[str, Any]], images: list[dict[str, Any]], usage: dict[str, int],
    quota: dict[str, int], requested_jobs: int, images_per_job: int,
) -> dict[str, Any]:  # fmt: skip
    statuses = Counter(j["status"] for j in jobs)
    keys = Counter((str(i["job_id"]), i["index"]) for i in images)
    requested = requested_jobs * images_per_job
    checks = {
        "jobs": len(jobs),
        "statuses": dict(statuses),
        "images": len(images),
        "usage_events": usage["events"],
        "usage_events_distinct_images": usage["distinct_images"],
        "requested_images": requested,
        "duplicate_image_slots": sum(1 for n in keys.values() if n > 1),
        "quota_images_used": quota["images_used"],
        "quota_images_reserved": quota["images_reserved"],
        "quota_spend_reserved_nanos": quota["spend_reserved_nanos"],
    }
    checks["ok"] = (
        len(jobs) == requested_jobs
        and statuses.get("succeeded", 0) == requested_jobs
        and len(images) == usage["events"] == usage["distinct_images"] == requested
        and checks["duplicate_image_slots"] == 0
        and quota["images_used"] == requested
        and quota["images_reserved"] == 0
        and quota["spend_reserved_nanos"] == 0
    )
    return checks


def memory_figures(series: list[tuple[float, int]], start: float, end: float) -> dict[str, Any]:
    """Total RSS of a role in the first and last fifth of the measured interval."""
    window = [(t, kb) for t, kb in series if start <= t <= end]
    if len(window) < 5:
        return {}
    fifth = max(1, len(window) // 5)
    first = statistics.fmean(kb for _, kb in window[:fifth]) / 1024
    last = statistics.fmean(kb for _, kb in window[-fifth:]) / 1024
    step = max(1, len(window) // 20)
    return {
        "first_fifth_mb": first,
        "last_fifth_mb": last,
        "growth_mb": last - first,
        "series_s_mb": [(t, round(kb / 1024, 1)) for t, kb in window[::step]],
    }
