"""The waits scenario's load: many clients that each submit with `Prefer: wait=N` at once,
while a probe asks `GET /api/v1/me` every `--probe-interval` s.

`python -m bench.waits --url … --key … --waiters 1000 --wait 30 --out FILE`

Every waiter must be answered by its deadline (N s + `--margin`), with 200 and the
finished job or 202 and `Location`; nothing may answer 5xx. The probe's latencies show
whether waiting clients slow everyone else down. Written in the load generator's record
format (`bench.load`), so the stack's job accounting works unchanged, plus `probe` and
`waits` sections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import prompt_for


async def _waiter(
    session: aiohttp.ClientSession, url: str, n: int, wait: int, records: list[list[Any]]
) -> None:
    body = {"prompt": prompt_for(n), "kind": "avatar"}
    sent = time.time()
    t0 = time.perf_counter()
    job_id, status, located = "", 0, False
    try:
        async with session.post(url, json=body, headers={"Prefer": f"wait={wait}"}) as resp:
            status = resp.status
            payload = await resp.json(content_type=None)
            job_id = payload.get("id", "") if isinstance(payload, dict) else ""
            located = bool(resp.headers.get("Location"))
            if status == 200 and payload.get("status") not in ("succeeded", "failed", "canceled"):
                status = -2  # a 200 must carry a finished job
    except (TimeoutError, aiohttp.ClientError) as exc:
        status, job_id = -1, repr(exc)
    records.append([n, sent, time.perf_counter() - t0, status, job_id, located])


async def _probe(
    session: aiohttp.ClientSession, url: str, interval: float, stop: asyncio.Event
) -> list[list[float]]:
    samples: list[list[float]] = []
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            async with session.get(url) as resp:
                await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError):
            status = -1
        samples.append([time.time(), time.perf_counter() - t0, status])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.perf_counter() - t0)))
    return samples


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = args.url.rstrip("/")
    headers = {"Authorization": f"Bearer {args.key}"}
    timeout = aiohttp.ClientTimeout(total=args.wait + 30)
    records: list[list[Any]] = []
    waiters = aiohttp.TCPConnector(limit=0)  # one connection per waiting client
    prober = aiohttp.TCPConnector(limit=1)
    async with (
        aiohttp.ClientSession(headers=headers, connector=waiters, timeout=timeout) as session,
        aiohttp.ClientSession(headers=headers, connector=prober, timeout=timeout) as probe,
    ):
        stop = asyncio.Event()
        probing = asyncio.create_task(_probe(probe, f"{base}/api/v1/me", args.probe_interval, stop))
        await asyncio.sleep(2.0)  # a baseline before the waiters arrive
        started = time.time()
        await asyncio.gather(
            *(
                _waiter(session, f"{base}/api/v1/generations", n, args.wait, records)
                for n in range(args.waiters)
            )
        )
        finished = time.time()
        await asyncio.sleep(1.0)
        stop.set()
        samples = await probing
    return {"started": started, "finished": finished, "requests": records, "probe": samples}


def summary(load: dict[str, Any], wait: int, margin: float) -> dict[str, Any]:
    """The scenario's figures: waiter outcomes against the deadline, probe latencies while
    waiters were in flight."""
    records = load["requests"]
    latencies = sorted(r[2] for r in records)
    statuses: dict[str, int] = {}
    for r in records:
        statuses[str(r[3])] = statuses.get(str(r[3]), 0) + 1
    late = sum(1 for r in records if r[2] > wait + margin)
    during = [s for s in load["probe"] if load["started"] <= s[0] <= load["finished"] and s[2] > 0]
    probe_ms = sorted(s[1] * 1000 for s in during)
    return {
        "waiters": len(records),
        "wait_s": wait,
        "statuses": statuses,
        "answered_200": statuses.get("200", 0),
        "answered_202": statuses.get("202", 0),
        "http_5xx": sum(1 for r in records if 500 <= r[3] < 600)
        + sum(1 for s in load["probe"] if 500 <= s[2] < 600),
        "errors": sum(1 for r in records if r[3] < 0),
        "missing_location": sum(1 for r in records if r[3] == 202 and not r[5]),
        "late": late,
        "latency_s": _quantiles(latencies),
        "probe_me_ms": _quantiles(probe_ms) | {"samples": len(probe_ms)},
        "probe_me_ms_by_5s": _windows(during, load["started"], 5.0),
    }


def _windows(samples: list[list[float]], start: float, size: float) -> list[dict[str, float]]:
    """The probe's p99 and max per `size` s since the waiters started: the submit burst
    first, then the waiting."""
    by: dict[int, list[float]] = {}
    for at, seconds, _ in samples:
        by.setdefault(int((at - start) // size), []).append(seconds * 1000)
    return [{"from_s": n * size, **_quantiles(sorted(v))} for n, v in sorted(by.items()) if v]


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}

    def q(p: float) -> float:
        return round(values[min(len(values) - 1, int(p * len(values)))], 3)

    return {"p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "max": round(values[-1], 3)}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.waits")
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--waiters", type=int, default=1000)
    p.add_argument("--wait", type=int, default=30)
    p.add_argument("--probe-interval", type=float, default=0.05)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    load = asyncio.run(run(args))
    args.out.write_text(json.dumps(load))


if __name__ == "__main__":
    main()
