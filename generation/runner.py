"""Running jobs: claim rows, call the model concurrently, store each image with its usage.

One django-q2 task runs an event loop that keeps up to `BUNCH_JOBS_PER_TASK` jobs in
flight, claiming more queued jobs as slots free up, so a worker process is limited by the
provider's latency and concurrency, not by one call at a time. Database work runs on the
loop's database threads (`generation.dbthreads`), a few connections whose round trips
overlap; image hashing and file writes run on a thread pool.

Exactly once: images are unique per (job, index) and one-to-one with their usage event,
both written in one transaction, so a task delivered twice — or a job reclaimed after its
worker died — never stores or bills an image twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from config.memory import release_free_memory
from core import logcontext, metrics
from core.catalog import MODELS, Mode
from core.money import to_nanos
from generation import dbthreads, ingest, live, queue, shutdown
from generation.budget import ProviderGate
from generation.dbthreads import DatabaseThreads, orm
from generation.fallback import fallback_maybe
from generation.gateway import get_provider
from generation.models import Image, Job
from generation.providers.gemini import AsyncGeminiSession
from generation.providers.retry import backoff_delay
from generation.providers.types import (
    ImageRequest,
    ProviderError,
    RetryableProviderError,
)
from generation.scheduler import claim_jobs
from generation.services import job_finish

logger = logging.getLogger(__name__)


def _setting(name: str) -> float:
    return float(getattr(settings, name))


# Claiming -------------------------------------------------------------------------------


def requeue_expired(*, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """Jobs whose worker stopped renewing the lease go back to the queue; returns their ids."""
    now = now or timezone.now()
    expired = list(
        Job.objects.filter(status=Job.Status.RUNNING, lease_expires_at__lt=now).values_list(
            "pk", flat=True
        )[:500]
    )
    # The status condition again: a job that finished meanwhile is left alone.
    Job.objects.filter(pk__in=expired, status=Job.Status.RUNNING, lease_expires_at__lt=now).update(
        status=Job.Status.QUEUED, lease_expires_at=None
    )
    return expired


def renew_leases(job_ids: list[uuid.UUID]) -> None:
    if job_ids:
        until = timezone.now() + dt.timedelta(seconds=_setting("BUNCH_JOB_LEASE_S"))
        Job.objects.filter(pk__in=job_ids, status=Job.Status.RUNNING).update(lease_expires_at=until)


# Preparing and storing ------------------------------------------------------------------


@dataclass
class JobPlan:
    job: Job
    request: ImageRequest
    pending: list[int]
    attempts: int = 0
    error: ProviderError | None = None
    canceled: bool = False
    # A 429: the job goes back to the head of its tenant's queue (see `_defer`).
    deferred: bool = False
    # The worker is stopping: images not started are left to the next worker (`hand_back`).
    handed_back: bool = False
    # The job succeeded in its last image's store transaction (`ingest.image_store`).
    finished: bool = False
    done: set[int] = field(default_factory=set)
    loaded_at: float = field(default_factory=time.monotonic)

    @property
    def model(self) -> str:
        return MODELS[self.request.tier].model_id

    @property
    def call_nanos(self) -> int:
        """The list price of one call, for the budget's spend window."""
        return to_nanos(MODELS[self.request.tier].image_price(self.request.image_size))


def _plan(job_id: uuid.UUID) -> JobPlan | None:
    job = (
        Job.objects.select_related("tenant__plan")
        .annotate(any_stored=Exists(Image.objects.filter(job=OuterRef("pk"))))
        .get(pk=job_id)
    )
    if job.status != Job.Status.RUNNING:
        return None
    # Another model if the job's is throttled and its fallback policy allows it.
    fallback_maybe(job=job)  # (changes `job` in place when it moves)
    metrics.jobs_started.labels(job.tier, job.mode, job.tenant.plan.slug).inc()
    # A job reclaimed after its worker died may have some images already.
    stored = ingest.stored_indexes(job) if job.any_stored else set()
    return JobPlan(
        job=job,
        request=ingest.job_request(job),
        pending=[i for i in range(job.count) if i not in stored],
        done=stored,
    )


def _cancel_requested(job_id: uuid.UUID) -> bool:
    return Job.objects.filter(pk=job_id, cancel_requested=True).exists()


# Loading the plan read cancel_requested: the job's first call, started this soon after,
# needs no second read (a single-image job then has no cancel query at all).
CANCEL_FRESH_S = 0.5


async def _cancel_requested_lately(plan: JobPlan) -> bool:
    if plan.job.cancel_requested:
        return True
    if plan.attempts == 0 and time.monotonic() - plan.loaded_at < CANCEL_FRESH_S:
        return False
    return await orm(_cancel_requested)(plan.job.pk)


