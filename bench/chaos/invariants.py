"""The invariants, counted after a scenario has settled (read directly from the database,
the bucket and the Stripe emulator, never through the app)."""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.chaos.clients import Load

ZERO = (
    "jobs_lost", "clients_gave_up", "jobs_stuck", "jobs_submitted_twice", "images_stored_twice",
    "usage_without_image", "images_without_usage", "succeeded_missing_images",
    "meter_differences", "meter_events_unsent", "quota_reserved_left", "quota_used_vs_ledger",
    "spend_beyond_cap", "half_written_files",
)  # fmt: skip


def scenario_jobs(scenario: str) -> Any:
    from generation.models import Job

    return Job.objects.filter(prompt__contains=f"[[chaos:{scenario}:")


def unfinished(scenario: str) -> int:
    from generation.models import Job

    return scenario_jobs(scenario).exclude(status__in=Job.FINISHED).count()


def quota_unsettled() -> int:
    """Stored images still counted as reserved in their quota period: the move from
    reservation to usage is a step of its own after the store's commit, so a worker killed
    (or a connection cut) between the two leaves it to the sweeper
    (`generation.ingest.quota_settle_pending`, for events older than 30 s, every
    `BUNCH_SWEEP_EVERY_S`). Nonzero at rest is a breach; nonzero just after the last job
    finished is the sweeper's work still to come."""
    from billing.models import UsageEvent

    return UsageEvent.objects.filter(quota_settled=False).count()


def jobs_figures(load: Load) -> dict[str, Any]:
    from generation.models import Job

    rows = list(scenario_jobs(load.scenario).values_list("id", "prompt", "status"))
    waits = sorted(
        (started - created).total_seconds()
        for created, started in scenario_jobs(load.scenario)
        .filter(started_at__isnull=False)
        .values_list("created_at", "started_at")
    )
    by_marker = Counter(prompt.rsplit("[[chaos:", 1)[1] for _, prompt, _ in rows)
    ids = {str(pk) for pk, _, _ in rows}
    accepted = [s for s in load.submits if s.outcome == "accepted"]
    statuses = Counter(status for _, _, status in rows)
    return {
        "submits": len(load.submits),
        "accepted": len(accepted),
        "outcomes": dict(Counter(s.outcome for s in load.submits)),
        "client_5xx": sum(s.http_5xx for s in load.submits),
        "client_connection_errors": sum(s.connection_errors for s in load.submits),
        "client_retries": sum(s.attempts - 1 for s in load.submits),
        "statuses": dict(statuses),
        "queue_wait_s": {
            "p50": round(waits[len(waits) // 2], 2) if waits else None,
            "max": round(waits[-1], 2) if waits else None,
        },
        "jobs_lost": sum(1 for s in accepted if s.job_id not in ids),
        # A client that never got an answer it could act on (e.g. 409 in progress for ever).
        "clients_gave_up": sum(1 for s in load.submits if s.outcome == "gave_up"),
        "jobs_stuck": sum(n for status, n in statuses.items() if status not in Job.FINISHED),
        "jobs_submitted_twice": sum(n - 1 for n in by_marker.values() if n > 1),
    }


def store_figures(scenario: str) -> dict[str, Any]:
    from django.db.models import Count, F, Q

    from billing.models import UsageEvent
    from generation.models import Image

    jobs = scenario_jobs(scenario)
    images = Image.objects.filter(job__in=jobs)
    twice = images.values("job_id", "index").annotate(n=Count("id")).filter(n__gt=1).count()
    short = (
        jobs.filter(status="succeeded")
        .annotate(stored=Count("images"))
        .filter(stored__lt=F("count"))
        .count()
    )
    usage = UsageEvent.objects.filter(job__in=jobs)
    return {
        "images": images.count(),
        "images_stored_twice": twice,
        "succeeded_missing_images": short,
        "usage_without_image": usage.filter(Q(image__isnull=True)).count(),
        "images_without_usage": images.filter(usage__isnull=True).count(),
    }


def half_written_files(scenario: str) -> int:
    """Image rows whose object is missing from the bucket or whose bytes do not match their
    size and SHA-256. Reads every object (the slow count: the driver runs it while the
    next scenario runs; a finished scenario's images no longer change)."""
    from django.core.files.storage import default_storage
    from django.db import connections

    from generation.models import Image

    def written_whole(row: tuple[str, int, str]) -> bool:
        name, size, digest = row
        try:
            with default_storage.open(name, "rb") as fh:
                data = fh.read()
        except (OSError, ValueError, Exception):  # a missing object is a half-written file
            return False
        return len(data) == size and hashlib.sha256(data).hexdigest() == digest

    try:
        images = Image.objects.filter(job__in=scenario_jobs(scenario))
        rows = list(images.values_list("file", "size_bytes", "sha256"))
    finally:
        connections.close_all()  # (this thread's)
    with ThreadPoolExecutor(8) as pool:  # (the bucket's round trips overlap)
        return sum(1 for whole in pool.map(written_whole, rows) if not whole)


def quota_figures() -> dict[str, Any]:
    from django.db.models import Count, Sum

    from billing.models import UsageEvent
    from core.money import to_nanos
    from tenants.models import QuotaPeriod

    reserved = beyond = used_vs_ledger = 0
    for period in QuotaPeriod.objects.select_related("tenant__plan"):
        plan = period.tenant.plan
        reserved += period.images_reserved + (1 if period.spend_reserved_nanos else 0)
        if (
            period.spend_used_nanos > to_nanos(plan.monthly_spend_cap)
            or period.images_used > plan.monthly_image_quota
        ):
            beyond += 1
        ledger = UsageEvent.objects.filter(tenant=period.tenant).aggregate(
            n=Count("id"), billed=Sum("billed")
        )
        if ledger["n"] != period.images_used:
            used_vs_ledger += 1
    return {
        "quota_unsettled_images": quota_unsettled(),
        "quota_reserved_left": reserved,
        "spend_beyond_cap": beyond,
        "quota_used_vs_ledger": used_vs_ledger,
    }


def stripe_figures() -> dict[str, Any]:
    from billing.models import UsageEvent
    from billing.reconcile import reconcile

    report = reconcile()
    return {
        "meter_differences": len(report.differences),
        "meter_missing": [str(d.missing) for d in report.differences],
        "meter_events_unsent": UsageEvent.objects.exclude(
            stripe_state=UsageEvent.StripeState.SENT
        ).count(),
        "meter_lines_checked": report.checked,
    }


def breaches(figures: dict[str, Any]) -> dict[str, int]:
    return {name: figures[name] for name in ZERO if figures.get(name)}
