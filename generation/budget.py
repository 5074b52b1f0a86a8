"""One provider budget shared by every worker process on every host.

Google's limits are per project and per model: requests per minute, (in practice) calls
in flight, and for image models a spend cap over a rolling 10-minute window. Each call
first takes a slot here: a `BudgetLease` row, taken while the model's `ProviderModel` row
is locked, so that all workers together stay inside

- `GEMINI_MAX_IN_FLIGHT` calls at once (leases neither released nor expired),
- `GEMINI_RPM` calls started in the last 60 s,
- `GEMINI_SPEND_PER_10_MIN_USD` of list price started in the last 600 s,

each per model; 0 turns a limit off. A lease expires after `BUNCH_BUDGET_LEASE_S` (longer
than a call may take), so a killed worker's slots come back by themselves.

Reserved capacity: a tenant whose plan has `reserved_concurrency` R and who has work
(queued or running jobs) may always hold R slots; no other call may take a slot that one
of those tenants could still claim. While the tenant has no work its R slots are anyone's;
when its work arrives, the next slots that free up are its (calls are never cancelled).

A 429 puts the model into a cooldown (`ProviderModel.cooldown_until`, from RetryInfo or
Retry-After) that every worker honours: no slot is given out until it ends.

Two backends, one interface (`budget_take`, `budget_release`, `budget_in_use`,
`cooldown_start`, `cooldown_until`, `calls_by_holder`; lease ids are ints in both):
the database (above) or, with `BUNCH_BUDGET_BACKEND=redis` (the default when `REDIS_URL`
is set), Redis (generation/budget_redis.py: the same rules, each take one Lua script).
Which tenants hold a reservation and have work is read from the database in both.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Sum
from django.utils import timezone

from generation import budget_redis
from generation.dbthreads import orm
from generation.models import BudgetLease, Job, ProviderModel
from tenants.models import Tenant

# With no RetryInfo and no Retry-After, a 429 cools the model down this long.
DEFAULT_COOLDOWN_S = 1.0
# A waiting call asks again this often for slots another process may have freed.
POLL_S = 0.05
# How stale a loop's view of the cooldown may be when no budget limits are set.
COOLDOWN_REFRESH_S = 0.25
WINDOW_RPM = dt.timedelta(seconds=60)
WINDOW_SPEND = dt.timedelta(minutes=10)
NANOS = Decimal(1_000_000_000)


@dataclass(frozen=True)
class Limits:
    in_flight: int
    rpm: int
    spend_nanos: int  # per 10 minutes
    lease_s: float

    @property
    def enabled(self) -> bool:
        return bool(self.in_flight or self.rpm or self.spend_nanos)


def limits() -> Limits:
    return Limits(
        in_flight=int(settings.GEMINI_MAX_IN_FLIGHT),
        rpm=int(settings.GEMINI_RPM),
        spend_nanos=int(Decimal(str(settings.GEMINI_SPEND_PER_10_MIN_USD)) * NANOS),
        lease_s=float(settings.BUNCH_BUDGET_LEASE_S),
    )


@dataclass(frozen=True)
class Ask:
    tenant_id: int
    cost_nanos: int = 0


@dataclass(frozen=True)
class Taken:
    """One answer to `budget_take`: a lease id or None per ask, and when to ask again."""

    leases: list[int | None]
    retry_in_s: float


def _no_disk_wait() -> None:
    """This transaction's commit need not wait for the disk (PostgreSQL): a lease or a
    release lost in a database crash only miscounts the budget until the lease expires,
    while waiting for the disk on every call held the model's row for milliseconds."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


def _model_row(model: str) -> ProviderModel:
    _no_disk_wait()
    ProviderModel.objects.get_or_create(model=model)
    return ProviderModel.objects.select_for_update().get(model=model)


def reserved_tenants_with_work() -> dict[int, int]:
    """Tenant id → reserved calls, for tenants on a reserving plan that have work."""
    work = Job.objects.filter(
        tenant=OuterRef("pk"), status__in=[Job.Status.QUEUED, Job.Status.RUNNING]
    )
    rows = (
        Tenant.objects.filter(plan__reserved_concurrency__gt=0)
        .filter(Exists(work))
        .values_list("pk", "plan__reserved_concurrency")
    )
    return dict(rows)


