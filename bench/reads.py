"""Reads at scale: seed N jobs, images and usage events for one tenant in one month on
PostgreSQL with set-based SQL, then time every list, page, total and admin changelist
in-process with Django's test client.

    DATABASE_URL=postgres://…/bunch_bench_reads python -m bench.reads [--rows 1000000]

The database is seeded once and reused while its row counts match (`--reseed` to start
over). The timestamps are spread evenly over the current calendar month, so the month's
usage pages and the quota period see all of them. Each read is done once to warm the
caches, then `--repeat` times; the table shows the median and the slowest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from hashlib import md5
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.reads_seed import COMMON_WORD, RARE_WORD, TABLES, month_of, seed

SLUG = "bench-acme"
PASSWORD = "bench-password-not-secret"


@dataclass
class Read:
    name: str
    call: Callable[[], Any]
    rows: str = ""


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("bench.reads needs DATABASE_URL=postgres://… (its own database).")
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # lets the test client's host through ALLOWED_HOSTS
    import logging

    logging.getLogger("bunch").setLevel(logging.WARNING)  # not a line per request


def _counts(tenant_id: int) -> dict[str, int]:
    """The big tenant's rows, and every table's (the planner's estimate past a million)."""
    from django.db import connection

    out = {}
    with connection.cursor() as cursor:
        for table in ("generation_job", "generation_image", "billing_usageevent"):
            cursor.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", [tenant_id])
            out[table] = cursor.fetchone()[0]
        for table in (*TABLES, "billing_usagerollup"):
            cursor.execute(f"SELECT count(*) FROM {table}")
            out[f"{table} (all)"] = cursor.fetchone()[0]
    return out


def _actors(small_tenants: int) -> tuple[Any, Any, Any, str]:
    """The big tenant, its owner, a superuser and an API key; the small tenants."""
    from django.contrib.auth import get_user_model

    from tenants.models import Membership, Plan, Tenant
    from tenants.services import api_key_create, membership_set, user_get_or_create

    plan, _ = Plan.objects.update_or_create(
        slug="bench-scale",
        defaults={
            "name": "Bench scale",
            "monthly_image_quota": 100_000_000,
            "monthly_spend_cap": Decimal("10000000.00"),
            "requests_per_minute": 1_000_000,
            "max_concurrent_jobs": 64,
            "markup_per_image": Decimal("0.01"),
            "allowed_tiers": ["lite", "flash", "pro"],
            "batch_allowed": True,
        },
    )
    tenant, _ = Tenant.objects.get_or_create(slug=SLUG, defaults={"name": "Acme", "plan": plan})
    owner = user_get_or_create(email="owner@bench-acme.test", password=PASSWORD)
    membership_set(tenant=tenant, user=owner, role=Membership.Role.OWNER)
    key = api_key_create(
        tenant=tenant, name="bench reads", created_by=owner, scopes=["read", "billing", "webhooks"]
    ).plaintext
    User = get_user_model()
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        username="bench-admin", email="admin@bench.test", password=PASSWORD
    )
    have = Tenant.objects.filter(slug__startswith="bench-small-").count()
    Tenant.objects.bulk_create(
        Tenant(name=f"Small {i}", slug=f"bench-small-{i}", plan=plan)
        for i in range(have, small_tenants)
    )
    return tenant, owner, admin, key


def _fold() -> float | None:
    """Bring the usage rollups up to date, if this version of the code has them; on a
    fresh seed that is a catch-up fold of every usage event."""
    try:
        from billing.rollups import usage_rollup_fold
    except ImportError:
        return None
    from django.db import connection

    began = time.monotonic()
    folded = 0
    while n := usage_rollup_fold(limit=50_000):
        folded += n
    if not folded:
        return None
    with connection.cursor() as cursor:
        # What autovacuum does after the catch-up fold marked every row: fresh statistics
        # (so the planner knows the unfolded tail is empty) and no dead row versions.
        cursor.execute("VACUUM ANALYZE billing_usageevent")
    return time.monotonic() - began


def _db_size() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        return str(cursor.fetchone()[0])


def served_as_in_production() -> Any:
    """The API test client's handler, but a view with a sync form (the job list, which
    also answers `Prefer: wait` submits) runs as that, as `SyncViewsHandler` runs it in
    the web process: not through its async wrapper, which closes the database connection
    after each step (a new connection per request here, where there is no pool) and hops
    threads — about 18 ms of each API list read in the second pass."""
    from django.urls import ResolverMatch
    from rest_framework.test import ForceAuthClientHandler

    class ServedAsInProduction(ForceAuthClientHandler):
        def resolve_request(self, request: Any) -> ResolverMatch:
            match = super().resolve_request(request)  # as config.asgi_front's, from here
            plain = getattr(match.func, "sync_view", None)
            if plain is not None:
                match.func = plain
            return match

    return ServedAsInProduction(enforce_csrf_checks=False)


