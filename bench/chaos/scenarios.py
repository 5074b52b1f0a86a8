"""The six fault scenarios. Each runs its faults while a `Load` submits, and returns when
the faults end (time.monotonic()); the driver then heals everything and counts."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.clients import Load
from bench.chaos.stack import ChaosStack


@dataclass
class Size:
    """How long each scenario's faults last (seconds); the default run and --quick."""

    jobs: int
    rate: float
    worker_kills_s: float
    web_kills_s: float
    db_latency_s: float
    db_reset_s: float
    storm_s: float
    stripe_hours: float
    s3_refusal_s: float

    def rate_for(self, scenario: str) -> float:
        """Submits/s: `rate`, except that the worker kills' jobs are spread over the whole
        kill window, so that every kill finds jobs running."""
        if scenario == "worker_kills":
            return min(self.rate, self.jobs / self.worker_kills_s)
        return self.rate


# 12 submits/s: about what the default stack (2 web and 2 worker processes) processes on 2
# cores; at 16/s the queue waits grew to 16–30 s (p50) and the jobs finished no sooner.
DEFAULT = Size(
    jobs=1000, rate=12.0, worker_kills_s=120, web_kills_s=60, db_latency_s=20, db_reset_s=20,
    storm_s=60, stripe_hours=6, s3_refusal_s=30,
)  # fmt: skip
QUICK = Size(
    jobs=40, rate=8.0, worker_kills_s=9, web_kills_s=8, db_latency_s=3, db_reset_s=4,
    storm_s=5, stripe_hours=6, s3_refusal_s=4,
)  # fmt: skip


