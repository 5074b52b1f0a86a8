"""The printed table of one run."""

from __future__ import annotations

from typing import Any


def _f(value: Any, digits: int = 1) -> str:
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def render(r: dict[str, Any]) -> str:
    c, s, p, ok = r["config"], r["submit"], r["pipeline"], r["correctness"]
    lat, ovh = s["latency_ms"], p.get("overhead_ms", {})

    def stage(name: str) -> str:
        return " / ".join(_f(p.get(name, {}).get(q, float("nan"))) for q in ("p50", "p95", "p99"))

    roles = ("web", "worker", "emulator")
    rows = [
        ("broker", c["broker"]),
        ("jobs × images", f"{c['jobs']} × {c['images_per_job']}"
         + (" (prefilled queue)" if c["prefill"] else "")),
        ("workers", f"{c['q_workers']} q-workers × {c['calls_per_task']} calls "
         f"({c['jobs_per_task']} jobs)/task; web {c['web_workers']}×{c['web_threads']}"),
        ("provider", f"concurrency {c['provider_concurrency']}, latency {c['latency']} "
         f"± {c['jitter']} s"),
        ("submit accepted/s", _f(s["accepted_per_s"])),
        ("submit latency ms p50/p95/p99",
         f"{_f(lat['p50'])} / {_f(lat['p95'])} / {_f(lat['p99'])}"),
        ("submit statuses", s["statuses"]),
        ("images/min sustained (end to end)",
         f"{_f(p.get('sustained_per_min'), 0)} ({_f(p.get('end_to_end_per_min'), 0)})"),
        ("efficiency (ideal/min)",
         f"{_f(p.get('efficiency'), 3)} ({_f(p.get('ideal_per_min'), 0)})"),
        ("overhead ms p50/p95/p99",
         f"{_f(ovh.get('p50'))} / {_f(ovh.get('p95'))} / {_f(ovh.get('p99'))}"),
        ("  submit → claim ms p50/p95/p99", stage("queue_wait_ms")),
        ("  claim → call ms p50/p95/p99", stage("claim_to_call_ms")),
        ("  answer → stored ms p50/p95/p99", stage("answer_to_stored_ms")),
        ("mean model time s", _f(p.get("model_time_s_mean"), 3)),
        ("CPU ms/image web/worker/emulator",
         " / ".join(_f(r["cpu_s_per_image"].get(x, 0) * 1000) for x in roles)),
        ("CPU ms/image postgres/redis (shared)",
         " / ".join(_f(r["cpu_s_per_image"].get(x, float("nan")) * 1000)
                    for x in ("postgres", "redis"))),
        ("peak RSS MB/process web/worker/emu",
         " / ".join(_f(r["peak_rss_mb"].get(x, 0), 0) for x in roles)),
        ("RSS growth MB web/worker/emu",
         " / ".join(_f(r["memory"].get(x, {}).get("growth_mb", float("nan"))) for x in roles)),
        ("queries/job web/worker",
         " / ".join(_f(r["queries_per_job"].get(x, float("nan"))) for x in ("web", "worker"))),
        ("emulator 429s", r["emulator"].get("by_model", {})),
        ("C2PA read ms/image p50/mean (CPU)",
         f"{_f(r.get('provenance', {}).get('read_ms', {}).get('p50', float('nan')), 2)} / "
         f"{_f(r.get('provenance', {}).get('read_ms', {}).get('mean', float('nan')), 2)} "
         f"({_f(r.get('provenance', {}).get('read_ms', {}).get('cpu_mean', float('nan')), 2)})"),
        ("C2PA states", r.get("provenance", {}).get("states", {})),
        ("machine busy cores (bench processes)",
         f"{_f(r.get('machine_cpu', {}).get('busy_cores', float('nan')), 2)} "
         f"({_f(r.get('machine_cpu', {}).get('bench_processes_cores', float('nan')), 2)})"),
        ("correct", f"{ok['ok']}: {ok['statuses']}, images {ok['images']}, usage "
         f"{ok['usage_events']}, requested {ok['requested_images']}, duplicates "
         f"{ok['duplicate_image_slots']}, reserved left {ok['quota_images_reserved']}"),
    ]  # fmt: skip
    if "peer" in r:
        peer = r["peer"]
        bunch_cpu = sum(
            r["cpu_s_per_image"].get(x, 0.0) * 1000 for x in ("web", "worker", "postgres", "redis")
        )
        ratio = p.get("sustained_per_min", float("nan")) / peer["sustained_per_min"]
        rows += [
            ("peer (bare SDK) images/min sustained (end to end)",
             f"{_f(peer['sustained_per_min'], 0)} ({_f(peer['end_to_end_per_min'], 0)})"),
            ("peer CPU ms/image; Bunch web+worker+db", f"{_f(peer['cpu_ms_per_image'])}; "
             f"{_f(bunch_cpu)}"),
            ("peer images, failed, 429s retried",
             f"{peer['images']}, {peer['failed']}, {peer['throttled_429']}"),
            ("Bunch ÷ peer (sustained images/min)", _f(ratio, 2)),
        ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