def _reads(tenant: Any, owner: Any, admin: Any, key: str) -> list[Read]:
    from django.test import Client
    from django.utils import timezone
    from rest_framework.test import APIClient

    api = APIClient()
    api.handler = served_as_in_production()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    dashboard = Client()
    dashboard.force_login(owner)
    staff = Client()
    staff.force_login(admin)
    start, end = month_of(timezone.now())
    month = f"from={start.date()}&to={(end - dt.timedelta(days=1)).date()}"

    def ok(client: Any, url: str) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            return response

        return call

    def fourth(url: str) -> str:
        for _ in range(3):
            url = api.get(url).json()["next"]
        return url

    first = api.get("/api/v1/generations").json()
    job_id = first["results"][0]["id"]
    batch_id = api.get("/api/v1/batches").json()["results"][0]["id"]
    endpoint_id = api.get("/api/v1/webhook-endpoints").json()["results"][0]["id"]
    deliveries = f"/api/v1/webhook-endpoints/{endpoint_id}/deliveries"
    day = start + dt.timedelta(days=9)
    one_day = urlencode(
        {"created_at__gte": day.isoformat(), "created_at__lt": (day + dt.timedelta(1)).isoformat()}
    )
    return [
        Read("GET /api/v1/generations (first page)", ok(api, "/api/v1/generations"), "50"),
        Read(
            "GET /api/v1/generations (4th page, by cursor)",
            ok(api, fourth("/api/v1/generations")),
            "50",
        ),
        Read(
            "GET /api/v1/generations?status=succeeded&limit=200",
            ok(api, "/api/v1/generations?status=succeeded&limit=200"),
            "200",
        ),
        Read(
            f"GET /api/v1/generations?q={RARE_WORD}",
            ok(api, f"/api/v1/generations?q={RARE_WORD}"),
        ),
        Read("GET /api/v1/generations/<id>", ok(api, f"/api/v1/generations/{job_id}"), "1"),
        Read("GET /api/v1/batches (first page)", ok(api, "/api/v1/batches"), "50"),
        # At 10k rows the tenant has 10 batches: pages of 2, to read a 4th at every size.
        Read(
            "GET /api/v1/batches?limit=2 (4th page)",
            ok(api, fourth("/api/v1/batches?limit=2")),
            "2",
        ),
        Read("GET /api/v1/batches/<id>/items", ok(api, f"/api/v1/batches/{batch_id}/items"), "100"),
        Read("GET …/deliveries (first page)", ok(api, deliveries), "50"),
        Read("GET …/deliveries (4th page)", ok(api, fourth(deliveries)), "50"),
        Read("GET /api/v1/usage?group_by=day (month)", ok(api, f"/api/v1/usage?{month}")),
        Read("GET /api/v1/usage?group_by=model", ok(api, f"/api/v1/usage?{month}&group_by=model")),
        Read("GET /api/v1/usage?group_by=mode", ok(api, f"/api/v1/usage?{month}&group_by=mode")),
        Read("GET /api/v1/billing/invoice", ok(api, "/api/v1/billing/invoice")),
        Read("GET /api/v1/me", ok(api, "/api/v1/me")),
        Read("dashboard /usage/", ok(dashboard, "/usage/")),
        Read("dashboard /gallery/", ok(dashboard, "/gallery/"), "24"),
        Read("dashboard /gallery/ (page 3)", ok(dashboard, "/gallery/?page=3"), "24"),
        Read(
            f"dashboard /gallery/?q={RARE_WORD}",
            ok(dashboard, f"/gallery/?q={RARE_WORD}"),
        ),
        Read(
            f"dashboard /gallery/?q={COMMON_WORD}",
            ok(dashboard, f"/gallery/?q={COMMON_WORD}"),
            "24",
        ),
        Read("dashboard /jobs/", ok(dashboard, "/jobs/")),
        Read("dashboard /batches/", ok(dashboard, "/batches/")),
        Read(
            "dashboard /webhooks/<id>/ (deliveries)",
            ok(dashboard, f"/webhooks/{endpoint_id}/"),
            "50",
        ),
        Read("admin job changelist", ok(staff, "/admin/generation/job/"), "100"),
        Read(
            "admin job changelist ?status=succeeded&mode=batch",
            ok(staff, "/admin/generation/job/?status__exact=succeeded&mode__exact=batch"),
            "100",
        ),
        Read(
            "admin job changelist, one tenant",
            ok(staff, f"/admin/generation/job/?tenant__id__exact={tenant.pk}"),
            "100",
        ),
        Read(
            "admin job changelist, one day",
            ok(staff, f"/admin/generation/job/?{one_day}"),
            "100",
        ),
        Read(
            f"admin job changelist ?q={RARE_WORD}",
            ok(staff, f"/admin/generation/job/?q={RARE_WORD}"),
        ),
        Read("admin image changelist", ok(staff, "/admin/generation/image/"), "100"),
        Read(
            "admin image changelist ?q=zebra",
            ok(staff, f"/admin/generation/image/?q={RARE_WORD}"),
        ),
        Read("admin usage-event changelist", ok(staff, "/admin/billing/usageevent/"), "100"),
        Read(
            "admin usage-event changelist ?stripe_state=pending",
            ok(staff, "/admin/billing/usageevent/?stripe_state__exact=pending"),
            "100",
        ),
        Read(
            "admin usage-event changelist, one tenant",
            ok(staff, f"/admin/billing/usageevent/?tenant__id__exact={tenant.pk}"),
            "100",
        ),
        Read(
            "admin delivery changelist",
            ok(staff, "/admin/webhooks/webhookdelivery/"),
            "100",
        ),
        Read(
            "admin delivery changelist ?status=succeeded",
            ok(staff, "/admin/webhooks/webhookdelivery/?status__exact=succeeded"),
            "100",
        ),
        Read(
            "admin delivery changelist ?q=<event id>",
            ok(staff, f"/admin/webhooks/webhookdelivery/?q=evt_{md5(b'evt1').hexdigest()}"),
        ),
    ]


