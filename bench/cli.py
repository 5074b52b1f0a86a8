"""`python -m bench`: run the whole stack under load and print what it achieved."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import figures, querycount, waits
from bench.procstat import RoleStats, Sampler, machine_busy_seconds, server_pid
from bench.stack import ROOT, Stack, StackConfig, procfile_web_args

BROKERS = ("sqlite", "postgres", "redis")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    web_workers, web_threads = procfile_web_args()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--broker", default="sqlite", help="sqlite, postgres, redis or a list: a,b")
    p.add_argument(
        "--scenario",
        choices=("submit", "waits"),
        default="submit",
        help="submit: --jobs submits from --connections clients; waits: --waiters clients "
        "submit at once with `Prefer: wait=--wait` while a probe times GET /api/v1/me",
    )
    p.add_argument(
        "--peer",
        choices=("none", "bare-sdk"),
        default="none",
        help="bare-sdk: after Bunch's run, the same requests from a bare google-genai client "
        "on the same emulator (bench/peer.py); prints both and the ratio",
    )
    p.add_argument("--waiters", type=int, default=1000, help="waits: concurrent clients")
    p.add_argument("--wait", type=int, default=30, help="waits: the N of Prefer: wait=N")
    p.add_argument("--wait-margin", type=float, default=1.0, help="waits: s past N still on time")
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--images", type=int, default=1, help="images per job")
    p.add_argument("--rate", type=float, default=0.0, help="submits/s; 0 = as fast as possible")
    p.add_argument("--connections", type=int, default=16, help="load generator connections")
    p.add_argument(
        "--prefill",
        action="store_true",
        help="submit every job before the workers start (queue depth = --jobs)",
    )
    p.add_argument("--latency", type=float, default=4.0, help="emulated model seconds")
    p.add_argument("--jitter", type=float, default=0.5)
    p.add_argument(
        "--provider-concurrency",
        type=int,
        default=80,
        help="the emulator answers 429 beyond this many calls in flight; the workers are "
        "sized to stay at it (calls per task = this / workers)",
    )
    p.add_argument(
        "--cold-emulator",
        action="store_true",
        help="skip drawing the prompt variants before the run (the emulator then draws them "
        "in the run's first seconds, on the measured cores)",
    )
    p.add_argument("--workers", type=int, default=2, help="django-q2 worker processes")
    p.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="run the worker processes under `nice -n N` (tried in round 3, not kept)",
    )
    p.add_argument("--jobs-per-task", type=int, default=0, help="0: 3 × calls per task")
    p.add_argument("--calls-per-task", type=int, default=0, help="0: concurrency / workers")
    p.add_argument("--task-budget", type=float, default=240.0, help="seconds a task keeps claiming")
    p.add_argument("--web-workers", type=int, default=web_workers)
    p.add_argument("--web-threads", type=int, default=web_threads)
    p.add_argument("--timeout", type=float, default=900.0, help="give up after this many s")
    p.add_argument("--no-query-count", action="store_true")
    p.add_argument("--keep-db", action="store_true", help="keep the PostgreSQL database")
    p.add_argument(
        "--keep-media",
        action="store_true",
        help="keep the run's stored images (about 1.4 MB each; removed by default once the "
        "correctness check has counted them)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    p.add_argument("--label", default="", help="free text stored with the results")
    args = p.parse_args(argv)
    if args.peer != "none" and args.scenario != "submit":
        p.error("--peer compares the submit scenario's throughput; use --scenario submit")
    for broker in args.broker.split(","):
        if broker not in BROKERS:
            p.error(f"unknown broker {broker!r}; use {', '.join(BROKERS)}")
    return args


def _config(args: argparse.Namespace, broker: str, run_dir: Path) -> StackConfig:
    calls = args.calls_per_task or max(1, args.provider_concurrency // args.workers)
    return StackConfig(
        broker=broker,
        run_dir=run_dir,
        latency=args.latency,
        jitter=args.jitter,
        provider_concurrency=args.provider_concurrency,
        q_workers=args.workers,
        jobs_per_task=args.jobs_per_task or calls * 3,
        calls_per_task=calls,
        task_budget_s=args.task_budget,
        web_workers=args.web_workers,
        web_threads=args.web_threads,
        count_queries=not args.no_query_count,
        worker_nice=args.worker_nice,
    )


def _django(stack: Stack) -> None:
    """Point this process's Django at the run's database, migrate, and set up."""
    os.environ.update(stack.env())
    for name in ("DATABASE_URL", "REDIS_URL", "BUNCH_SQLITE_PATH", "BUNCH_BENCH_QUERY_DIR"):
        if name not in stack.env():
            os.environ.pop(name, None)
    os.environ.pop("BUNCH_BENCH_QUERY_DIR", None)  # the driver's own queries don't count
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _tenant_key() -> str:
    """A tenant on the Scale plan (1M images, 20,000 requests/min, 500 jobs at once)."""
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def _warm_emulator(stack: Stack, key: str, jobs: int) -> None:
    """Have the emulator draw each of the load's prompt variants once, then zero its stats.

    A cold emulator spends about 100 ms of CPU per drawing, 3 s for the 32 variants, in the
    first seconds of a run, on the cores the platform is measured on (the real model draws
    on Google's machines). The requests are exactly the workers' (same prompt template,
    ratio, size), so the emulator's cache, keyed on the prompt without its [[markers]],
    serves the run.
    """
    import asyncio
    import urllib.request

    from bench.load import PROMPT_VARIANTS
    from generation import ingest
    from generation.gateway import get_provider
    from generation.providers.types import ImageRequest
    from generation.services import JobParams, job_build, job_params_check
    from tenants.services import api_key_check

    api_key = api_key_check(key)
    assert api_key is not None
    requests = []
    for n in range(min(PROMPT_VARIANTS, jobs)):
        params = JobParams(prompt=f"product mockup of bench item {n} [[bench:warm]]", kind="mockup")
        ratio = job_params_check(api_key.tenant, params)
        job = job_build(tenant=api_key.tenant, params=params, ratio=ratio, mode=params.mode)
        requests.append(ingest.job_request(job))

    async def draw_all() -> None:
        below_limit = asyncio.Semaphore(stack.config.provider_concurrency)

        async def draw(request: ImageRequest) -> None:
            async with below_limit:
                await session.generate(request)

        async with get_provider().async_session() as session:
            await asyncio.gather(*(draw(request) for request in requests))

    asyncio.run(draw_all())
    reset = urllib.request.Request(f"{stack.emulator_url}/_emulator/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()


def _load(stack: Stack, args: argparse.Namespace, key: str) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "bench.load", "--url", stack.web_url, "--key", key,
        "--jobs", str(args.jobs), "--images", str(args.images), "--rate", str(args.rate),
        "--connections", str(args.connections), "--out", str(stack.config.run_dir / "load.json"),
    ]  # fmt: skip
    return subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _waits(stack: Stack, args: argparse.Namespace, key: str) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "bench.waits", "--url", stack.web_url, "--key", key,
        "--waiters", str(args.waiters), "--wait", str(args.wait),
        "--out", str(stack.config.run_dir / "load.json"),
    ]  # fmt: skip
    return subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _load_records(stack: Stack) -> list[list[Any]]:
    records: list[list[Any]] = json.loads((stack.config.run_dir / "load.json").read_text())[
        "requests"
    ]
    return records


def _wait_finished(expected: int, timeout_s: float) -> float:
    from generation.models import Job

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = Job.objects.filter(status__in=Job.FINISHED).count()
        if done >= expected:
            return time.monotonic()
        time.sleep(1.0)
    raise TimeoutError(f"only {done} of {expected} jobs finished within {timeout_s:.0f} s")


def _rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int], dict[str, int]]:
    from django.db.models import Count, F, Sum

    from billing.models import UsageEvent
    from generation.models import Image, Job
    from tenants.models import QuotaPeriod

    jobs = list(Job.objects.values("id", "status", "created_at", "started_at", "model_prompt"))
    # Stored: the usage event is written inside the image's store transaction.
    images = list(
        Image.objects.filter(job__isnull=False)
        .annotate(stored_at=F("usage__occurred_at"))
        .values("job_id", "index", "stored_at")
    )
    usage = UsageEvent.objects.aggregate(
        events=Count("id"), distinct_images=Count("image_id", distinct=True)
    )
    quota = QuotaPeriod.objects.aggregate(
        images_used=Sum("images_used"),
        images_reserved=Sum("images_reserved"),
        spend_reserved_nanos=Sum("spend_reserved_nanos"),
    )
    return jobs, images, usage, {k: int(v or 0) for k, v in quota.items()}


def run_one(args: argparse.Namespace, broker: str) -> dict[str, Any]:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    size = args.waiters if args.scenario == "waits" else args.jobs
    run_dir = (args.out / f"{stamp}-{broker}-{args.scenario}-{size}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(_config(args, broker, run_dir))
    stack.create_database()
    try:
        _django(stack)
        key = _tenant_key()
        stack.start_emulator()
        if not args.cold_emulator:
            _warm_emulator(stack, key, args.jobs)
        if not args.prefill:
            stack.start_worker()
        stack.start_web()
        time.sleep(1.0)  # the cluster's processes settle
        roots = {role: p.pid for role, p in stack.processes.items()}
        for server in ("postgres", "redis-server") if broker != "sqlite" else ():
            pid = server_pid(server)
            if pid and (server != "redis-server" or broker == "redis"):
                roots[server.removesuffix("-server")] = pid
        sampler = Sampler(roots).start()
        cpu_start = sampler.snapshot()
        busy_start, wall_start = machine_busy_seconds(), time.monotonic()
        t_start = time.monotonic() - sampler.started
        load = (_waits if args.scenario == "waits" else _load)(stack, args, key)
        if load.wait() != 0:
            raise RuntimeError("the load generator failed")
        if args.prefill:
            cpu_submit = sampler.snapshot()
            stack.start_worker()
            sampler.roots["worker"] = stack.processes["worker"].pid
            sampler.roles["worker"] = RoleStats()
        else:
            cpu_submit = cpu_start
        accepted = sum(1 for r in _load_records(stack) if r[3] in (200, 202))
        _wait_finished(accepted, args.timeout)
        t_end = time.monotonic() - sampler.started
        sampler.sample()
        cpu_end = sampler.snapshot()
        sampler.stop()
        busy = machine_busy_seconds() - busy_start
        wall = time.monotonic() - wall_start
        result = _report(args, stack, sampler, cpu_start, cpu_submit, cpu_end, t_start, t_end)
        if args.scenario == "waits":
            load_json = json.loads((stack.config.run_dir / "load.json").read_text())
            result["waits"] = waits.summary(load_json, args.wait, args.wait_margin)
            created = sorted(j["created_at"] for j in _rows()[0])
            result["waits"]["submits_span_s"] = (created[-1] - created[0]).total_seconds()
        ours = sum(
            cpu_end[role] - cpu_start.get(role, 0.0) for role in cpu_end if role != "postgres"
        )
        result["machine_cpu"] = {
            "wall_s": wall,
            "busy_cores": busy / wall,
            "bench_processes_cores": ours / wall,
            "loadavg_end": os.getloadavg(),
        }
        if args.peer == "bare-sdk":
            result["peer"] = _peer(stack, args)
        return result
    finally:
        stack.stop()
        if not args.keep_media:
            shutil.rmtree(run_dir / "media", ignore_errors=True)
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            stack.drop_database()


def _report(
    args: argparse.Namespace, stack: Stack, sampler: Sampler, cpu_start: dict[str, float],
    cpu_submit: dict[str, float], cpu_end: dict[str, float], t_start: float, t_end: float,
) -> dict[str, Any]:  # fmt: skip
    c = stack.config
    load = json.loads((c.run_dir / "load.json").read_text())
    jobs, images, usage, quota = _rows()
    n_images = max(len(images), 1)
    cpu = {
        role: (cpu_end[role] - (cpu_submit if role == "worker" else cpu_start).get(role, 0.0))
        / n_images
        for role in cpu_end
    }
    queries = querycount.totals(stack.query_dir)
    return {
        "label": args.label,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "config": {
            "broker": c.broker,
            "scenario": args.scenario,
            "jobs": args.waiters if args.scenario == "waits" else args.jobs,
            "images_per_job": args.images,
            "rate": args.rate,
            "connections": args.connections,
            "prefill": args.prefill,
            "warm_emulator": not args.cold_emulator,
            "latency": c.latency,
            "jitter": c.jitter,
            "provider_concurrency": c.provider_concurrency,
            "q_workers": c.q_workers,
            "worker_nice": c.worker_nice,
            "jobs_per_task": c.jobs_per_task,
            "calls_per_task": c.calls_per_task,
            "task_budget_s": c.task_budget_s,
            "web_workers": c.web_workers,
            "web_threads": c.web_threads,
        },
        "argv": sys.argv[1:],
        "submit": figures.submit_figures(load),
        "pipeline": figures.pipeline_figures(
            jobs=jobs,
            images=images,
            prompts={str(j["id"]): j["model_prompt"] for j in jobs},
            request_log=stack.request_log,
            provider_concurrency=c.provider_concurrency,
            latency=c.latency,
        ),
        "cpu_s_per_image": cpu,
        "peak_rss_mb": {r: s.peak_process_rss_mb() for r, s in sampler.roles.items()},
        "memory": {
            r: figures.memory_figures(s.rss_series, t_start, t_end)
            for r, s in sampler.roles.items()
        },
        "queries_per_job": {role: n / max(len(jobs), 1) for role, n in queries.items()},
        "emulator": _emulator_stats(stack),
        "provenance": _provenance_figures(),
        "correctness": figures.correctness(
            jobs=jobs,
            images=images,
            usage=usage,
            quota=quota,
            requested_jobs=args.waiters if args.scenario == "waits" else args.jobs,
            images_per_job=1 if args.scenario == "waits" else args.images,
        ),
        "run_dir": str(c.run_dir),
    }


def _peer(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """The bare-SDK peer (bench/peer.py) on the same emulator, with Bunch's requests.

    Bunch's web and worker are stopped first, so the peer has the cores Bunch had; the
    emulator's counters are zeroed so its 429s are the peer's own.
    """
    import urllib.request

    from core.catalog import get_model
    from generation.models import Job

    for role in ("web", "worker"):
        process = stack.processes.get(role)
        if process and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    requests = [
        {
            "model_id": get_model(tier).model_id,
            "prompt": prompt,
            "aspect_ratio": ratio,
            "image_size": size,
        }
        for tier, prompt, ratio, size, count in Job.objects.order_by("created_at").values_list(
            "tier", "model_prompt", "aspect_ratio", "image_size", "count"
        )
        for _ in range(count)
    ]
    run_dir = stack.config.run_dir
    (run_dir / "peer-requests.json").write_text(json.dumps(requests))
    reset = urllib.request.Request(f"{stack.emulator_url}/_emulator/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    argv = [
        sys.executable, "-m", "bench.peer", "--url", stack.emulator_url,
        "--requests", str(run_dir / "peer-requests.json"),
        "--concurrency", str(args.provider_concurrency),
        "--out", str(run_dir / "peer.json"), "--dir", str(run_dir / "media" / "peer"),
    ]  # fmt: skip
    subprocess.run(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    peer: dict[str, Any] = json.loads((run_dir / "peer.json").read_text())
    peer["emulator"] = _emulator_stats(stack)
    return peer


def _provenance_figures(sample: int = 40) -> dict[str, Any]:
    """The stored images' Content Credentials states, and what reading one costs (the
    worker pays it once per image, in `images.image_build`): read again here, in this
    process, for a sample of the run's images."""
    from django.db.models import Count

    from generation.models import Image, Provenance
    from generation.provenance import credentials_read

    states = dict(
        Provenance.objects.values_list("state").annotate(n=Count("pk")).values_list("state", "n")
    )
    wall, cpu = [], []
    for image in Image.objects.order_by("created_at")[:sample]:
        with image.file.open("rb") as fh:
            data = fh.read()
        started, started_cpu = time.perf_counter(), time.process_time()
        credentials_read(data, image.mime_type)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return {
        "states": states,
        "unchecked": Image.objects.filter(provenance__isnull=True).count(),
        "read_ms": {
            "p50": figures.percentile(wall, 0.5),
            "mean": sum(wall) / len(wall) if wall else float("nan"),
            "cpu_mean": sum(cpu) / len(cpu) if cpu else float("nan"),
            "sample": len(wall),
        },
    }


