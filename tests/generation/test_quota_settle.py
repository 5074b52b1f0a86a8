"""A stored image moves from its period's reservation to its usage exactly once, also
when the worker died between storing it and moving it (the move is a step of its own
just after the store: one statement on PostgreSQL, a short transaction on SQLite)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import OperationalError
from django.db.models import F
from django.utils import timezone

from billing.models import UsageEvent
from core.money import to_nanos
from generation import ingest, tasks
from generation.ingest import per_image_nanos
from generation.models import Job
from tenants.models import QuotaPeriod
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator


def _submit(actor: Actor, **body: object) -> dict[str, object]:
    response = actor.api().post("/api/v1/generations", body, format="json", HTTP_PREFER="wait=20")
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_every_stored_image_is_settled_and_nothing_stays_reserved(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    job = _submit(owner, prompt="three mugs", kind="mockup", count=3)

    assert job["status"] == "succeeded"
    assert not UsageEvent.objects.filter(job_id=job["id"], quota_settled=False).exists()
    period = QuotaPeriod.objects.get(tenant=owner.tenant)
    assert (period.images_used, period.images_reserved, period.spend_reserved_nanos) == (3, 0, 0)
    billed = sum(u.billed for u in UsageEvent.objects.filter(job_id=job["id"]))
    assert period.spend_used_nanos == to_nanos(billed)


def test_the_sweeper_settles_an_image_whose_quota_move_was_lost_once(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    job_id = _submit(owner, prompt="two mugs", kind="mockup", count=2)["id"]
    period = QuotaPeriod.objects.get(tenant=owner.tenant)
    settled_state = (period.images_used, period.images_reserved, period.spend_used_nanos)
    usage = UsageEvent.objects.filter(job_id=job_id).first()
    assert usage is not None
    share = per_image_nanos(Job.objects.get(pk=job_id))
    # The state a worker killed between the store's commit and the settle leaves behind.
    UsageEvent.objects.filter(pk=usage.pk).update(
        quota_settled=False, occurred_at=timezone.now() - dt.timedelta(minutes=5)
    )
    QuotaPeriod.objects.filter(pk=period.pk).update(
        images_used=F("images_used") - 1,
        images_reserved=F("images_reserved") + 1,
        spend_used_nanos=F("spend_used_nanos") - to_nanos(usage.billed),
        spend_reserved_nanos=F("spend_reserved_nanos") + share,
    )

    assert tasks.sweep()["quota_settled"] == 1
    assert tasks.sweep()["quota_settled"] == 0

    period.refresh_from_db()
    assert (period.images_used, period.images_reserved, period.spend_used_nanos) == settled_state
    assert period.spend_reserved_nanos == 0
    assert UsageEvent.objects.get(pk=usage.pk).quota_settled


def test_a_fresh_unsettled_image_is_left_to_its_worker(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    job_id = _submit(owner, prompt="a mug", kind="mockup")["id"]
    UsageEvent.objects.filter(job_id=job_id).update(quota_settled=False)  # stored just now

    assert tasks.sweep()["quota_settled"] == 0


def test_a_quota_move_that_fails_after_the_store_leaves_the_image_stored_for_the_sweep(
    inline_worker: GeminiEmulator, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database went away between the first image's commit and its move (the chaos
    # suite's `database` scenario): the job still makes both images, one call each.
    real, failed = ingest.usage_quota_settle, []

    def refused_once(**kwargs: Any) -> bool:
        if not failed:
            failed.append(kwargs["usage_id"])
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(ingest, "usage_quota_settle", refused_once)
    job = _submit(owner, prompt="two mugs", kind="mockup", count=2)
    monkeypatch.undo()

    assert job["status"] == "succeeded"
    assert len(inline_worker.requests()) == 2
    assert (
        list(
            UsageEvent.objects.filter(job_id=job["id"], quota_settled=False).values_list(
                "pk", flat=True
            )
        )
        == failed
    )
    period = QuotaPeriod.objects.get(tenant=owner.tenant)
    assert (period.images_used, period.images_reserved) == (1, 1)

    UsageEvent.objects.filter(pk=failed[0]).update(
        occurred_at=timezone.now() - dt.timedelta(minutes=1)
    )
    assert tasks.sweep()["quota_settled"] == 1
    period.refresh_from_db()
    assert (period.images_used, period.images_reserved, period.spend_reserved_nanos) == (2, 0, 0)
    billed = sum(u.billed for u in UsageEvent.objects.filter(job_id=job["id"]))
    assert period.spend_used_nanos == to_nanos(billed)
