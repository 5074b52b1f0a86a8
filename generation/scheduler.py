"""Which queued jobs run next: weighted fair shares between tenants.

Start-time fair queueing (Goyal, Vin & Cheng 1996) over a tenant's images:

- Each tenant has a finish tag F in virtual time (`TenantShare.finish`); the system's
  virtual time V is the largest start tag claimed so far (`MAX(TenantShare.start)`).
- A tenant's next job starts at S = max(F, V) and moves F to S + images ÷ plan weight. The
  claim takes the eligible tenant with the smallest S first, one job at a time, so over
  any stretch where two tenants both have work, their images started are in the ratio of
  their weights (± one job). A tenant back from idle starts at V: it has no banked credit.
- Eligible: the tenant has standard-mode work queued and is below `max_concurrent_jobs`.
  Each tenant's scheduler row (`TenantShare`) carries its queued and running jobs, kept
  by triggers on the job table in the transaction that changes a job (submit, claim,
  finish, cancel, requeue, delete: whatever writes the row). The claim reads the rows of
  tenants with work that are below their cap, and then each picked tenant's head jobs
  through the `job_queued_head` index (tenant, priority, created_at): no query reads past
  the heads of any tenant's queue, however long it is, and a saturated tenant costs one
  small row, not an index probe into the job table.
- Within a tenant, jobs go by `Job.priority` (interactive, then API, then batch items),
  then oldest first.
- A tenant below its plan's `reserved_concurrency` running jobs is picked before any
  other; the calls it makes draw on its reservation in the provider budget
  (generation/budget.py).

The cap is exact under any concurrency: a per-tenant advisory lock is held while its
running count is read and its jobs move to running. The fair order is best-effort across workers
that claim at the same moment (each orders its own picks).
"""

from __future__ import annotations

import datetime as dt
import heapq
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from generation.models import Job, Mode, TenantShare
from tenants.models import Plan, Tenant

# A queued job this old was passed over by every loop's look at the queue (they look every
# runner.CLAIM_EVERY_S): no loop has a free call for it, so one may hold it in its backlog.
BACKLOG_AFTER_S = 0.5


@dataclass
class TenantTurn:
    """One eligible tenant during a claim."""

    tenant_id: int
    room: int
    weight: int
    reserved: int
    running: int
    start: float  # S of its next job
    heads: list[tuple[uuid.UUID, int]] | None = None  # (job id, images), fetched lazily
    picks: list[tuple[uuid.UUID, int]] = field(default_factory=list)

    def key(self) -> tuple[int, float, int]:
        below_reservation = self.running + len(self.picks) < self.reserved
        return (0 if below_reservation else 1, self.start, self.tenant_id)


def _names() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "job": quote(Job._meta.db_table),
        "tenant": quote(Tenant._meta.db_table),
        "plan": quote(Plan._meta.db_table),
        "share": quote(TenantShare._meta.db_table),
    }


# The tenants that can run something now and their state, in one go, from their scheduler
# rows alone: `queued` and `running` are kept by triggers on the job table (migration
# generation/0011), so neither a backlog nor a saturated tenant's queue is ever read. Only
# the `limit` first in the fair order come back (keys only grow as a tenant is picked, so
# no other tenant can be picked in this claim): the cost is one small row per tenant
# with work, whatever the number of jobs queued.
_STATE = """
    WITH v(now_v) AS (SELECT COALESCE(MAX(start), 0.0) FROM {share})
    SELECT s.tenant_id, pl.max_concurrent_jobs, pl.weight, pl.reserved_concurrency,
           s.finish, s.running, v.now_v
    FROM {share} s
    JOIN {tenant} tn ON tn.id = s.tenant_id
    JOIN {plan} pl ON pl.id = tn.plan_id
    CROSS JOIN v
    WHERE s.queued > 0 AND s.running < pl.max_concurrent_jobs
    ORDER BY CASE WHEN s.running < pl.reserved_concurrency THEN 0 ELSE 1 END,
             {greatest}(s.finish, v.now_v), s.tenant_id
    LIMIT %s
"""

