"""`python -m bench --scenario fairness` (or `python -m bench.fairness`): the scheduler's
figures (docs/performance.md).

Four parts, each in a fresh database (`--only` picks some):

- `backlog`: tenant A (capped at 4 jobs) has 10, then 10,000 jobs queued; tenant B submits
  50 single jobs over a minute through the API. B's start delay (started − created).
- `weights`: two backlogged tenants with plan weights 2 and 1, caps out of the way: who
  got the first 300 starts.
- `claim`: one claim's time with 1,000,000 jobs queued over 1,000 tenants (half of them
  at their cap) on PostgreSQL, and the `EXPLAIN ANALYZE` of its queries (printed).
- `budget`: the emulator answers 429 beyond 8 calls in flight; 500 jobs through two
  worker processes with `GEMINI_MAX_IN_FLIGHT=8`, and without it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.figures import percentile
from bench.stack import ROOT, Stack, StackConfig

PARTS = ("backlog", "weights", "claim", "budget")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__)
    p.add_argument("--only", default=",".join(PARTS), help=f"some of {', '.join(PARTS)}")
    p.add_argument("--broker", default="postgres", help="sqlite or postgres (claim: postgres)")
    p.add_argument("--latency", type=float, default=4.0, help="emulated model seconds")
    p.add_argument("--backlogs", default="10,10000", help="tenant A's queued jobs, per run")
    p.add_argument("--b-jobs", type=int, default=50)
    p.add_argument("--b-over", type=float, default=60.0, help="seconds B's jobs are spread over")
    p.add_argument("--starts", type=int, default=300)
    p.add_argument("--queued", type=int, default=1_000_000)
    p.add_argument("--tenants", type=int, default=1000)
    p.add_argument("--claims", type=int, default=300)
    p.add_argument("--budget-jobs", type=int, default=500)
    p.add_argument("--budget-latency", type=float, default=0.5, help="model seconds (budget)")
    p.add_argument(
        "--budget-backend",
        default="database",
        choices=["database", "redis"],
        help="where the budget lives (redis: 127.0.0.1:6379/0, a key prefix of the run's own)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    args = p.parse_args(argv)
    for part in args.only.split(","):
        if part not in PARTS:
            p.error(f"unknown part {part!r}; use {', '.join(PARTS)}")
    return args


def _stack(
    args: argparse.Namespace,
    name: str,
    *,
    provider_concurrency: int = 80,
    latency: float | None = None,
    **env: str,
) -> Stack:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (args.out / f"{stamp}-fairness-{name}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    config = StackConfig(
        broker=args.broker,
        run_dir=run_dir,
        latency=args.latency if latency is None else latency,
        jitter=0.0,
        provider_concurrency=provider_concurrency,
        q_workers=2,
        jobs_per_task=120,
        calls_per_task=40,
        task_budget_s=240,
        web_workers=2,
        web_threads=8,
        count_queries=False,
        extra_env={"BUNCH_DOORBELL_COALESCE_S": "0.25", **env},
    )
    stack = Stack(config)
    stack.create_database()
    return stack


def _django(stack: Stack) -> None:
    from bench.cli import _django as setup

    setup(stack)


def _tenant(slug: str, *, cap: int, weight: int = 1, quota: int = 2_000_000) -> Any:
    from decimal import Decimal

    from tenants.models import Plan
    from tenants.services import tenant_create

    plan, _ = Plan.objects.update_or_create(
        slug=f"bench-{slug}",
        defaults={
            "name": f"bench {slug}",
            "monthly_image_quota": quota,
            "monthly_spend_cap": Decimal("1000000"),
            "requests_per_minute": 100_000,
            "max_concurrent_jobs": cap,
            "weight": weight,
            "allowed_tiers": ["lite"],
        },
    )
    return tenant_create(name=slug, slug=slug, plan=plan)


def _api_key(tenant: Any) -> str:
    from tenants.services import api_key_create

    return api_key_create(tenant=tenant, name="bench", scopes=["generate", "read"]).plaintext


def _queue_batch(tenant: Any, n: int) -> None:
    """n realtime batch items for the tenant, queued in one go (as a big upload would be)."""
    from batches.models import MAX_ITEMS, REALTIME
    from batches.services import ItemSpec, batch_submit
    from generation.services import JobParams

    for start in range(0, n, MAX_ITEMS):
        items = [
            ItemSpec(params=JobParams(prompt=f"avatar {i} [[bench:{i}]]", kind="avatar"))
            for i in range(start, min(n, start + MAX_ITEMS))
        ]
        batch_submit(tenant=tenant, items=items, mode=REALTIME)


def _post(url: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.load(response))


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
        "max": max(values, default=float("nan")),
    }


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")


# backlog -----------------------------------------------------------------------------------


def part_backlog(args: argparse.Namespace, backlog: int) -> dict[str, Any]:
    stack = _stack(args, f"backlog-{backlog}")
    try:
        _django(stack)
        from generation.models import Job

        acme = _tenant("acme", cap=4)
        globex = _tenant("globex", cap=4)
        key = _api_key(globex)
        stack.start_emulator()
        _queue_batch(acme, backlog)
        stack.start_worker()
        stack.start_web()
        _wait(
            lambda: Job.objects.filter(tenant=acme, status="running").count() >= 4,
            60,
            "A at its cap",
        )
        ids = []
        step = args.b_over / max(1, args.b_jobs - 1)
        t0 = time.monotonic()
        for n in range(args.b_jobs):
            time.sleep(max(0.0, t0 + n * step - time.monotonic()))
            ids.append(
                _post(f"{stack.web_url}/api/v1/generations", key, {"prompt": f"logo {n}"})["id"]
            )
        _wait(
            lambda: not Job.objects.filter(pk__in=ids, started_at=None).exists(),
            120,
            "B's jobs to start",
        )
        rows = Job.objects.filter(pk__in=ids).values_list("created_at", "started_at")
        delays = [(started - created).total_seconds() for created, started in rows]
        a_queued = Job.objects.filter(tenant=acme, status="queued").count()
        return {
            "a_backlog": backlog,
            "b_start_delay_s": _spread(delays),
            "a_still_queued_at_end": a_queued,
        }
    finally:
        _stop(stack)


# weights -----------------------------------------------------------------------------------


def part_weights(args: argparse.Namespace) -> dict[str, Any]:
    stack = _stack(args, "weights")
    try:
        _django(stack)
        from generation.models import Job

        heavy = _tenant("heavy", cap=1000, weight=2)
        light = _tenant("light", cap=1000, weight=1)
        stack.start_emulator()
        _queue_batch(heavy, args.starts * 2)
        _queue_batch(light, args.starts * 2)
        stack.start_worker()
        _wait(
            lambda: Job.objects.filter(started_at__isnull=False).count() >= args.starts,
            300,
            f"{args.starts} starts",
        )
        first = list(
            Job.objects.filter(started_at__isnull=False)
            .order_by("started_at", "created_at")
            .values_list("tenant_id", flat=True)[: args.starts]
        )
        h, lt = first.count(heavy.pk), first.count(light.pk)
        return {
            "starts": len(first),
            "heavy_weight_2": h,
            "light_weight_1": lt,
            "ratio": h / max(1, lt),
        }
    finally:
        _stop(stack)


# claim -------------------------------------------------------------------------------------


def _fill(tenants: list[int], queued: int) -> None:
    """`queued` jobs round the tenants, inserted by the database itself (a minute, not an
    hour of ORM saves)."""
    from django.db import connection

    from generation.models import Job, TenantShare
    from generation.services import JobParams, job_build
    from tenants.models import Tenant

    template = job_build(
        tenant=Tenant.objects.get(pk=tenants[0]),
        params=JobParams(prompt="avatar"),
        ratio="1:1",
        mode="standard",
    )
    columns, values, params = [], [], []
    for f in Job._meta.concrete_fields:
        columns.append(connection.ops.quote_name(f.column))
        if f.name == "id":
            values.append("gen_random_uuid()")
        elif f.name == "tenant":
            values.append(f"(ARRAY{tenants})[1 + (i %% {len(tenants)})]")
        elif f.name == "created_at":
            values.append("now() - make_interval(secs => %s - i)")
            params.append(queued)
        elif f.name == "priority":
            values.append("1 + (i %% 7 = 0)::int")  # some batch items among API jobs
        else:
            values.append("%s")
            params.append(f.get_db_prep_save(getattr(template, f.attname), connection))
    table = connection.ops.quote_name(Job._meta.db_table)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM generate_series(1, %s) AS i"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, queued])
        # As autovacuum leaves a table in steady state: the visibility map set, so that
        # the skip scan's index-only probes need not visit the heap.
        cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(TenantShare._meta.db_table)}")


def _explain(sql: str, params: list[Any]) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", params)
        return [row[0] for row in cursor.fetchall()]


def part_claim(args: argparse.Namespace) -> dict[str, Any]:
    if args.broker != "postgres":
        raise SystemExit("the claim part runs on PostgreSQL (--broker postgres)")
    stack = _stack(args, "claim")
    try:
        _django(stack)
        from django.db.models import OuterRef, Subquery

        from generation import scheduler
        from generation.models import Job

        t0 = time.monotonic()
        capped = [_tenant(f"c{n}", cap=4).pk for n in range(args.tenants // 2)]
        free = [_tenant(f"f{n}", cap=100_000).pk for n in range(args.tenants - len(capped))]
        _fill(capped + free, args.queued)
        # Half the tenants at their cap: their 4 oldest jobs running.
        heads = Job.objects.filter(tenant_id=OuterRef("tenant_id"), status="queued").order_by(
            "created_at"
        )
        Job.objects.filter(tenant_id__in=capped, pk__in=Subquery(heads.values("pk")[:4])).update(
            status="running", started_at=dt.datetime.now(dt.UTC)
        )
        filled_s = time.monotonic() - t0
        times = []
        for _ in range(args.claims):
            started = time.perf_counter()
            claimed = scheduler.claim_jobs(limit=8)
            times.append((time.perf_counter() - started) * 1000)
            assert len(claimed) == 8
        load = os.getloadavg()
        return {
            "queued": Job.objects.filter(status="queued").count(),
            "tenants": args.tenants,
            "running": Job.objects.filter(status="running").count(),
            "fill_s": filled_s,
            "claim_ms_limit_8": _spread(times),
            "loadavg_during": load,
            "explain_state_and_heads": _explain(
                scheduler.state_and_heads_sql(), [8, "queued", "standard", 8]
            ),
        }
    finally:
        _stop(stack)


# budget ------------------------------------------------------------------------------------


def part_budget(args: argparse.Namespace, in_flight: int) -> dict[str, Any]:
    env = {"GEMINI_MAX_IN_FLIGHT": str(in_flight)} if in_flight else {}
    env["BUNCH_BUDGET_BACKEND"] = args.budget_backend
    if args.budget_backend == "redis":
        env["BUNCH_BUDGET_REDIS_URL"] = "redis://127.0.0.1:6379/0"
        env["BUNCH_BUDGET_REDIS_PREFIX"] = f"bunch-bench-budget:{os.getpid()}:{time.time():.0f}:"
    stack = _stack(
        args, f"budget-{in_flight}", provider_concurrency=8, latency=args.budget_latency, **env
    )
    try:
        _django(stack)
        from django.db.models import Count

        from generation.models import Job

        tenant = _tenant("acme", cap=500)
        stack.start_emulator()
        _queue_batch(tenant, args.budget_jobs)
        t0 = time.monotonic()
        stack.start_worker()
        _wait(
            lambda: not Job.objects.exclude(status__in=Job.FINISHED).exists(),
            1800,
            "the jobs to finish",
        )
        wall = time.monotonic() - t0
        stats = _emulator_stats(stack)
        statuses = dict(Job.objects.order_by().values_list("status").annotate(n=Count("pk")))
        return {
            "GEMINI_MAX_IN_FLIGHT": in_flight or "unset",
            "budget_backend": args.budget_backend,
            "emulator_max_concurrency": 8,
            "latency_s": args.budget_latency,
            "jobs": args.budget_jobs,
            "statuses": statuses,
            "emulator_requests": stats.get("requests"),
            "emulator_429": sum(
                n for m in stats.get("by_model", {}).values() for k, n in m.items() if "429" in k
            ),
            "emulator_max_in_flight": stats.get("max_in_flight"),
            "wall_s": wall,
        }
    finally:
        if args.budget_backend == "redis":
            from generation import budget_redis

            budget_redis.forget_all()
        _stop(stack)


def _emulator_stats(stack: Stack) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{stack.emulator_url}/_emulator/stats", timeout=5) as r:
        return dict(json.load(r))


def _stop(stack: Stack) -> None:
    from django.db import connections

    stack.stop()
    connections.close_all()
    stack.drop_database()


# driver ------------------------------------------------------------------------------------


def run_part(args: argparse.Namespace, part: str) -> list[dict[str, Any]]:
    if part == "backlog":
        return [part_backlog(args, int(n)) for n in args.backlogs.split(",")[:1]]
    if part == "weights":
        return [part_weights(args)]
    return [part_claim(args)]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--scenario" in argv:
        del argv[argv.index("--scenario") : argv.index("--scenario") + 2]
    args = parse_args(argv)
    parts = args.only.split(",")
    runs = [(p, b) for p in parts for b in (args.backlogs.split(",") if p == "backlog" else [""])]
    runs += [("budget-off", "")] if "budget" in parts else []
    # One Django (one database) per process: the driver runs each part in a child, and a
    # child (BENCH_FAIRNESS_PART set) runs its one part itself.
    if not os.environ.get("BENCH_FAIRNESS_PART"):
        for part, backlog in runs:
            extra = ["--backlogs", backlog] if backlog else []
            only = "budget" if part == "budget-off" else part
            env = {
                **os.environ,
                "BENCH_FAIRNESS_PART": part,
                "BENCH_BUDGET_OFF": "1" if part == "budget-off" else "",
            }
            code = subprocess.call(
                [
                    sys.executable,
                    "-m",
                    "bench.fairness",
                    *_passthrough(argv),
                    "--only",
                    only,
                    *extra,
                ],
                cwd=ROOT,
                env=env,
            )
            if code:
                sys.exit(code)
        return
    part = parts[0]
    if part == "budget":
        results = [part_budget(args, 0 if os.environ.get("BENCH_BUDGET_OFF") else 8)]
    else:
        results = run_part(args, part)
    for result in results:
        print(json.dumps({"part": part, **result}, indent=2, default=str))
    out = args.out / "fairness.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for result in results:
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            f.write(json.dumps({"part": part, "date": stamp, **result}, default=str) + "\n")


def _passthrough(argv: list[str] | None) -> list[str]:
    rest, skip = [], False
    for a in argv if argv is not None else sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a in ("--only", "--backlogs"):
            skip = True
            continue
        if a.startswith(("--only=", "--backlogs=")) or a == "--scenario" or a == "fairness":
            continue
        rest.append(a)
    return rest


if __name__ == "__main__":
    main()
