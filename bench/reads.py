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
from pathlib import Path
from typing import Any

SLUG = "bench-acme"
PASSWORD = "bench-password-not-secret"
CHUNK = 250_000

ADJECTIVES = (
    "red blue golden vintage minimal neon pastel rustic modern retro bold soft dark bright "
    "playful elegant"
)
SUBJECTS = (
    "cat,fox,lighthouse,mountain,coffee cup,sneaker,city skyline,robot,bicycle,sailboat,"
    "forest,owl,teapot,guitar,rocket,desk lamp,dragon,castle,bakery,garden"
)
BACKDROPS = "white,black,gradient,marble,wooden,sky blue,sunset,concrete"
STYLES = "studio photo,flat vector,watercolor,3d render,pencil sketch,oil painting,pixel art"
RARE_WORD = "zebra"  # in one prompt out of RARE_EVERY
RARE_EVERY = 5_000
COMMON_WORD = "lighthouse"  # one subject in twenty


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


def _month(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def _counts(tenant_id: int) -> dict[str, int]:
    from django.db import connection

    out = {}
    with connection.cursor() as cursor:
        for table in ("generation_job", "generation_image", "billing_usageevent"):
            cursor.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", [tenant_id])
            out[table] = cursor.fetchone()[0]
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
    key = api_key_create(tenant=tenant, name="bench reads", created_by=owner).plaintext
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


def _word(array: str, index_sql: str, sep: str = ",") -> str:
    items = ",".join("'" + w.strip() + "'" for w in array.split(sep))
    return f"(ARRAY[{items}])[1 + ({index_sql})]"


def _escape(sql: str) -> str:
    """The SQL's modulo signs, doubled for the driver's %(name)s parameters."""
    return sql.replace("%(", "\0").replace("%", "%%").replace("\0", "%(")


def _seed(*, tenant_id: int, small_ids: list[int], rows: int, small_rows: int) -> float:
    """Jobs, one image each and its usage event: `rows` for the big tenant, `small_rows`
    for each small one, in chunks of set-based INSERT … SELECT over generate_series."""
    from django.db import connection
    from django.utils import timezone

    start, end = _month(timezone.now())
    n_adj, n_sub = len(ADJECTIVES.split()), len(SUBJECTS.split(","))
    n_bg, n_style = len(BACKDROPS.split(",")), len(STYLES.split(","))
    prompt = (
        "'a ' || "
        + _word(ADJECTIVES, f"g % {n_adj}", sep=" ")
        + " || ' ' || "
        + _word(SUBJECTS, f"(g / {n_adj}) % {n_sub}")
        + " || ' on a ' || "
        + _word(BACKDROPS, f"(g / 7) % {n_bg}")
        + " || ' background, ' || "
        + _word(STYLES, f"(g / 3) % {n_style}")
        + f" || CASE WHEN g % {RARE_EVERY} = 0 THEN ' with a {RARE_WORD}' ELSE '' END"
    )
    total = rows + small_rows * len(small_ids)
    span_us = int((end - start).total_seconds() * 1_000_000)
    # g ≤ rows: the big tenant, its rows evenly over the month; the rest: the small tenants.
    smalls = max(len(small_ids), 1)
    tenant = (
        f"CASE WHEN g <= {rows} THEN {tenant_id} ELSE (%(small)s::bigint[])[1 + g % {smalls}] END"
    )
    step_us = span_us // max(rows, 1)
    ts = f"%(start)s::timestamptz + (g % {rows or 1})::bigint * {step_us} * interval '1 us'"
    batch = "g % 10 = 0"
    # Lite: 1,120 image tokens at $30/1M plus the prompt's tokens at $0.25/1M; batch half.
    provider = (
        f"CASE WHEN {batch} THEN 0.0168 + (10 + g % 50) * 0.000000125 "
        "ELSE 0.0336 + (10 + g % 50) * 0.00000025 END"
    )
    statements = [
        f"""INSERT INTO generation_job (id, tenant_id, kind, prompt, model_prompt, aspect_ratio,
            image_size, tier, mode, count, input_image_ids, metadata, status, cancel_requested,
            error_code, error_message, attempts, estimated_cost, reserved_images, reserved_nanos,
            created_at, started_at, finished_at)
        SELECT md5('job' || g)::uuid, {tenant}, 'image', {prompt}, {prompt}, '1:1', '1K', 'lite',
            CASE WHEN {batch} THEN 'batch' ELSE 'standard' END, 1, '[]', '{{}}', 'succeeded',
            false, '', '', 1, 0.043605, 0, 0, {ts}, {ts}, {ts} + interval '4 seconds'
        FROM generate_series(%(lo)s, %(hi)s) g""",
        f"""INSERT INTO generation_image (id, tenant_id, job_id, index, source, file, thumbnail,
            mime_type, width, height, size_bytes, sha256, created_at)
        SELECT md5('img' || g)::uuid, {tenant}, md5('job' || g)::uuid, 0, 'generated',
            'bench/' || g || '.png', '', 'image/png', 1024, 1024, 1400000,
            md5('a' || g) || md5('b' || g), {ts} + interval '4 seconds'
        FROM generate_series(%(lo)s, %(hi)s) g""",
        f"""INSERT INTO billing_usageevent (tenant_id, job_id, image_id, tier, model, mode,
            input_text_tokens, input_image_tokens, output_text_tokens, output_image_tokens,
            thoughts_tokens, provider_cost, markup, billed, occurred_at, stripe_state,
            stripe_attempts, stripe_last_error, stripe_sent_at, quota_settled)
        SELECT {tenant}, md5('job' || g)::uuid, md5('img' || g)::uuid, 'lite',
            'gemini-3.1-flash-lite-image', CASE WHEN {batch} THEN 'batch' ELSE 'standard' END,
            10 + g % 50, 0, 0, 1120, 0, {provider}, 0.01, {provider} + 0.01,
            {ts} + interval '4 seconds',
            CASE WHEN g % 1000 = 0 THEN 'pending' ELSE 'sent' END, 1, '',
            {ts} + interval '1 minute', true
        FROM generate_series(%(lo)s, %(hi)s) g""",
    ]
    began = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        for lo in range(1, total + 1, CHUNK):
            hi = min(lo + CHUNK - 1, total)
            params = {"small": small_ids or [tenant_id], "start": start, "lo": lo, "hi": hi}
            for sql in statements:
                cursor.execute(_escape(sql), params)
            print(f"  seeded {hi:,} / {total:,} ({time.monotonic() - began:.0f} s)", flush=True)
        cursor.execute("ANALYZE")
    return time.monotonic() - began


def _fold() -> float | None:
    """Bring the usage rollups up to date, if this version of the code has them; on a
    fresh seed that is a catch-up fold of every usage event."""
    try:
        from billing.rollups import usage_rollup_fold
    except ImportError:
        return None
    from django.db import connection

    began = time.monotonic()
    while usage_rollup_fold(limit=50_000):
        pass
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


def _reads(tenant: Any, owner: Any, admin: Any, key: str) -> list[Read]:
    from django.test import Client
    from django.utils import timezone
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    dashboard = Client()
    dashboard.force_login(owner)
    staff = Client()
    staff.force_login(admin)
    start, end = _month(timezone.now())
    month = f"from={start.date()}&to={(end - dt.timedelta(days=1)).date()}"

    def ok(client: Any, url: str) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            return response

        return call

    first = api.get("/api/v1/generations").json()
    page4 = first["next"]
    for _ in range(2):
        page4 = api.get(page4).json()["next"]
    job_id = first["results"][0]["id"]
    return [
        Read("GET /api/v1/generations (first page)", ok(api, "/api/v1/generations"), "50"),
        Read("GET /api/v1/generations (4th page, by cursor)", ok(api, page4), "50"),
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
        Read("admin job changelist", ok(staff, "/admin/generation/job/"), "100"),
        Read(
            f"admin job changelist ?q={RARE_WORD}",
            ok(staff, f"/admin/generation/job/?q={RARE_WORD}"),
        ),
        Read("admin image changelist", ok(staff, "/admin/generation/image/"), "100"),
        Read("admin usage-event changelist", ok(staff, "/admin/billing/usageevent/"), "100"),
    ]


def _time(read: Read, repeat: int) -> dict[str, Any]:
    read.call()  # warm: connections, templates, the plan cache
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        read.call()
        times.append((time.perf_counter() - began) * 1000)
    return {"read": read.name, "median_ms": statistics.median(times), "max_ms": max(times)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.reads", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="jobs of the big tenant")
    p.add_argument("--small-tenants", type=int, default=1000)
    p.add_argument("--small-rows", type=int, default=10, help="jobs of each small tenant")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--reseed", action="store_true", help="delete the seeded rows first")
    p.add_argument("--only", default="", help="run only reads whose name contains this")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    _setup_django()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", "--noinput", verbosity=0)
    tenant, owner, admin, key = _actors(args.small_tenants)
    from tenants.models import Tenant

    small_ids = list(
        Tenant.objects.filter(slug__startswith="bench-small-")
        .order_by("pk")
        .values_list("pk", flat=True)[: args.small_tenants]
    )
    counts = _counts(tenant.pk)
    seeded_s = None
    if args.reseed or counts["generation_job"] != args.rows:
        tables = ["billing_usageevent", "generation_image", "generation_job"]
        if "billing_usagerollup" in connection.introspection.table_names():
            tables.append("billing_usagerollup")
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        print(f"seeding {args.rows:,} jobs + {len(small_ids)} × {args.small_rows} small …")
        seeded_s = _seed(
            tenant_id=tenant.pk, small_ids=small_ids, rows=args.rows, small_rows=args.small_rows
        )
        counts = _counts(tenant.pk)
    folded_s = _fold()
    print(
        f"tenant {SLUG}: {counts['generation_job']:,} jobs, {counts['generation_image']:,} "
        f"images, {counts['billing_usageevent']:,} usage events; {len(small_ids)} small "
        f"tenants; database {_db_size()}"
        + (f"; seeded in {seeded_s:.0f} s" if seeded_s is not None else "")
        + (f"; rollups folded in {folded_s:.1f} s" if folded_s is not None else "")
    )
    results = [
        _time(read, args.repeat)
        for read in _reads(tenant, owner, admin, key)
        if args.only in read.name
    ]
    width = max(len(r["read"]) for r in results)
    # The machine may be shared: its load says how comparable two runs' figures are.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nload average after the reads: {load} ({os.cpu_count()} CPUs)")
    print(f"{'read':<{width}}  median ms  max ms  (of {args.repeat}, after one warm-up)")
    for r in results:
        print(f"{r['read']:<{width}}  {r['median_ms']:9.1f}  {r['max_ms']:6.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"counts": counts, "reads": results}, indent=2))


if __name__ == "__main__":
    main()