# PostgreSQL: the same and, in the same statement, each such tenant's head jobs (as many
# as it has room for, up to the limit) through the `job_queued_head` index.
_STATE_AND_HEADS_PG = """
    WITH t AS ({state})
    SELECT t.*, h.id, h.count FROM t
    LEFT JOIN LATERAL (
        SELECT j.id, j.count, j.priority, j.created_at FROM {job} j
        WHERE j.tenant_id = t.tenant_id AND j.status = %s AND j.mode = %s
        ORDER BY j.priority, j.created_at
        LIMIT LEAST(t.max_concurrent_jobs - t.running, %s)
    ) h ON true
    ORDER BY t.tenant_id, h.priority, h.created_at
"""

# Picked jobs to running, the cap checked in the statement that moves them (its snapshot
# is taken once the tenants' claim locks are held, and `running` is the committed count):
# the n-th pick of a tenant is taken only if n ≤ cap − running.
_TAKE = """
    WITH p(job_id, tenant_id, rn) AS (VALUES {values})
    UPDATE {job} SET status = %s, lease_expires_at = %s, started_at = %s
    WHERE status = %s AND id IN (
        SELECT p.job_id FROM p
        JOIN {tenant} tn ON tn.id = p.tenant_id
        JOIN {plan} pl ON pl.id = tn.plan_id
        LEFT JOIN {share} s ON s.tenant_id = p.tenant_id
        WHERE p.rn <= pl.max_concurrent_jobs - COALESCE(s.running, 0)
    )
    RETURNING id, tenant_id, count
"""

# Finish tags move on from where they are now (a concurrent claim may have moved them):
# the inserted row carries V + the tenant's images ÷ weight (finish) and V + all but the
# last job's (start).
_ADVANCE = """
    INSERT INTO {share} (tenant_id, start, finish) VALUES {values}
    ON CONFLICT (tenant_id) DO UPDATE SET
        start = {greatest}({share}.finish, %s) + (excluded.start - %s),
        finish = {greatest}({share}.finish, %s) + (excluded.finish - %s)
"""


def _sql(template: str, **extra: str) -> str:
    return template.format(**_names(), **extra)


def tenants_with_queued_work() -> list[int]:
    """Tenant ids with standard-mode jobs queued."""
    return list(
        TenantShare.objects.filter(queued__gt=0)
        .order_by("tenant_id")
        .values_list("tenant_id", flat=True)
    )


def state_sql() -> str:
    """The claim's look at the tenants (param: how many at most)."""
    return _sql(_STATE, greatest=_greatest())


def _greatest() -> str:
    return "GREATEST" if connection.vendor == "postgresql" else "MAX"


def virtual_time() -> float:
    return float(TenantShare.objects.aggregate(v=Max("start"))["v"] or 0.0)


def state_and_heads_sql() -> str:
    """The claim's look at the tenants and their heads, in one statement (PostgreSQL;
    params: how many tenants at most, the queued status, the standard mode, how many
    heads each at most)."""
    return _sql(_STATE_AND_HEADS_PG, state=state_sql())


def _turn(row: tuple[Any, ...], limit: int, now_v: float) -> TenantTurn:
    pk, cap, weight, reserved, finish, running = row[:6]
    return TenantTurn(
        tenant_id=pk,
        room=min(cap - running, limit),
        weight=max(1, weight),
        reserved=reserved,
        running=running,
        start=max(float(finish), now_v),
    )


