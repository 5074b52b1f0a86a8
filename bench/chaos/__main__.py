"""`python -m bench.chaos [--quick] [--scenarios a,b]`: faults over the whole stack, counted.

Each scenario submits its jobs (open loop, clients retrying with the same Idempotency-Key)
while its faults run, heals everything, waits until every job has finished (or `--settle`
seconds), drains the meter sync, and counts the invariants. Prints a table, writes JSON,
and exits 1 when any invariant was breached.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.chaos import invariants
from bench.chaos.clients import Load
from bench.chaos.scenarios import DEFAULT, QUICK, SCENARIOS, Run, sync_parallel
from bench.chaos.stack import ChaosStack
from bench.stack import ROOT, StackConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a small run (the test suite's)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    p.add_argument("--broker", default="redis", choices=("sqlite", "postgres", "redis"))
    p.add_argument("--jobs", type=int, default=0, help="jobs per scenario (default 1000)")
    p.add_argument(
        "--rate", type=float, default=0.0,
        help="submits/s (default 12; worker_kills spreads its jobs over its kill window)",
    )  # fmt: skip
    p.add_argument("--settle", type=float, default=600.0, help="s after the faults: stuck")
    p.add_argument("--port-base", type=int, default=18700)
    p.add_argument("--redis-db", type=int, default=7, help="flushed at start")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--out", type=Path, default=ROOT / "var" / "chaos")
    args = p.parse_args(argv)
    for name in args.scenarios.split(","):
        if name not in SCENARIOS:
            p.error(f"unknown scenario {name!r}; use {', '.join(SCENARIOS)}")
    if args.broker == "sqlite" and "database" in args.scenarios.split(","):
        p.error("the database scenario proxies PostgreSQL and Redis: use --broker postgres|redis")
    return args


def _stack(args: argparse.Namespace, run_dir: Path) -> ChaosStack:
    config = StackConfig(
        broker=args.broker, run_dir=run_dir, latency=0.5, jitter=0.2, provider_concurrency=0,
        q_workers=2, jobs_per_task=48, calls_per_task=16, task_budget_s=60.0,
        web_workers=2, web_threads=0, count_queries=False,
        extra_env={
            "BUNCH_JOB_LEASE_S": "20",
            "GEMINI_TIMEOUT_S": "10",
            "BUNCH_PROVIDER_BACKOFF_S": "0.5",
            "BUNCH_PROVIDER_BACKOFF_MAX_S": "5",
            "DJANGO_LOG_LEVEL": "ERROR",
        },
    )  # fmt: skip
    return ChaosStack(config=config, port_base=args.port_base, redis_db=args.redis_db)


def _start(stack: ChaosStack, capped_jobs: int) -> dict[str, str]:
    """Start every process; returns the API keys of the two tenants."""
    stack.create_database()
    stack.start_proxies()
    stack.start_moto()
    stack.start_stripe()
    os.environ.update(stack.direct_env())
    for name in ("DATABASE_URL", "REDIS_URL", "BUNCH_SQLITE_PATH"):
        if name not in stack.direct_env():
            os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    keys = {"main": out.getvalue().strip().splitlines()[-1], "capped": _capped(capped_jobs)}
    call_command("billing_setup", stdout=io.StringIO())
    stack.start_emulator()
    stack.start_worker()
    stack.start_web()
    return keys


def _capped(jobs: int) -> str:
    """A tenant whose spend cap holds about half the jobs the run sends it."""
    from decimal import Decimal

    from tenants.models import Plan
    from tenants.services import api_key_create, tenant_create

    plan = Plan.objects.create(
        name="Chaos capped", slug="chaos-capped", monthly_image_quota=100_000,
        monthly_spend_cap=Decimal("0.04") * max(jobs // 2, 1), requests_per_minute=20_000,
        max_concurrent_jobs=50, weight=1, markup_per_image=Decimal("0.005"),
        allowed_tiers=["lite"], batch_allowed=False, monthly_price=Decimal("0"),
    )  # fmt: skip
    tenant = tenant_create(name="Capped", slug="capped", plan=plan)
    return api_key_create(tenant=tenant, name="chaos", scopes=["generate", "read"]).plaintext


def _wait_for(at_rest: Callable[[], bool], timeout_s: float) -> bool:
    """Whether `at_rest()` came true within `timeout_s` (asked every 0.5 s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if at_rest():
            return True
        time.sleep(0.5)
    return False


def _drain_meters(clock: dt.datetime | None, timeout_s: float = 300) -> dict[str, Any]:
    """Run the meter sync until nothing is pending, on the scenario's clock if it has one.

    The sync's backoff (30 s doubling to an hour) is honoured: the clock moves on by 5
    simulated minutes each step, so what is counted is how long Stripe takes to catch up on
    that clock (`catch_up_simulated_s`)."""
    from django.utils import timezone

    from billing.models import UsageEvent

    start = clock or timezone.now()
    now, deadline = start, time.monotonic() + timeout_s
    pending = UsageEvent.objects.filter(stripe_state=UsageEvent.StripeState.PENDING)
    while pending.exists() and time.monotonic() < deadline:
        sync_parallel(now)
        if pending.filter(stripe_next_attempt_at__gt=now).exists():
            now += dt.timedelta(minutes=5)
    return {"catch_up_simulated_s": (now - start).total_seconds()}


def run_scenario(
    name: str, run: Run, keys: dict[str, str], args: argparse.Namespace, counter: Executor
) -> dict[str, Any]:
    """Run one scenario, count it; the bucket's count (`half_written_files`, the slow one)
    is left running on `counter`, for `finish` to collect while the next scenario runs."""
    stack, size = run.stack, run.size
    run.notes = {}
    before = stack.gemini_stats()["requests"]
    load = Load(
        web_url=stack.web_url, scenario=name, keys=keys, jobs=size.jobs,
        rate=size.rate_for(name),
    ).start()  # fmt: skip
    t0 = time.monotonic()
    faults_end = SCENARIOS[name](run, load)
    for proxy in stack.proxies.values():
        proxy.heal()
    stack.gemini_clear()
    load.join()
    finished = _wait_for(lambda: invariants.unfinished(name) == 0, args.settle)
    # Recovery: faults end → every job of the scenario finished (clients' retries included).
    recovery = time.monotonic() - faults_end if finished else args.settle
    t_settled = time.monotonic()
    # At rest: the images stored just before a kill are moved from their period's
    # reservation to its usage by the workers' sweep, up to 30 s + BUNCH_SWEEP_EVERY_S later.
    # What is still unsettled after `--settle` s is counted as reserved left over.
    _wait_for(lambda: invariants.quota_unsettled() == 0, args.settle)
    t_quota = time.monotonic()
    clock = run.notes.pop("clock", None)
    meters = _drain_meters(clock)
    stack.stripe_faults()
    t_drained = time.monotonic()
    figures: dict[str, Any] = {"scenario": name, "faults_s": faults_end - t0}
    figures.update(invariants.jobs_figures(load))
    figures.update(invariants.store_figures(name))
    figures.update(invariants.quota_figures())
    figures.update(invariants.stripe_figures())
    calls = stack.gemini_stats()["requests"] - before
    figures.update(
        recovery_s=round(recovery, 1),
        provider_calls=calls,
        calls_per_image=round(calls / max(figures["images"], 1), 3),
        notes=run.notes,
        rate=load.rate,
        **meters,
    )
    # Where the scenario's wall time went (s from its start; submit ends when the last
    # client has its answer; the bucket's count runs on during the next scenario).
    figures["phases_s"] = {
        "submit": round(load.finished - load.started, 1),
        "faults": round(faults_end - t0, 1),
        "settled": round(t_settled - t0, 1),
        "quota_settled": round(t_quota - t0, 1),
        "meters_drained": round(t_drained - t0, 1),
        "counted": round(time.monotonic() - t0, 1),
    }
    figures["_files"] = counter.submit(invariants.half_written_files, name)
    return figures


def finish(figures: dict[str, Any]) -> dict[str, Any]:
    """Wait for the scenario's bucket count; then its breaches are known."""
    pending = figures.pop("_files", None)
    if pending is not None:
        started = time.monotonic()
        figures["half_written_files"] = pending.result()
        figures["phases_s"]["files_waited"] = round(time.monotonic() - started, 1)
    figures["breaches"] = invariants.breaches(figures)
    return figures


COLUMNS = (
    ("scenario", "scenario"), ("accepted", "jobs"), ("jobs_lost", "lost"),
    ("clients_gave_up", "gave up"),
    ("jobs_stuck", "stuck"), ("jobs_submitted_twice", "dup jobs"),
    ("images_stored_twice", "dup images"), ("usage_without_image", "usage w/o image"),
    ("images_without_usage", "image w/o usage"), ("meter_differences", "meter ≠ ledger"),
    ("quota_reserved_left", "reserved left"), ("spend_beyond_cap", "over cap"),
    ("half_written_files", "half-written"), ("client_5xx", "client 5xx"),
    ("recovery_s", "recovery s"), ("calls_per_image", "calls/image"),
)  # fmt: skip


def table(results: list[dict[str, Any]]) -> str:
    rows = [[h for _, h in COLUMNS]] + [[str(r.get(k, "")) for k, _ in COLUMNS] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(lines)


def _report(figures: dict[str, Any]) -> None:
    print(table([figures]), flush=True)
    print(f"phases (s): {figures['phases_s']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = QUICK if args.quick else DEFAULT
    if args.jobs or args.rate:
        from dataclasses import replace

        size = replace(size, jobs=args.jobs or size.jobs, rate=args.rate or size.rate)
    names = args.scenarios.split(",")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (args.out / f"{stamp}-{'quick' if args.quick else 'full'}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    stack = _stack(args, run_dir)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    start_s = 0.0
    counter = ThreadPoolExecutor(1, thread_name_prefix="chaos-files")
    try:
        keys = _start(stack, capped_jobs=len(names) * (size.jobs // 20 + 1))
        start_s = time.monotonic() - started
        run = Run(stack=stack, size=size, rng=random.Random(args.seed))
        for name in names:
            print(f"chaos: {name} …", flush=True)
            results.append(run_scenario(name, run, keys, args, counter))
            if len(results) > 1:
                _report(finish(results[-2]))
        _report(finish(results[-1]))
    finally:
        counter.shutdown(wait=True, cancel_futures=True)
        stack.stop()
        from django.db import connections

        connections.close_all()
        stack.drop_database()
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else argv,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_end": os.getloadavg()},
        "broker": args.broker,
        "size": size.__dict__,
        "wall_s": round(time.monotonic() - started, 1),
        "start_s": round(start_s, 1),
        "scenarios": results,
    }  # fmt: skip
    path = run_dir / "chaos.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(table(results))
    print(f"wall {report['wall_s']} s; results: {path}")
    breached = {r["scenario"]: r["breaches"] for r in results if r["breaches"]}
    if breached:
        print(f"INVARIANTS BREACHED: {breached}")
    return 1 if breached else 0


if __name__ == "__main__":
    sys.exit(main())