def _in_flight(model: str, now: dt.datetime) -> tuple[int, Counter[int]]:
    """Calls in flight for the model, and each tenant's calls in flight on its reservation."""
    rows = (
        BudgetLease.objects.filter(model=model, released_at__isnull=True, expires_at__gt=now)
        .order_by()
        .values_list("tenant_id", "reserved")
        .annotate(n=Count("pk"))
    )
    total = 0
    reserved: Counter[int] = Counter()
    for tenant_id, on_reservation, n in rows:
        total += n
        if on_reservation and tenant_id is not None:
            reserved[tenant_id] += n
    return total, reserved


def _window_room(model: str, lim: Limits, now: dt.datetime) -> tuple[int | None, int | None, float]:
    """Calls the RPM window allows, nanos the spend window allows (None: no limit), and the
    seconds until the RPM window next frees a call."""
    calls = spend = None
    retry_in = POLL_S
    recent = BudgetLease.objects.filter(model=model)
    if lim.rpm:
        started = list(
            recent.filter(started_at__gt=now - WINDOW_RPM)
            .order_by("started_at")
            .values_list("started_at", flat=True)[: lim.rpm]
        )
        calls = lim.rpm - len(started)
        if calls <= 0:
            retry_in = max(POLL_S, (started[0] + WINDOW_RPM - now).total_seconds())
    if lim.spend_nanos:
        window = recent.filter(started_at__gt=now - WINDOW_SPEND)
        spent = window.aggregate(s=Sum("cost_nanos"))["s"] or 0
        spend = lim.spend_nanos - spent
    return calls, spend, retry_in


def backend() -> str:
    """ "database" or "redis": where the budget lives (settings.BUNCH_BUDGET_BACKEND)."""
    return str(settings.BUNCH_BUDGET_BACKEND)


def budget_take(
    *, model: str, holder: str, asks: list[Ask], now: dt.datetime | None = None
) -> Taken:
    """Leases for as many of `asks` as the budget allows; asks on a reservation go first."""
    if backend() == "redis":
        now = now or timezone.now()
        lim = limits()
        leases, retry_in = budget_redis.take(
            model=model,
            holder=holder,
            asks=[(ask.tenant_id, ask.cost_nanos) for ask in asks],
            reserving=reserved_tenants_with_work(),
            in_flight=lim.in_flight,
            rpm=lim.rpm,
            spend_nanos=lim.spend_nanos,
            lease_s=lim.lease_s,
            now=now,
        )
        return Taken(leases, retry_in)
    return _db_take(model=model, holder=holder, asks=asks, now=now)


@transaction.atomic
def _db_take(*, model: str, holder: str, asks: list[Ask], now: dt.datetime | None) -> Taken:
    lim = limits()
    row = _model_row(model)
    # A lease starts when it is granted, under the model's lock: stamped before the lock, a
    # take that waited for it would date its lease before releases it has already seen.
    now = now or timezone.now()
    if row.cooldown_until and row.cooldown_until > now:
        return Taken([None] * len(asks), (row.cooldown_until - now).total_seconds())
    total, on_reservation = _in_flight(model, now)
    calls, spend, retry_in = _window_room(model, lim, now)
    reserving = reserved_tenants_with_work()
    # Slots that reserving tenants may still claim: nobody else takes them.
    protected = sum(max(0, r - on_reservation[t]) for t, r in reserving.items())

    def on_own_reservation(ask: Ask) -> bool:
        return on_reservation[ask.tenant_id] < reserving.get(ask.tenant_id, 0)

    order = sorted(range(len(asks)), key=lambda i: not on_own_reservation(asks[i]))
    leases: list[BudgetLease | None] = [None] * len(asks)
    for i in order:
        ask = asks[i]
        if lim.in_flight and total >= lim.in_flight:
            break
        if calls is not None and calls <= 0:
            break
        if spend is not None and ask.cost_nanos > spend:
            continue
        reserved = on_own_reservation(ask)
        if not reserved and lim.in_flight and total + protected >= lim.in_flight:
            continue
        if reserved:
            on_reservation[ask.tenant_id] += 1
            protected -= 1
        total += 1
        if calls is not None:
            calls -= 1
        if spend is not None:
            spend -= ask.cost_nanos
        leases[i] = BudgetLease(
            model=model,
            holder=holder,
            tenant_id=ask.tenant_id,
            reserved=reserved,
            cost_nanos=ask.cost_nanos,
            started_at=now,
            expires_at=now + dt.timedelta(seconds=lim.lease_s),
        )
    BudgetLease.objects.bulk_create([lease for lease in leases if lease is not None])
    _prune(now)
    return Taken([lease.pk if lease else None for lease in leases], retry_in)


