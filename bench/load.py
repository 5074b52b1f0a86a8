"""The load generator: a separate process that submits jobs over HTTP with aiohttp.

`python -m bench.load --url … --key … --jobs N [--rate R] [--connections C] --out FILE`

It first warms its connections up (`_warm_up`, not recorded). With `--rate 0` it submits
as fast as `C` connections allow (closed loop); otherwise it sends on an open-loop schedule
of R requests/s, so a slow server shows up as latency rather than as a lower offered rate.
Each job's prompt carries `[[bench:<n>]]`, which the emulator ignores when drawing but
which lets the report match its request-log lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import aiohttp

PROMPT_VARIANTS = 32  # distinct drawings; the emulator caches renders like a CDN would


def prompt_for(n: int) -> str:
    return f"product mockup of bench item {n % PROMPT_VARIANTS} [[bench:{n}]]"


async def _submit(
    session: aiohttp.ClientSession, url: str, n: int, count: int, records: list[list[object]]
) -> None:
    body = {"prompt": prompt_for(n), "kind": "mockup", "count": count}
    sent = time.time()
    t0 = time.perf_counter()
    job_id, status = "", 0
    for attempt in range(5):
        try:
            async with session.post(url, json=body) as resp:
                status = resp.status
                payload = await resp.json(content_type=None)
                if status == 429:
                    await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                    continue
                job_id = payload.get("id", "") if isinstance(payload, dict) else ""
                break
        except (TimeoutError, aiohttp.ClientError) as exc:
            status = -1
            job_id = repr(exc)
            await asyncio.sleep(0.2 * (attempt + 1))
    records.append([n, sent, time.perf_counter() - t0, status, job_id])


async def _warm_up(session: aiohttp.ClientSession, me_url: str, connections: int) -> None:
    """Open every connection with an authenticated GET (not recorded), twice, as a client
    that has been talking to the server would have: a freshly started server's first
    requests also open its threads' database connections, and a new PostgreSQL backend
    loads its catalogue caches on its first queries (measured: the first 0.3 s of a run at
    200/s had a p50 of 150–190 ms)."""
    for _ in range(2):
        responses = await asyncio.gather(*(session.get(me_url) for _ in range(connections)))
        for response in responses:
            response.raise_for_status()
            await response.read()
            response.release()


async def run(args: argparse.Namespace) -> list[list[object]]:
    url = args.url.rstrip("/") + "/api/v1/generations"
    headers = {"Authorization": f"Bearer {args.key}"}
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=60)
    records: list[list[object]] = []
    async with aiohttp.ClientSession(
        headers=headers, connector=connector, timeout=timeout
    ) as session:
        await _warm_up(session, args.url.rstrip("/") + "/api/v1/me", args.connections)
        if args.rate > 0:
            start = time.perf_counter()
            tasks = []
            for n in range(args.jobs):
                delay = start + n / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(_submit(session, url, n, args.images, records)))
            await asyncio.gather(*tasks)
        else:
            todo = iter(range(args.jobs))

            async def lane() -> None:
                for n in todo:
                    await _submit(session, url, n, args.images, records)

            await asyncio.gather(*(lane() for _ in range(args.connections)))
    return records


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.load")
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--images", type=int, default=1)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    started = time.time()
    records = asyncio.run(run(args))
    args.out.write_text(
        json.dumps({"started": started, "finished": time.time(), "requests": records})
    )


if __name__ == "__main__":
    main()