def _emulator_stats(stack: Stack) -> dict[str, Any]:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{stack.emulator_url}/_emulator/stats", timeout=5) as r:
            stats: dict[str, Any] = json.load(r)
            return stats
    except OSError:
        return {}


def main(argv: list[str] | None = None) -> None:
    from bench.table import render

    given = list(sys.argv[1:] if argv is None else argv)
    # --scenario submit (the default) | waits | fairness (its own driver, bench/fairness.py)
    if "--scenario" in given and given[given.index("--scenario") + 1 :][:1] == ["fairness"]:
        from bench import fairness

        fairness.main(given)
        return
    args = parse_args(argv)
    results = []
    for broker in args.broker.split(","):
        if results:  # one Django per process: run each further broker in a fresh one
            argv_one = [a for a in (argv or sys.argv[1:])]
            _rerun(argv_one, broker)
            continue
        result = run_one(args, broker)
        results.append(result)
        path = Path(result["run_dir"]) / "result.json"
        path.write_text(json.dumps(result, indent=2, default=str))
        print(render(result))
        if "waits" in result:
            print(json.dumps(result["waits"], indent=2))
        print(f"results: {path}")
    if not all(r["correctness"]["ok"] for r in results):
        sys.exit(1)


def _rerun(argv: list[str], broker: str) -> None:
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--broker":
            skip = True
            continue
        if a.startswith("--broker="):
            continue
        rest.append(a)
    code = subprocess.call([sys.executable, "-m", "bench", "--broker", broker, *rest], cwd=ROOT)
    if code:
        sys.exit(code)