@dataclass
class Run:
    stack: ChaosStack
    size: Size
    rng: random.Random
    notes: dict[str, Any] = field(default_factory=dict)

    def sleep_while(self, seconds: float, step: Callable[[], None], every: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            step()
            time.sleep(min(every, left))


def _live(pids: list[int]) -> list[int]:
    return [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


def _sentinel_children(stack: ChaosStack) -> list[int]:
    from bench.procstat import _children

    tree = _children()
    return sorted(
        pid for s in tree.get(stack.processes["worker"].pid, []) for pid in tree.get(s, [])
    )


def auxiliaries(stack: ChaosStack) -> set[int]:
    """django-q2's monitor and pusher: the sentinel (the qcluster's child) forks its
    workers first, then the monitor, then the pusher; read once the cluster is up, before
    any kill (a dead worker's replacement is forked later, with a higher pid)."""
    children = _sentinel_children(stack)
    workers = stack.config.q_workers
    if len(children) != workers + 2:
        raise RuntimeError(f"expected {workers} workers + monitor + pusher, found {children}")
    return set(children[workers:])


def worker_kills(run: Run, load: Load) -> float:
    killed: list[int] = []
    aux = auxiliaries(run.stack)

    def kill_one() -> None:
        workers = [pid for pid in _live(_sentinel_children(run.stack)) if pid not in aux]
        if workers:
            pid = run.rng.choice(workers)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    time.sleep(2)
    run.sleep_while(run.size.worker_kills_s, kill_one, every=3.0)
    run.notes["kills"] = len(killed)
    if not set(_live(_sentinel_children(run.stack))) >= aux:
        raise RuntimeError("a kill hit django-q2's monitor or pusher, not a worker")
    return time.monotonic()


def web_kills(run: Run, load: Load) -> float:
    kills = {"SIGKILL": 0, "SIGTERM": 0}

    def kill_one() -> None:
        workers = _live(run.stack.descendants("web"))
        if not workers:
            return
        sig = signal.SIGKILL if sum(kills.values()) % 2 == 0 else signal.SIGTERM
        os.kill(run.rng.choice(workers), sig)
        kills[sig.name] += 1

    time.sleep(1)
    run.sleep_while(run.size.web_kills_s, kill_one, every=4.0)
    run.notes["kills"] = kills
    return time.monotonic()


def database_trouble(run: Run, load: Load) -> float:
    proxies = [p for name, p in run.stack.proxies.items() if name in ("postgres", "redis")]
    time.sleep(2)
    for proxy in proxies:
        proxy.latency_s = 0.3
    time.sleep(run.size.db_latency_s)
    for proxy in proxies:
        proxy.latency_s = 0.0
        proxy.reset_all()
    time.sleep(run.size.db_reset_s)
    for proxy in proxies:
        proxy.heal()
    run.notes["connections_reset"] = {n: p.resets for n, p in run.stack.proxies.items()}
    return time.monotonic()


STORM = {"rate_500": 0.15, "rate_503": 0.15, "drop_rate": 0.05, "slow_rate": 0.02}
LITE = "gemini-3.1-flash-lite-image"


def provider_storm(run: Run, load: Load) -> float:
    """30 % 5xx, 5 % dropped connections, 2 % answers slower than the timeout; every 10 s a
    2 s burst of 429 with RetryInfo on the Lite model (a per-model fault)."""
    stack = run.stack
    stack.gemini_faults(**STORM, slow_seconds=float(stack.env()["GEMINI_TIMEOUT_S"]) + 2)
    time.sleep(1)
    end = time.monotonic() + run.size.storm_s
    bursts = 0
    while time.monotonic() < end:
        stack.gemini_faults(model=LITE, **STORM, rate_429=0.9, retry_delay_s=2)
        bursts += 1
        time.sleep(min(2.0, max(end - time.monotonic(), 0)))
        stack.gemini_faults(model=LITE, **STORM, rate_429=0.0)
        time.sleep(min(8.0, max(end - time.monotonic(), 0)))
    stack.gemini_clear()
    run.notes["bursts_429"] = bursts
    return time.monotonic()


def sync_parallel(now: dt.datetime, threads: int = 0) -> int:
    """`sync_pending(now=…)` on several threads at once, as several workers' syncs would run
    (their claims skip each other's rows; on SQLite, one thread), until nothing is due at
    `now`; returns the retrying count.

    Most of a sync's time is waiting: for Stripe, and for the SDK's own pause (0.5–1 s)
    before it retries a dropped connection; threads overlap those waits. Each sync takes a
    few events at a time (`SYNC_TAKE`), so that a step's events spread over the threads
    (a sync claims 50 at once: one step's 80 due events went to two threads)."""
    global _sync_pool
    from django.db import connection

    from billing.sync import sync_pending

    threads = threads or (8 if connection.features.has_select_for_update_skip_locked else 1)
    take = SYNC_TAKE if threads > 1 else 5000

    def one(_: int) -> int:
        retrying = 0
        while True:
            report = sync_pending(now=now, limit=take)
            retrying += report.retrying
            if report.processed < take:
                return retrying

    if threads == 1:
        return one(0)
    # One pool for the run: its threads keep their database connections from step to step
    # (closed with the run's database, dropped WITH (FORCE)).
    if _sync_pool is None or _sync_pool._max_workers != threads:
        _sync_pool = ThreadPoolExecutor(threads, thread_name_prefix="chaos-sync")
    return sum(_sync_pool.map(one, range(threads)))


SYNC_TAKE = 12
_sync_pool: ThreadPoolExecutor | None = None


def stripe_outage(run: Run, load: Load) -> float:
    """Stripe refuses every call (429) while the scenario's jobs run and are stored, and
    then for `stripe_hours` on the sync's clock: the driver runs the meter sync itself, 5
    simulated minutes a step, while the cluster's schedule also runs on the real clock.
    Then it commits and drops the connection for 10 % of meter events."""
    from django.utils import timezone

    from bench.chaos.invariants import unfinished

    stack = run.stack
    stack.stripe_faults(rate_429=1.0)
    while load.running or unfinished(load.scenario):
        time.sleep(0.5)
    clock = timezone.now()
    end = clock + dt.timedelta(hours=run.size.stripe_hours)
    attempts = 0
    while clock < end:
        attempts += sync_parallel(clock)
        clock += dt.timedelta(minutes=5)
    faults_end = time.monotonic()
    stack.stripe_faults(drop_after_commit_rate=0.1, path_prefix="/v1/billing/meter_events")
    run.notes["refused_sync_attempts"] = attempts
    run.notes["clock"] = clock
    return faults_end


def storage_refusal(run: Run, load: Load) -> float:
    from bench.chaos.invariants import scenario_jobs

    proxy = run.stack.proxies["s3"]
    while not scenario_jobs(load.scenario).filter(images__isnull=False).exists():
        time.sleep(0.2)  # refuse from the scenario's first stored image on
    proxy.refuse_writes = True
    time.sleep(run.size.s3_refusal_s)
    proxy.heal()
    run.notes["writes_refused"] = proxy.refused
    return time.monotonic()


SCENARIOS: dict[str, Callable[[Run, Load], float]] = {
    "worker_kills": worker_kills,
    "web_kills": web_kills,
    "database": database_trouble,
    "provider_storm": provider_storm,
    "stripe_outage": stripe_outage,
    "storage": storage_refusal,
}