_last_prune = 0.0


def _prune(now: dt.datetime) -> None:
    """Drop leases older than every window, once a minute per process."""
    global _last_prune
    if time.monotonic() - _last_prune < 60:
        return
    _last_prune = time.monotonic()
    BudgetLease.objects.filter(started_at__lt=now - WINDOW_SPEND - dt.timedelta(minutes=1)).delete()


def budget_release(*, lease_ids: list[int], now: dt.datetime | None = None) -> None:
    """Give slots back (a lease already expired or released is left alone)."""
    if backend() == "redis":
        budget_redis.release(lease_ids=lease_ids)
    else:
        _db_release(lease_ids=lease_ids, now=now)


@transaction.atomic
def _db_release(*, lease_ids: list[int], now: dt.datetime | None) -> None:
    if lease_ids:
        _no_disk_wait()
        BudgetLease.objects.filter(pk__in=lease_ids, released_at__isnull=True).update(
            released_at=now or timezone.now()
        )


def cooldown_start(
    *, model: str, seconds: float | None, now: dt.datetime | None = None
) -> dt.datetime:
    """The model cools down for `seconds` (or the default), never shortening a cooldown;
    returns the end of the cooldown now in force."""
    now = now or timezone.now()
    until = now + dt.timedelta(seconds=seconds if seconds is not None else DEFAULT_COOLDOWN_S)
    if backend() == "redis":
        return budget_redis.cooldown_start(model=model, until=until, now=now)
    return _db_cooldown_start(model=model, until=until)


@transaction.atomic
def _db_cooldown_start(*, model: str, until: dt.datetime) -> dt.datetime:
    row = _model_row(model)
    if row.cooldown_until is None or row.cooldown_until < until:
        row.cooldown_until = until
        row.save(update_fields=["cooldown_until"])
    return row.cooldown_until


def cooldown_until(model: str) -> dt.datetime | None:
    """The end of the model's latest cooldown (maybe past), None if it never had one."""
    if backend() == "redis":
        return budget_redis.cooldown_until(model)
    return (
        ProviderModel.objects.filter(model=model).values_list("cooldown_until", flat=True).first()
    )