def _turns(limit: int) -> tuple[list[TenantTurn], float]:
    """The tenants that may be picked, with their heads (fetched here on PostgreSQL)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            queued, standard = Job.Status.QUEUED.value, Mode.STANDARD.value
            cursor.execute(state_and_heads_sql(), [limit, queued, standard, limit])
        else:
            cursor.execute(state_sql(), [limit])
        rows = cursor.fetchall()
    now_v = float(rows[0][6]) if rows else 0.0
    turns: dict[int, TenantTurn] = {}
    for row in rows:
        turn = turns.get(row[0])
        if turn is None:
            turn = turns[row[0]] = _turn(row, limit, now_v)
            if len(row) > 7:
                turn.heads = []
        if len(row) > 7 and row[7] is not None and turn.heads is not None:
            turn.heads.append((row[7], row[8]))
    return list(turns.values()), now_v


def _heads(turns: list[TenantTurn]) -> None:
    """Fill in `heads` of these tenants where not yet known: their next jobs, as many as
    each has room for (SQLite answers in-process: one small query per tenant is cheap)."""
    for turn in turns:
        if turn.heads is None:
            turn.heads = list(
                Job.objects.filter(
                    tenant_id=turn.tenant_id, status=Job.Status.QUEUED, mode=Mode.STANDARD
                )
                .order_by("priority", "created_at")
                .values_list("pk", "count")[: turn.room]
            )


def plan_claim(limit: int) -> tuple[list[TenantTurn], float]:
    """Decide, without locking anything, which tenants' head jobs to take, in fair order;
    also returns the virtual time the decision was made at.

    Keys only grow as a tenant is picked, so the tenants picked at all are among the
    `limit` with the smallest keys at the start: only those are read, and their heads.
    """
    turns, now_v = _turns(limit)
    heap = [(turn.key(), turn.tenant_id, turn) for turn in turns]
    heapq.heapify(heap)
    _heads(turns)
    taken = 0
    while heap and taken < limit:
        _, _, turn = heapq.heappop(heap)
        heads = turn.heads or []
        if len(turn.picks) >= len(heads):
            continue
        job_id, images = heads[len(turn.picks)]
        turn.picks.append((job_id, images))
        turn.start += images / turn.weight
        taken += 1
        if len(turn.picks) < turn.room:
            heapq.heappush(heap, (turn.key(), turn.tenant_id, turn))
    return [turn for turn in turns if turn.picks], now_v


def _commit(
    turns: list[TenantTurn], *, now: dt.datetime, lease_until: dt.datetime, now_v: float
) -> list[uuid.UUID]:
    """Move the picked jobs to running, never past a tenant's cap; advance the tags.

    PostgreSQL: one call of `generation_claim` (migration generation/0012), which takes
    the picked tenants' advisory locks in id order (row locks on the tenant rows would
    hold up their submits), moves the jobs under the cap (read after the locks are held)
    and advances the tags, with an asynchronous commit: a claim lost in a database crash
    only leaves its jobs queued. SQLite (one writer at a time): the same in three
    statements."""
    pk_field = Job._meta.pk
    assert pk_field is not None
    picks = [
        (pk_field.get_db_prep_value(job_id, connection), turn.tenant_id, rank)
        for turn in turns
        for rank, (job_id, _) in enumerate(turn.picks, start=1)
    ]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT claimed_id FROM generation_claim("
                "%s::uuid[], %s::bigint[], %s::int[], %s, %s, %s)",
                [*(list(column) for column in zip(*picks, strict=True)), lease_until, now, now_v],
            )
            taken = {_as_uuid(row[0]) for row in cursor.fetchall()}
        return [job_id for turn in turns for job_id, _ in turn.picks if job_id in taken]
    with transaction.atomic(), connection.cursor() as cursor:
        running, queued = Job.Status.RUNNING.value, Job.Status.QUEUED.value
        cursor.execute(
            _sql(_TAKE, values=", ".join(["(%s, %s, %s)"] * len(picks))),
            [*(v for pick in picks for v in pick), running, lease_until, now, queued],
        )
        claimed = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
        claimed = {_as_uuid(k): v for k, v in claimed.items()}
        _advance(cursor, turns, claimed, now_v)
    return [job_id for turn in turns for job_id, _ in turn.picks if job_id in claimed]


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# The claim's own advisory-lock namespace ("Bunc"): one lock per tenant, held to the commit
# (taken by the `generation_claim` function, migration generation/0012).
CLAIM_LOCK_CLASS = 0x42756E63


def _advance(
    cursor: Any, turns: list[TenantTurn], claimed: dict[uuid.UUID, tuple[int, int]], now_v: float
) -> None:
    rows = []
    for turn in turns:
        images = [n for job_id, n in turn.picks if job_id in claimed]
        if images:
            finish = now_v + sum(images) / turn.weight
            rows.append((turn.tenant_id, finish - images[-1] / turn.weight, finish))
    if not rows:
        return
    cursor.execute(
        _sql(_ADVANCE, values=", ".join(["(%s, %s, %s)"] * len(rows)), greatest=_greatest()),
        [*(v for row in rows for v in row), now_v, now_v, now_v, now_v],
    )


def _backlog_ready(backlog: int, now: dt.datetime) -> int:
    """How many queued jobs every loop has passed over (at most `backlog`)."""
    if backlog <= 0:
        return 0
    stale = now - dt.timedelta(seconds=BACKLOG_AFTER_S)
    return (
        Job.objects.filter(status=Job.Status.QUEUED, mode=Mode.STANDARD, created_at__lt=stale)
        .order_by()
        .values("pk")[:backlog]
        .count()
    )


def claim_jobs(*, limit: int, backlog: int = 0, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """Move up to `limit` queued jobs to running, in fair order, never past a tenant's cap.

    `backlog` more may be taken, but only as many as there are jobs queued for longer than
    `BACKLOG_AFTER_S`: a backlog job waits for one of this loop's calls to free up, which
    would only slow it down while another worker has calls to spare.
    """
    if limit <= 0 and backlog <= 0:
        return []
    now = now or timezone.now()
    limit = max(0, limit) + _backlog_ready(backlog, now)
    if limit <= 0:
        return []
    turns, now_v = plan_claim(limit)
    if not turns:
        return []
    lease_until = now + dt.timedelta(seconds=float(settings.BUNCH_JOB_LEASE_S))
    return _commit(turns, now=now, lease_until=lease_until, now_v=now_v)


# What a queued job's owner is told ------------------------------------------------------

# A job's run time assumed until the tenant has finished some (a model call, ~4 s).
ASSUMED_JOB_S = 4.0


@dataclass(frozen=True)
class TenantPace:
    """A tenant's current share (its running jobs), its cap, and how long its jobs take."""

    running: int
    cap: int
    job_s: float


