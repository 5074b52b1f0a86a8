"""Clients that submit jobs and retry as the API guide tells them to: the same
Idempotency-Key on every attempt, after a connection error, a 5xx, a 429 or a 409
`idempotency_request_in_progress`, until they get an answer that settles it (202/200 with a
job, or a 4xx that retrying cannot change) or give up after `give_up_s`."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Submit:
    n: int
    tenant: str
    key: str
    outcome: str = ""  # accepted | refused_<code> | gave_up
    job_id: str = ""
    attempts: int = 0
    http_5xx: int = 0
    connection_errors: int = 0
    statuses: list[int] = field(default_factory=list)


def prompt_for(scenario: str, n: int) -> str:
    # The [[marker]] is ignored by the emulator's drawing and finds the job again.
    return f"product mockup of chaos item {n % 16} [[chaos:{scenario}:{n}]]"


async def _submit_one(
    session: aiohttp.ClientSession, url: str, scenario: str, sub: Submit, api_key: str,
    give_up_s: float,
) -> None:  # fmt: skip
    body = {"prompt": prompt_for(scenario, sub.n), "kind": "mockup"}
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": sub.key}
    deadline = time.monotonic() + give_up_s
    delay = 0.2
    while time.monotonic() < deadline:
        sub.attempts += 1
        retry_after = delay
        try:
            async with session.post(url, json=body, headers=headers) as resp:
                sub.statuses.append(resp.status)
                payload = await resp.json(content_type=None)
                if resp.status in (200, 201, 202):
                    sub.outcome, sub.job_id = "accepted", str(payload["id"])
                    return
                code = (
                    (payload or {}).get("error", {}).get("code", "")
                    if isinstance(payload, dict)
                    else ""
                )
                if resp.status >= 500:
                    sub.http_5xx += 1
                elif resp.status == 429:
                    retry_after = float(resp.headers.get("Retry-After", "1"))
                elif not (resp.status == 409 and code == "idempotency_request_in_progress"):
                    sub.outcome = f"refused_{code or resp.status}"
                    return
        except (TimeoutError, aiohttp.ClientError, ValueError):
            sub.connection_errors += 1
        await asyncio.sleep(retry_after)
        delay = min(delay * 2, 2.0)
    sub.outcome = "gave_up"


async def _run(
    url: str, scenario: str, plan: list[tuple[Submit, str]], rate: float, give_up_s: float
) -> None:
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start = time.monotonic()
        tasks = []
        for i, (sub, api_key) in enumerate(plan):
            wait = start + i / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(
                asyncio.create_task(_submit_one(session, url, scenario, sub, api_key, give_up_s))
            )
        await asyncio.gather(*tasks)


class Load:
    """An open-loop load at `rate` submits/s, in a thread of the driver."""

    def __init__(
        self, *, web_url: str, scenario: str, keys: dict[str, str], jobs: int, rate: float,
        capped_every: int = 20, give_up_s: float = 180.0,
    ) -> None:  # fmt: skip
        self.url = web_url.rstrip("/") + "/api/v1/generations"
        self.scenario = scenario
        self.submits: list[Submit] = []
        self._plan: list[tuple[Submit, str]] = []
        for n in range(jobs):
            # Every capped_every-th job comes from the tenant whose spend cap the run reaches.
            tenant = "capped" if capped_every and n % capped_every == 0 else "main"
            sub = Submit(n=n, tenant=tenant, key=f"chaos-{scenario}-{n}")
            self.submits.append(sub)
            self._plan.append((sub, keys[tenant]))
        self.rate = rate
        self.give_up_s = give_up_s
        self.started = self.finished = 0.0
        self._thread = threading.Thread(target=self._main, daemon=True, name=f"load-{scenario}")

    def start(self) -> Load:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        asyncio.run(_run(self.url, self.scenario, self._plan, self.rate, self.give_up_s))
        self.finished = time.monotonic()