def _defer(*, job_id: uuid.UUID, attempts: int) -> None:
    """Back to the queue after a 429: at the head of its tenant's queue (its priority and
    age are unchanged), its images so far kept; failed once deferred too often."""
    limit = int(_setting("BUNCH_PROVIDER_MAX_DEFERRALS"))
    job = Job.objects.select_related("tenant__plan").filter(pk=job_id).first()
    if job is not None and job.status == Job.Status.RUNNING:
        # Another model now if the start it would get back in the queue passes its deadline.
        fallback_maybe(job=job, on_deferral=True)
    requeued = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING, deferrals__lt=limit).update(
        status=Job.Status.QUEUED,
        lease_expires_at=None,
        started_at=None,
        attempts=F("attempts") + attempts,
        deferrals=F("deferrals") + 1,
    )
    if not requeued:
        job_finish(
            job_id=job_id,
            attempts=attempts,
            error=RetryableProviderError(
                "rate_limited",
                "The model provider kept rate limiting requests; the job was not retried again.",
            ),
            wake=False,
        )


def hand_back(job_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """A stopping worker's unfinished jobs go back to the head of their tenant's queue (the
    priority and age are unchanged), their images so far kept, and neither attempts nor
    deferrals spent: the stop was not the job's doing. Rings for them; returns their ids."""
    running = list(
        Job.objects.filter(pk__in=job_ids, status=Job.Status.RUNNING).values_list("pk", flat=True)
    )
    # The status condition again: a job finished meanwhile (by a store or a cancel) stays.
    Job.objects.filter(pk__in=running, status=Job.Status.RUNNING).update(
        status=Job.Status.QUEUED, lease_expires_at=None, started_at=None
    )
    queue.enqueue_jobs(running)
    if running:
        logger.info("Handed %d jobs back to the queue on stopping", len(running))
    return running


def _claim(*, limit: int, backlog: int) -> list[uuid.UUID]:
    """Claim, then tell the waiting web processes, once for the whole claim, that these
    jobs run (`live.jobs_claimed`: after the claim's commit)."""
    ids = claim_jobs(limit=limit, backlog=backlog)
    live.jobs_claimed(ids)
    return ids


def _ring_for_queued() -> None:
    next_ids = list(
        Job.objects.filter(status=Job.Status.QUEUED, mode=Mode.STANDARD)
        .order_by("created_at")
        .values_list("pk", flat=True)[:1]
    )
    queue.enqueue_jobs(next_ids)


# Running ----------------------------------------------------------------------------------


# What a call is assumed to take until the loop has timed some (the model's ~4 s).
ASSUMED_CALL_S = 4.0


class CallPace:
    """Call starts at most at twice the rate at which the loop's calls can end.

    A loop that finds many free calls at once (a fresh loop, a full queue) would start them
    all in the same moment, and, a model latency later, the answers would come back in the
    same second: every worker process then parses 1.9 MB responses and stores images at
    once, on the cores the web shares (measured: web p50 130–180 ms for the two seconds of
    a run's first cohort, 5–20 ms otherwise). Paced, the first wave spreads over about half
    a model latency; in steady state calls end at about size ÷ latency per second, half the
    pace, so the pace only smooths bursts. A token bucket holding `burst` starts.
    """

    def __init__(self, size: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.burst = max(1, size // 8)
        self.call_s = ASSUMED_CALL_S  # moving average of answered calls' duration
        self._clock = clock
        self._tokens = float(self.burst)
        self._updated = clock()

    @property
    def per_s(self) -> float:
        return 2 * self.size / max(self.call_s, 0.01)

    async def start(self) -> None:
        """Wait until a call may start."""
        while True:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.per_s)
            self._updated = now
            if self._tokens >= 1 - 1e-9:  # (not stuck on a rounding error)
                self._tokens = max(0.0, self._tokens - 1)
                return
            await asyncio.sleep((1 - self._tokens) / self.per_s)

    def answered(self, seconds: float) -> None:
        self.call_s += (seconds - self.call_s) / 8


class CallSlots:
    """The task's provider calls in flight, and how much work waits for one.

    The loop keeps the backlog (images waiting for a slot, jobs claimed but not yet
    planned) small: jobs claimed far ahead of free calls would sit here while another
    worker has calls to spare.
    """

    def __init__(self, size: int) -> None:
        self.gate = ProviderGate()
        # No loop needs more calls than the whole provider budget: jobs claimed beyond it
        # would only wait at the gate, holding their tenant's turn and another's.
        if self.gate.limits.in_flight:
            size = min(size, self.gate.limits.in_flight)
        self.size = size
        self.waiting = 0
        self.arriving = 0
        self.in_use = 0
        self.stopping = False  # the worker is draining: no new calls start
        self.pace = CallPace(size)
        self._semaphore = asyncio.Semaphore(size)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self._semaphore.acquire()
            try:
                await self.pace.start()
            except BaseException:
                self._semaphore.release()
                raise
        finally:
            self.waiting -= 1
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._semaphore.release()

    def free(self) -> int:
        """Calls that could start now and that no image or arriving job has a claim on
        (none while calls wait for the shared budget: other workers hold it)."""
        if self.gate.waiting:
            return 0
        return self.size - self.in_use - self.waiting - self.arriving


async def _generate_one(
    plan: JobPlan, index: int, session: AsyncGeminiSession, slots: CallSlots
) -> None:
    """One image: call (with retries), then store. A slot is held from call to store."""
    max_attempts = int(_setting("BUNCH_PROVIDER_MAX_ATTEMPTS"))
    attempt = 0
    while True:
        async with slots.hold():
            # Checked once a slot is ours: a cancel stops every image not yet started.
            if plan.error is not None or plan.canceled or plan.deferred:
                return
            if slots.stopping:
                plan.handed_back = True
                return
            if await _cancel_requested_lately(plan):
                plan.canceled = True
                return
            try:
                # A slot of the provider budget that every worker shares.
                async with slots.gate.slot(
                    model=plan.model, tenant_id=plan.job.tenant_id, cost_nanos=plan.call_nanos
                ):
                    if plan.deferred:  # another image of the job met a 429 meanwhile
                        return
                    if slots.stopping:  # the slot came after the stop began
                        plan.handed_back = True
                        return
                    attempt += 1
                    plan.attempts += 1
                    called = time.monotonic()
                    result = await session.generate(plan.request)
            except RetryableProviderError as error:
                if error.code == "rate_limited":
                    # The provider's limit, not this job's fault: no attempt spent, every
                    # worker waits out the cooldown, and the job goes back to its queue.
                    attempt -= 1
                    plan.attempts -= 1
                    plan.deferred = True
                    await slots.gate.rate_limited(model=plan.model, retry_after=error.retry_after)
                    return
                retry_error: RetryableProviderError | None = error
            except ProviderError as error:
                plan.error = error
                return
            else:
                retry_error = None
                slots.pace.answered(time.monotonic() - called)
                image = await asyncio.to_thread(ingest.image_from_result, plan.job, index, result)
                # Every other image stored: this store finishes the job in its transaction.
                last = len(plan.done | {index}) >= plan.job.count
                stored = await orm(ingest.image_store)(
                    job=plan.job,
                    image=image,
                    result=result,
                    finish_attempts=plan.attempts if last else None,
                )
                if stored:
                    plan.done.add(index)
                    plan.finished = last
                return
        # Back off outside the slot, so waiting never holds up other images.
        if attempt >= max_attempts:
            plan.error = retry_error
            return
        assert retry_error is not None
        await asyncio.sleep(
            backoff_delay(
                attempt,
                retry_error,
                base_delay=_setting("BUNCH_PROVIDER_BACKOFF_S"),
                max_delay=_setting("BUNCH_PROVIDER_BACKOFF_MAX_S"),
                rand=random.random,
            )
        )


async def _run_job(job_id: uuid.UUID, session: AsyncGeminiSession, calls: CallSlots) -> None:
    logcontext.bind(job_id=job_id)  # this task's own context: its log lines name the job
    try:
        plan = await orm(_plan)(job_id)
    finally:
        calls.arriving -= 1
    if plan is None:
        return
    try:
        await asyncio.gather(*(_generate_one(plan, i, session, calls) for i in plan.pending))
    except Exception:
        logger.exception("Job %s crashed while generating", job_id)
        raise
    if plan.finished:
        return
    if plan.deferred and plan.error is None and not plan.canceled:
        await orm(_defer)(job_id=job_id, attempts=plan.attempts)
        return
    if plan.handed_back and plan.error is None and not plan.canceled:
        await orm(hand_back)([job_id])
        return
    await orm(job_finish)(job_id=job_id, attempts=plan.attempts, error=plan.error, wake=False)


# A job submitted while this task has room waits for the loop's next look at the queue:
# at most this long (measured: 1 s here put 0.5–0.9 s on the overhead's p99).
CLAIM_EVERY_S = 0.2
# How often a busy loop hands freed C-heap pages back (config/memory.py); a few ms each.
RELEASE_MEMORY_EVERY_S = 30.0


async def _run(first: uuid.UUID | None, rung_at: float | None = None) -> int:
    """`_loop` with database threads of its own, closed (with their connections) after it;
    with one (SQLite), on the task's own thread."""
    size = dbthreads.pool_size()
    if size <= 1:
        return await _loop(first, rung_at)
    threads = DatabaseThreads(size)
    dbthreads.current.set(threads)  # the loop's tasks inherit it
    try:
        return await _loop(first, rung_at)
    finally:
        await asyncio.to_thread(threads.close)


async def _loop(first: uuid.UUID | None, rung_at: float | None = None) -> int:
    """Keep jobs in flight until the queue is empty or the task's time budget is spent.

    A loop rung at `rung_at` (epoch s) for a new job looks at the queue until at least
    `BUNCH_DOORBELL_LINGER_S` after the ring, even when idle: web processes skip ringing
    for jobs committed shortly after a ring (`queue.ring_for_new_job`), and this loop is
    the one that finds them. A late-started loop looks once and stops. The job it was rung
    for (`first`) gets no precedence: the scheduler's fair order decides what runs next.
    A loop started while its host is stopping claims nothing and passes its doorbell on.
    """
    if shutdown.draining():
        # A doorbell this stopping host's broker consumer took in its last moment: ring it
        # again for another worker, or the job would wait for the sweep.
        if first is not None:
            await orm(queue.enqueue_job)(first)
        return 0
    linger_until = rung_at + _setting("BUNCH_DOORBELL_LINGER_S") if rung_at else 0.0
    slots = int(_setting("BUNCH_JOBS_PER_TASK"))
    budget = _setting("BUNCH_TASK_BUDGET_S")
    lease_every = _setting("BUNCH_JOB_LEASE_S") / 3
    calls = CallSlots(int(_setting("BUNCH_CALLS_PER_TASK")))
    backlog_limit = max(2, calls.size // 4)
    started = time.monotonic()
    last_renewal = last_release = started
    running: dict[asyncio.Task[None], uuid.UUID] = {}
    handled = 0
    stop_at: float | None = None  # epoch s: the worker is stopping (generation/shutdown.py)
    provider = get_provider()
    async with provider.async_session() as session:
        while True:
            if stop_at is None and shutdown.draining():
                stop_at = shutdown.deadline()
                calls.stopping = True  # no new calls; calls in flight run on until stop_at
            # Jobs for the free calls, and a small backlog that is ready when a call ends.
            room = max(0, min(slots - len(running), calls.free() + backlog_limit))
            free = min(room, max(0, calls.free()))
            if (
                stop_at is None
                and room > 0
                and time.monotonic() - started < budget
                and (room >= max(1, backlog_limit // 2) or not running)
            ):
                ids = await orm(_claim)(limit=free, backlog=room - free)
                calls.arriving += len(ids)
                for job_id in ids:
                    running[asyncio.create_task(_run_job(job_id, session, calls))] = job_id
                handled += len(ids)
            if not running:
                if stop_at is not None:
                    return handled
                if time.monotonic() - started >= budget:
                    # Stopped by the budget, not for want of work: hand over what is left.
                    await orm(_ring_for_queued)()
                    return handled
                if time.time() < linger_until:
                    await asyncio.sleep(CLAIM_EVERY_S)
                    continue
                return handled
            if stop_at is not None and time.time() >= stop_at:
                await _cut_off(running)
                return handled
            done, _ = await asyncio.wait(
                running,
                timeout=min(lease_every, CLAIM_EVERY_S),
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                job_id = running.pop(task)
                if task.exception() is not None:
                    logger.error("Job %s failed in the runner: %r", job_id, task.exception())
            if time.monotonic() - last_renewal >= lease_every:
                await orm(renew_leases)(list(running.values()))
                last_renewal = time.monotonic()
            if time.monotonic() - last_release >= RELEASE_MEMORY_EVERY_S:
                release_free_memory()
                last_release = time.monotonic()


async def _cut_off(running: dict[asyncio.Task[None], uuid.UUID]) -> None:
    """The stop's deadline: cancel the calls still in flight (each releases its budget slot
    as it unwinds) and hand their jobs back to the queue."""
    for task in running:
        task.cancel()
    await asyncio.wait(running)
    await orm(hand_back)(list(running.values()))


def run_jobs(first: uuid.UUID | str | None = None, rung_at: float | None = None) -> int:
    """Entry point of the `run_job` task: returns how many jobs this task handled."""
    first_id = uuid.UUID(str(first)) if first else None
    try:
        return int(async_to_sync(_run)(first_id, rung_at))
    finally:
        # The task's event loop, client and buffers are gone: hand their pages back.
        release_free_memory()
