"""The bare-SDK peer: the least any user would do to get the same images from Google.

`python -m bench --peer bare-sdk` runs it after Bunch's run, against the same emulator with
the same settings and the same requests (prompt, ratio, size, model): the official
`google-genai` SDK's async client, N calls in flight, and per image what a user must do to
keep it (decode, sha256, write the file). No database, no queue, no billing. It runs in a
process of its own, so its CPU time is its own (`resource.getrusage`).

    python -m bench.peer --url http://127.0.0.1:8401 --requests requests.json \
        --concurrency 80 --out peer.json --dir images/
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google import genai
from google.genai import errors
from google.genai import types as gt

# A 429 is the emulator saying "beyond the provider's concurrency": wait and call again,
# as any client would; it is counted.
RETRY_429_S = 0.5
MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class PeerRequest:
    model_id: str
    prompt: str
    aspect_ratio: str
    image_size: str

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> PeerRequest:
        return cls(row["model_id"], row["prompt"], row["aspect_ratio"], row["image_size"])


def sustained_per_min(done_at: list[float]) -> float:
    """The middle 80 % of finished images per minute: Bunch's own rule (bench.figures)."""
    stored = sorted(done_at)
    if len(stored) < 2:
        return float("nan")
    lo, hi = stored[len(stored) // 10], stored[(len(stored) * 9) // 10]
    middle = (len(stored) * 9) // 10 - len(stored) // 10
    return middle / (hi - lo) * 60 if hi > lo else float("nan")


async def _run(
    url: str, requests: list[PeerRequest], concurrency: int, out_dir: Path
) -> dict[str, Any]:
    http = gt.HttpOptions(
        api_version="v1beta",
        base_url=url,
        timeout=120_000,
        retry_options=gt.HttpRetryOptions(attempts=1),
    )
    client = genai.Client(api_key="emulator-key", http_options=http)
    in_flight = asyncio.Semaphore(concurrency)
    done_at: list[float] = []
    throttled = failed = stored_bytes = 0
    digests: set[str] = set()

    async def one(n: int, request: PeerRequest) -> None:
        nonlocal throttled, failed, stored_bytes
        config = gt.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=gt.ImageConfig(
                aspect_ratio=request.aspect_ratio or None, image_size=request.image_size or None
            ),
        )
        async with in_flight:
            for _ in range(MAX_ATTEMPTS):
                try:
                    response = await client.aio.models.generate_content(
                        model=request.model_id, contents=request.prompt, config=config
                    )
                    break
                except errors.APIError as exc:
                    if exc.code != 429:
                        failed += 1
                        return
                    throttled += 1
                    await asyncio.sleep(RETRY_429_S)
            else:
                failed += 1
                return
        content = response.candidates[0].content if response.candidates else None
        parts = content.parts if content is not None else None
        for k, part in enumerate(parts or []):
            if part.inline_data is None or not part.inline_data.data or part.thought:
                continue
            data = part.inline_data.data  # the SDK has decoded the base64 already
            digest = hashlib.sha256(data).hexdigest()
            (out_dir / f"{n}-{k}.png").write_bytes(data)
            digests.add(f"{n}-{k}:{digest}")
            stored_bytes += len(data)
            done_at.append(time.time())

    # The peer's CPU from here: the interpreter's start and imports are not per image.
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.time()
    await asyncio.gather(*(one(n, r) for n, r in enumerate(requests)))
    wall = time.time() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    images = len(done_at)
    return {
        "requests": len(requests),
        "images": images,
        "failed": failed,
        "throttled_429": throttled,
        "concurrency": concurrency,
        "wall_s": wall,
        "end_to_end_per_min": images / wall * 60 if wall > 0 else float("nan"),
        "sustained_per_min": sustained_per_min(done_at),
        "cpu_ms_per_image": cpu_s * 1000 / max(images, 1),
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "stored_bytes": stored_bytes,
        "distinct_files": len(digests),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    p.add_argument("--url", required=True, help="the emulator's base URL")
    p.add_argument("--requests", type=Path, required=True, help="JSON list of requests")
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="where to write the figures")
    p.add_argument("--dir", type=Path, required=True, help="where to write the images")
    args = p.parse_args(argv)
    requests = [PeerRequest.from_json(r) for r in json.loads(args.requests.read_text())]
    args.dir.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(_run(args.url, requests, args.concurrency, args.dir))
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