def budget_in_use(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Calls in flight per model (for operators)."""
    now = now or timezone.now()
    if backend() == "redis":
        return budget_redis.in_use(now=now)
    rows = (
        BudgetLease.objects.filter(released_at__isnull=True, expires_at__gt=now)
        .order_by()
        .values_list("model")
        .annotate(n=Count("pk"))
    )
    return dict(rows)  # type: ignore[arg-type]


def calls_last_minute(model: str, *, now: dt.datetime | None = None) -> int:
    """Calls of the model started in the last 60 s (for operators)."""
    since = (now or timezone.now()) - WINDOW_RPM
    if backend() == "redis":
        return budget_redis.calls_started_since(model=model, since=since)
    return BudgetLease.objects.filter(model=model, started_at__gt=since).count()


def leases_in_flight(
    *, model: str, now: dt.datetime | None = None
) -> list[tuple[int, int | None, bool]]:
    """(lease id, tenant id, taken from its reservation) of each call in flight."""
    now = now or timezone.now()
    if backend() == "redis":
        return budget_redis.leases_in_flight(model=model, now=now)
    rows = BudgetLease.objects.filter(
        model=model, released_at__isnull=True, expires_at__gt=now
    ).values_list("pk", "tenant_id", "reserved")
    return [(pk, tenant_id, reserved) for pk, tenant_id, reserved in rows]


def calls_by_holder(model: str) -> dict[str, int]:
    """Calls started per worker process (holder) for the model, as far back as the budget
    keeps them (the database: the spend window and a minute; Redis: a day)."""
    if backend() == "redis":
        return budget_redis.calls_by_holder(model)
    rows = (
        BudgetLease.objects.filter(model=model)
        .order_by()
        .values_list("holder")
        .annotate(n=Count("pk"))
    )
    return dict(rows)  # type: ignore[arg-type]


def holder_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# The runner's side ------------------------------------------------------------------------


@dataclass
class _Waiter:
    model: str
    ask: Ask
    future: asyncio.Future[int | None]


@dataclass
class ProviderGate:
    """A runner loop's way into the shared budget: its calls wait here for a slot.

    One coroutine asks the database for every waiting call of the loop at once, again as
    soon as one of the loop's own calls ends, and every `POLL_S` for slots freed elsewhere.
    """

    holder: str = field(default_factory=holder_name)
    limits: Limits = field(default_factory=limits)
    _waiting: list[_Waiter] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _pump: asyncio.Task[None] | None = None
    _cooldown: dict[str, tuple[float, float]] = field(default_factory=dict)  # until, read at

    @contextlib.asynccontextmanager
    async def slot(self, *, model: str, tenant_id: int, cost_nanos: int = 0) -> AsyncIterator[None]:
        lease = await self._take(model, Ask(tenant_id, cost_nanos))
        try:
            yield
        finally:
            if lease is not None:
                await orm(budget_release)(lease_ids=[lease])
                self._wake.set()

    @property
    def waiting(self) -> int:
        """Calls of this loop waiting for a slot."""
        return len(self._waiting)

    async def rate_limited(self, *, model: str, retry_after: float | None) -> None:
        """A 429: every worker stops calling the model until the time the provider gave."""
        until = await orm(cooldown_start)(model=model, seconds=retry_after)
        self._cooldown[model] = (until.timestamp(), time.monotonic())

    async def _take(self, model: str, ask: Ask) -> int | None:
        if not self.limits.enabled:
            await self._sit_out_cooldown(model)
            return None
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiter(model, ask, future))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run_pump())
        self._wake.set()
        try:
            return await future
        except asyncio.CancelledError:
            lease = future.result() if future.done() and not future.cancelled() else None
            if lease is not None:
                await orm(budget_release)(lease_ids=[lease])
            raise

    async def _sit_out_cooldown(self, model: str) -> None:
        until, read_at = self._cooldown.get(model, (0.0, float("-inf")))
        if time.monotonic() - read_at > COOLDOWN_REFRESH_S:
            shared = await orm(cooldown_until)(model)
            until = max(until, shared.timestamp() if shared else 0.0)
            self._cooldown[model] = (until, time.monotonic())
        while (left := until - time.time()) > 0:
            await asyncio.sleep(left)

    async def _run_pump(self) -> None:
        while self._waiting:
            self._wake.clear()
            hints: list[float] = []
            for model in {w.model for w in self._waiting}:
                waiters = [w for w in self._waiting if w.model == model and not w.future.done()]
                if not waiters:
                    continue
                taken = await orm(budget_take)(
                    model=model, holder=self.holder, asks=[w.ask for w in waiters]
                )
                unused = []
                for waiter, lease in zip(waiters, taken.leases, strict=True):
                    if lease is None:
                        continue
                    if waiter.future.done():  # its call was cancelled meanwhile
                        unused.append(lease)
                    else:
                        waiter.future.set_result(lease)
                if unused:
                    await orm(budget_release)(lease_ids=unused)
                hints.append(taken.retry_in_s)
            self._waiting = [w for w in self._waiting if not w.future.done()]
            if self._waiting:
                retry_in = max(POLL_S, min(hints, default=POLL_S))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=retry_in)
