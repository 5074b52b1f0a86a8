"""Readings of the process counters (this host's multiprocess files) and the database, as
plain numbers for samples and the status page."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from django.utils import timezone

from ops import collectors


def counters(name: str, by: str) -> dict[str, dict[str, float]]:
    """`{model: {label value: cumulative count}}` of a counter or histogram bucket series
    summed over every process of this host."""
    found: dict[str, dict[str, float]] = defaultdict(dict)
    for family in collectors.host_registry().collect():
        for sample in family.samples:
            if sample.name == name:
                model = sample.labels.get("model", "")
                key = sample.labels.get(by, "")
                found[model][key] = found[model].get(key, 0.0) + sample.value
    return dict(found)


def reading(now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    plans = collectors.queue_by_plan()
    stripe = collectors.stripe_backlog(now)
    return {
        "queued": {row["tenant__plan__slug"]: row["queued"] for row in plans},
        "running": {row["tenant__plan__slug"]: row["running"] for row in plans},
        "calls": counters("bunch_provider_calls_total", "outcome"),
        "budget_in_use": {row["model"]: row["in_use"] for row in collectors.provider_budget(now)},
        "latency": counters("bunch_provider_call_duration_seconds_bucket", "le"),
        "stripe_pending": stripe["counts"].get("pending", 0),
        "stripe_failed": stripe["counts"].get("failed", 0),
        "stripe_lag_s": stripe["lag_s"],
    }
