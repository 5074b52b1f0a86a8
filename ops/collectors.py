"""Gauges read from the database when /metrics is scraped: exact whichever process or host
did the work, and nothing to keep in step."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from batches.models import ProviderBatch
from billing.models import UsageEvent
from core.catalog import MODELS, Mode
from generation import budget
from generation.models import Job, WorkerHeartbeat
from webhooks.models import WebhookDelivery

TOP_TENANTS = 10
HEARTBEAT_FRESH = dt.timedelta(seconds=60)


def _age(oldest: dt.datetime | None, now: dt.datetime) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0


def queue_by_plan() -> list[dict[str, Any]]:
    rows: Any = (
        Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING], mode=Mode.STANDARD)
        .values("tenant__plan__slug")
        .annotate(
            queued=Count("pk", filter=Q(status=Job.Status.QUEUED)),
            running=Count("pk", filter=Q(status=Job.Status.RUNNING)),
            oldest=Min("created_at", filter=Q(status=Job.Status.QUEUED)),
        )
        .order_by("tenant__plan__slug")
    )
    return [dict(row) for row in rows]


def top_tenants(status: str, limit: int = TOP_TENANTS) -> list[tuple[str, int]]:
    rows = (
        Job.objects.filter(status=status, mode=Mode.STANDARD)
        .values("tenant__slug")
        .annotate(n=Count("pk"))
        .order_by("-n", "tenant__slug")[:limit]
    )
    return [(row["tenant__slug"], row["n"]) for row in rows]


def stripe_backlog(now: dt.datetime) -> dict[str, Any]:
    counts = dict(
        UsageEvent.objects.values("stripe_state")
        .annotate(n=Count("pk"))
        .values_list("stripe_state", "n")
    )
    oldest = UsageEvent.objects.filter(stripe_state=UsageEvent.StripeState.PENDING).aggregate(
        oldest=Min("occurred_at")
    )["oldest"]
    return {"counts": counts, "lag_s": _age(oldest, now)}


def webhook_backlog(now: dt.datetime) -> dict[str, Any]:
    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
    oldest = pending.aggregate(oldest=Min("created_at"))["oldest"]
    return {"pending": pending.count(), "oldest_s": _age(oldest, now)}


def provider_budget(now: dt.datetime) -> list[dict[str, Any]]:
    """Per model: the calls in flight the shared budget allows (0: no limit), the slots
    held now, and the seconds left of its cooldown (0: none)."""
    allowed = budget.limits().in_flight
    in_use = budget.budget_in_use(now=now)
    rows = []
    for model in sorted({spec.model_id for spec in MODELS.values()} | set(in_use)):
        until = budget.cooldown_until(model)
        rows.append(
            {
                "model": model,
                "slots": allowed,
                "in_use": in_use.get(model, 0),
                "cooldown_s": max(0.0, (until - now).total_seconds()) if until else 0.0,
            }
        )
    return rows


def workers_alive(now: dt.datetime) -> int:
    return WorkerHeartbeat.objects.filter(seen_at__gte=now - HEARTBEAT_FRESH).count()


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = timezone.now()
        queued = GaugeMetricFamily(
            "bunch_queue_jobs", "Standard-mode jobs waiting to run, by plan.", labels=["plan"]
        )
        running = GaugeMetricFamily(
            "bunch_running_jobs", "Standard-mode jobs running, by plan.", labels=["plan"]
        )
        oldest = GaugeMetricFamily(
            "bunch_queue_oldest_age_seconds",
            "Age of the oldest queued standard-mode job, by plan.",
            labels=["plan"],
        )
        total_queued = 0
        for row in queue_by_plan():
            plan = row["tenant__plan__slug"]
            queued.add_metric([plan], row["queued"])
            running.add_metric([plan], row["running"])
            oldest.add_metric([plan], _age(row["oldest"], now))
            total_queued += row["queued"]
        yield queued
        yield running
        yield oldest
        yield GaugeMetricFamily(
            "bunch_queue_jobs_total_now", "Standard-mode jobs waiting, all plans.", total_queued
        )
        top = GaugeMetricFamily(
            "bunch_top_tenant_queued_jobs",
            f"Queued jobs of the {TOP_TENANTS} tenants with the most (bounded series).",
            labels=["tenant"],
        )
        for slug, n in top_tenants(Job.Status.QUEUED):
            top.add_metric([slug], n)
        yield top
        stripe = stripe_backlog(now)
        events = GaugeMetricFamily(
            "bunch_usage_events", "Usage events by Stripe state.", labels=["state"]
        )
        for state in UsageEvent.StripeState.values:
            events.add_metric([state], stripe["counts"].get(state, 0))
        yield events
        yield GaugeMetricFamily(
            "bunch_stripe_sync_lag_seconds",
            "Age of the oldest usage event not yet sent to Stripe (0 when none).",
            stripe["lag_s"],
        )
        hooks = webhook_backlog(now)
        yield GaugeMetricFamily(
            "bunch_webhook_deliveries_pending", "Webhook deliveries not yet made.", hooks["pending"]
        )
        yield GaugeMetricFamily(
            "bunch_webhook_oldest_pending_age_seconds",
            "Age of the oldest pending webhook delivery (0 when none).",
            hooks["oldest_s"],
        )
        provider_batches = GaugeMetricFamily(
            "bunch_provider_batches", "Gemini Batch API jobs by state.", labels=["state"]
        )
        counts = dict(
            ProviderBatch.objects.values("state").annotate(n=Count("pk")).values_list("state", "n")
        )
        for state in ProviderBatch.State.values:
            provider_batches.add_metric([state], counts.get(state, 0))
        yield provider_batches
        yield from _budget_gauges(now)
        yield GaugeMetricFamily(
            "bunch_workers_alive",
            "Worker processes whose heartbeat is under a minute old.",
            workers_alive(now),
        )


def _budget_gauges(now: dt.datetime) -> Iterator[GaugeMetricFamily]:
    slots = GaugeMetricFamily(
        "bunch_provider_budget_slots",
        "Calls in flight the shared provider budget allows, per model (0: no limit).",
        labels=["model"],
    )
    in_use = GaugeMetricFamily(
        "bunch_provider_budget_slots_in_use",
        "Budget slots held by calls in flight, per model (leases exist only with a limit).",
        labels=["model"],
    )
    cooling = GaugeMetricFamily(
        "bunch_provider_cooldown_active",
        "1 while a 429 has every worker waiting before calling the model, else 0.",
        labels=["model"],
    )
    left = GaugeMetricFamily(
        "bunch_provider_cooldown_remaining_seconds",
        "Seconds until the model's cooldown ends (0 when none).",
        labels=["model"],
    )
    for row in provider_budget(now):
        slots.add_metric([row["model"]], row["slots"])
        in_use.add_metric([row["model"]], row["in_use"])
        cooling.add_metric([row["model"]], 1 if row["cooldown_s"] > 0 else 0)
        left.add_metric([row["model"]], row["cooldown_s"])
    yield from (slots, in_use, cooling, left)


def host_registry() -> CollectorRegistry:
    """Every process's counters on this host, plus the database's gauges."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.METRICS_DIR))
    registry.register(DatabaseCollector())
    return registry
