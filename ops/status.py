"""What the operators' status page shows: now, and the last hour from the minute samples."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from typing import Any

from django.db.models import Count, F, Q
from django.utils import timezone
from django_q.models import Task

from billing.models import UsageEvent
from core.catalog import Mode
from generation.models import Job, WorkerHeartbeat
from ops import collectors
from ops.models import OpsSample
from ops.readings import reading
from webhooks.models import WebhookDelivery

HOUR = dt.timedelta(hours=1)
# "Now" on the budget table: since the newest minute sample at least this old.
RECENT = dt.timedelta(minutes=1)
CHART_W, CHART_H = 560, 90


def _difference(now: dict[str, dict[str, float]], then: dict[str, dict[str, float]]) -> Any:
    return {
        model: {key: value - then.get(model, {}).get(key, 0.0) for key, value in series.items()}
        for model, series in now.items()
    }


def _quantile(buckets: dict[str, float], q: float) -> float | None:
    """The q-quantile from cumulative `le` buckets (Prometheus' histogram_quantile rule)."""
    points = sorted(
        ((math.inf if le == "+Inf" else float(le)), count) for le, count in buckets.items()
    )
    if not points or points[-1][1] <= 0:
        return None
    rank = q * points[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in points:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            span = count - lower_count
            return lower_bound + (bound - lower_bound) * (
                (rank - lower_count) / span if span else 0
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def provider_table(now_reading: dict[str, Any], hour_ago: dict[str, Any] | None) -> list[Any]:
    then = hour_ago or {}
    calls = _difference(now_reading["calls"], then.get("calls", {}))
    latency = _difference(now_reading["latency"], then.get("latency", {}))
    rows = []
    for model in sorted(set(calls) | set(latency)):
        outcomes = calls.get(model, {})
        total = sum(outcomes.values())
        if not total:  # called before the hour, not in it
            continue
        limited = outcomes.get("rate_limited", 0)
        rows.append(
            {
                "model": model,
                "calls": int(total),
                "outcomes": {k: int(v) for k, v in sorted(outcomes.items()) if v},
                "rate_429": limited / total if total else 0.0,
                "p50": _quantile(latency.get(model, {}), 0.5),
                "p95": _quantile(latency.get(model, {}), 0.95),
            }
        )
    return rows


def _rate_429(now_calls: Any, then_calls: Any, model: str) -> float | None:
    outcomes = _difference(now_calls, then_calls).get(model, {})
    total = sum(outcomes.values())
    return outcomes.get("rate_limited", 0) / total if total else None


def budget_table(
    now: dt.datetime, current: dict[str, Any], samples: list[OpsSample]
) -> dict[str, Any]:
    """Per model: budget slots held now and the hour's peak, the cooldown, and the 429 rate
    now (since the newest sample at least a minute old) and over the hour."""
    hour = samples[0] if samples else None
    older = [sample for sample in samples if sample.taken_at <= now - RECENT]
    recent = older[-1] if older else hour
    rows = []
    for row in collectors.provider_budget(now):
        model = row["model"]
        held = [sample.data.get("budget_in_use", {}).get(model, 0) for sample in samples]
        share = row["in_use"] / row["slots"] if row["slots"] else 0
        rows.append(
            {
                **row,
                "peak": max([row["in_use"], *held]),
                "use_pct": min(100, round(100 * share)),
                "rate_429_now": _rate_429(
                    current["calls"], recent.data.get("calls", {}) if recent else {}, model
                ),
                "rate_429_hour": _rate_429(
                    current["calls"], hour.data.get("calls", {}) if hour else {}, model
                ),
            }
        )
    return {
        "rows": rows,
        "now_since": recent.taken_at if recent else None,
        "hour_since": hour.taken_at if hour else None,
    }


def overhead(now: dt.datetime) -> dict[str, float | None]:
    """Submit → first model call (the time a job spent in Bunch before the model saw it), of
    jobs started in the last hour."""
    waits = [
        wait.total_seconds()
        for wait in Job.objects.filter(started_at__gte=now - HOUR, mode=Mode.STANDARD)
        .annotate(wait=F("started_at") - F("created_at"))
        .order_by("-started_at")
        .values_list("wait", flat=True)[:5000]
        if wait is not None
    ]
    if len(waits) < 2:
        return {"p50": waits[0] if waits else None, "p95": waits[0] if waits else None}
    cuts = statistics.quantiles(waits, n=20, method="inclusive")
    return {"p50": statistics.median(waits), "p95": cuts[18], "jobs": len(waits)}


def webhook_failures(now: dt.datetime) -> list[dict[str, Any]]:
    rows = (
        WebhookDelivery.objects.filter(created_at__gte=now - HOUR)
        .values("endpoint__tenant__slug")
        .annotate(
            total=Count("pk"),
            failing=Count(
                "pk",
                filter=Q(status=WebhookDelivery.Status.FAILED)
                | Q(status=WebhookDelivery.Status.PENDING, attempts__gt=0),
            ),
        )
        .filter(failing__gt=0)
        .order_by("-failing")[:10]
    )
    return [
        {"tenant": r["endpoint__tenant__slug"], **r, "rate": r["failing"] / r["total"]}
        for r in rows
    ]


def _chart(values: list[float]) -> dict[str, Any]:
    """An SVG polyline of one series over the hour (server-rendered, like the usage page)."""
    top = max(values, default=0) or 1
    step = CHART_W / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{CHART_H - (v / top) * (CHART_H - 4) - 2:.1f}"
        for i, v in enumerate(values)
    )
    return {"points": points, "max": top, "last": values[-1] if values else 0, "w": CHART_W}


def history(samples: list[OpsSample]) -> dict[str, Any]:
    def total(sample: OpsSample, key: str) -> float:
        return float(sum(sample.data.get(key, {}).values()))

    def calls(sample: OpsSample, outcome: str | None) -> float:
        return sum(
            v
            for series in sample.data.get("calls", {}).values()
            for k, v in series.items()
            if outcome is None or k == outcome
        )

    def per_minute(values: list[float]) -> list[float]:
        return [max(0.0, b - a) for a, b in itertools.pairwise(values)]

    return {
        "queued": _chart([total(s, "queued") for s in samples]),
        "running": _chart([total(s, "running") for s in samples]),
        "calls": _chart(per_minute([calls(s, None) for s in samples])),
        "limited": _chart(per_minute([calls(s, "rate_limited") for s in samples])),
        "stripe_lag": _chart([float(s.data.get("stripe_lag_s", 0)) for s in samples]),
        "budget": _chart([total(s, "budget_in_use") for s in samples]),
        "minutes": len(samples),
    }


def snapshot(now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    current = reading(now)
    samples = list(OpsSample.objects.filter(taken_at__gte=now - HOUR).order_by("taken_at"))
    last_sweep = Task.objects.filter(func="generation.tasks.sweep").order_by("-stopped").first()
    return {
        "now": now,
        "plans": collectors.queue_by_plan(),
        "top_queued": collectors.top_tenants(Job.Status.QUEUED),
        "top_running": collectors.top_tenants(Job.Status.RUNNING),
        "provider": provider_table(current, samples[0].data if samples else None),
        "budget": budget_table(now, current, samples),
        "overhead": overhead(now),
        "stripe": collectors.stripe_backlog(now),
        "failed_meter_events": UsageEvent.objects.filter(
            stripe_state=UsageEvent.StripeState.FAILED
        ).count(),
        "webhook_failures": webhook_failures(now),
        "workers": WorkerHeartbeat.objects.filter(
            seen_at__gte=now - collectors.HEARTBEAT_FRESH
        ).order_by("host", "pid"),
        "workers_missing": WorkerHeartbeat.objects.filter(
            seen_at__lt=now - collectors.HEARTBEAT_FRESH, seen_at__gte=now - HOUR
        ).order_by("-seen_at"),
        "last_sweep": last_sweep.stopped if last_sweep else None,
        "history": (charts := history(samples) if len(samples) > 1 else None),
        "history_charts": [
            ("Queued jobs", charts["queued"]),
            ("Running jobs", charts["running"]),
            ("Model calls per minute", charts["calls"]),
            ("429s per minute", charts["limited"]),
            ("Stripe sync lag (s)", charts["stripe_lag"]),
            ("Provider budget slots in use", charts["budget"]),
        ]
        if charts
        else [],
    }