def _time(read: Read, repeat: int) -> dict[str, Any]:
    read.call()  # warm: connections, templates, the plan cache
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        read.call()
        times.append((time.perf_counter() - began) * 1000)
    p95 = statistics.quantiles(times, n=20, method="inclusive")[18] if repeat > 1 else times[0]
    return {
        "read": read.name,
        "rows": read.rows,
        "median_ms": statistics.median(times),
        "p95_ms": p95,
        "max_ms": max(times),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.reads", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="jobs of the big tenant")
    p.add_argument("--small-tenants", type=int, default=1000)
    p.add_argument("--small-rows", type=int, default=10, help="jobs of each small tenant")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--reseed", action="store_true", help="delete the seeded rows first")
    p.add_argument("--seed-only", action="store_true", help="seed (if needed), time nothing")
    p.add_argument("--check-rollups", action="store_true", help="rollups = ledger, to the nano")
    p.add_argument("--only", default="", help="run only reads whose name contains this")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    _setup_django()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from config.warmup import collect_young_objects_less_often, freeze_startup_objects

    call_command("migrate", "--noinput", verbosity=0)
    tenant, owner, admin, key = _actors(args.small_tenants)
    from tenants.models import Tenant

    small_ids = list(
        Tenant.objects.filter(slug__startswith="bench-small-")
        .order_by("pk")
        .values_list("pk", flat=True)[: args.small_tenants]
    )
    counts = _counts(tenant.pk)
    expected = args.rows + args.small_rows * len(small_ids)
    phases = None
    if args.reseed or (counts["generation_job"], counts["generation_job (all)"]) != (
        args.rows,
        expected,
    ):
        with connection.cursor() as cursor:
            cursor.execute(
                f"TRUNCATE {', '.join(TABLES)}, billing_usagerollup, webhooks_webhookendpoint "
                "CASCADE"
            )
        print(f"seeding {args.rows:,} jobs + {len(small_ids)} × {args.small_rows:,} small …")
        start, end = month_of(timezone.now())
        phases = seed(
            tenant_id=tenant.pk,
            small_ids=small_ids,
            rows=args.rows,
            small_rows=args.small_rows,
            start=start,
            end=end,
        )
        counts = _counts(tenant.pk)
    folded_s = _fold()
    print(
        f"tenant {SLUG}: {counts['generation_job']:,} jobs, {counts['generation_image']:,} "
        f"images, {counts['billing_usageevent']:,} usage events; in all "
        + ", ".join(f"{k.removesuffix(' (all)')} {v:,}" for k, v in counts.items() if "(all)" in k)
        + f"; {len(small_ids)} small tenants; database {_db_size()}"
        + (f"; folded in {folded_s:.1f} s" if folded_s is not None else "")
    )
    if phases is not None:
        print("seeding: " + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()))
    if args.check_rollups:
        from billing.rollups import usage_rollup_mismatches

        began = time.monotonic()
        mismatches = usage_rollup_mismatches()
        print(f"rollups vs ledger: {len(mismatches)} mismatches ({time.monotonic() - began:.0f} s)")
    if args.seed_only:
        return
    reads = _reads(tenant, owner, admin, key)
    # The collector as the web process sets it after its warm-up (config/wsgi.py).
    freeze_startup_objects()
    collect_young_objects_less_often()
    results = []
    for read in reads:
        if args.only in read.name:
            results.append(_time(read, args.repeat))
            print(f"  {read.name}: p95 {results[-1]['p95_ms']:.1f} ms", flush=True)
    width = max(len(r["read"]) for r in results)
    # The machine may be shared: its load says how comparable two runs' figures are.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nload average after the reads: {load} ({os.cpu_count()} CPUs)")
    print(f"{'read':<{width}}  median ms  p95 ms  max ms  (of {args.repeat}, after a warm-up)")
    for r in results:
        print(
            f"{r['read']:<{width}}  {r['median_ms']:9.1f}  {r['p95_ms']:6.1f}  {r['max_ms']:6.1f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"counts": counts, "seeding": phases, "reads": results}, indent=2)
        )


if __name__ == "__main__":
    main()