def tenant_pace(tenant: Tenant) -> TenantPace:
    running = (
        TenantShare.objects.filter(tenant=tenant).values_list("running", flat=True).first() or 0
    )
    recent = (
        Job.objects.filter(tenant=tenant, status=Job.Status.SUCCEEDED, mode=Mode.STANDARD)
        .order_by("-created_at")
        .values_list("started_at", "finished_at")[:20]
    )
    times = [(end - start).total_seconds() for start, end in recent if start and end]
    job_s = sum(times) / len(times) if times else ASSUMED_JOB_S
    return TenantPace(running=running, cap=tenant.plan.max_concurrent_jobs, job_s=job_s)


def queue_position(job: Job) -> int:
    """How many of the tenant's own queued jobs start before this one."""
    ahead = Job.objects.filter(
        tenant_id=job.tenant_id, status=Job.Status.QUEUED, mode=Mode.STANDARD
    ).filter(Q(priority__lt=job.priority) | Q(priority=job.priority, created_at__lt=job.created_at))
    return ahead.count()


def start_estimate(
    job: Job, *, pace: TenantPace, position: int, now: dt.datetime, running_self: bool = False
) -> dt.datetime:
    """When a job with `position` of its tenant's queued jobs ahead of it may start.

    The tenant's jobs start as its running ones end: n jobs ahead at its current share
    (its running jobs, at least one) take n ÷ share job times; those that fit under its
    cap start at the next claim. `running_self`: the job is running now and about to go
    back to the queue (a 429), so it does not count in the share. A guess, not a promise:
    other tenants' work changes it.
    """
    running = max(0, pace.running - (1 if running_self else 0))
    waiting = position - max(0, pace.cap - running)
    seconds = 0.0 if waiting < 0 else (waiting // max(running, 1) + 1) * pace.job_s
    return now + dt.timedelta(seconds=seconds)


def queue_estimate(
    job: Job, *, pace: TenantPace | None = None, now: dt.datetime | None = None
) -> dict[str, Any] | None:
    """`{"position": n, "estimated_start_at": …}` for a queued standard-mode job, else None
    (see `start_estimate`)."""
    if job.status != Job.Status.QUEUED or job.mode != Mode.STANDARD:
        return None
    pace = pace or tenant_pace(job.tenant)
    position = queue_position(job)
    start = start_estimate(job, pace=pace, position=position, now=now or timezone.now())
    return {"position": position, "estimated_start_at": start}
