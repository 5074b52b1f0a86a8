"""Batches end to end: the API, the provider's Batch API (the emulator), polling, ingesting."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from batches import dispatch
from batches.models import Batch, ProviderBatch
from billing.models import UsageEvent
from billing.pricing import cost_of, price_for
from core.catalog import TokenUsage
from generation.models import Image, Job
from tenants.models import QuotaPeriod
from tests.batches.conftest import BATCHES, finish, get_batch, poll_until, submit
from tests.plugins.actors import Actor, assert_error, make_plan
from tests.plugins.gemini import GeminiEmulator
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_create

LITE = "gemini-3.1-flash-lite-image"


def items(*prompts: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"prompt": p, "label": f"p{i}", **extra} for i, p in enumerate(prompts)]


def quota(actor: Actor) -> QuotaPeriod:
    return QuotaPeriod.objects.get(tenant=actor.tenant)


def test_batch_mode_items_are_made_through_the_batch_api_and_billed_at_half_price(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    created = submit(owner, items=items("a red mug", "a blue mug", "a green mug"))
    assert created["mode"] == "batch" and created["total_items"] == 3

    batch = finish(created["id"])

    body = get_batch(owner, created["id"])
    assert batch.status == body["status"] == "succeeded"
    assert body["progress"] | {"percent": 0} == {
        "queued": 0, "running": 0, "succeeded": 3, "failed": 0, "canceled": 0,
        "images_made": 3, "percent": 0,
    }  # fmt: skip
    events = list(UsageEvent.objects.filter(job__batch=batch))
    assert len(events) == 3 and {e.mode for e in events} == {"batch"}
    standard = price_for(model=LITE, mode="standard")
    for event in events:
        usage = TokenUsage(
            input_text_tokens=event.input_text_tokens, output_image_tokens=event.output_image_tokens
        )
        full = cost_of(usage=usage, price=standard, markup=Decimal(0)).provider_cost
        assert event.output_image_tokens == 1120
        image_part = Decimal(1120) * Decimal(15) / 1_000_000
        assert image_part == Decimal("0.0168")
        prompt_part = Decimal(event.input_text_tokens) * Decimal("0.125") / 1_000_000
        assert event.provider_cost == image_part + prompt_part == full / 2
        assert event.billed == event.provider_cost + owner.tenant.plan.markup_per_image
    assert Decimal(body["actual_cost"]) == sum(e.billed for e in events).quantize(Decimal("1e-6"))
    assert Decimal(body["estimated_cost"]) >= Decimal(body["actual_cost"])
    assert quota(owner).images_used == 3 and quota(owner).images_reserved == 0
    assert quota(owner).spend_reserved_nanos == 0
    assert inline_worker.stats()["by_model"][LITE].get("batch_ok") == 3


def test_provider_batch_moves_pending_running_succeeded_and_the_batch_follows(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    inline_worker.configure(batch_step_seconds=1.0)  # each state outlasts a poll pass
    created = submit(owner, items=items("a lighthouse"))
    assert created["status"] == "running"  # sent to the provider on commit
    record = ProviderBatch.objects.get(batch_id=created["id"])
    assert record.name.startswith("batches/") and record.input_mode == "inline"
    seen: list[tuple[str, str]] = []

    def note() -> None:
        state = (
            ProviderBatch.objects.get(pk=record.pk).state,
            get_batch(owner, created["id"])["status"],
        )
        if not seen or seen[-1] != state:
            seen.append(state)

    poll_until(lambda: seen[-1][1] == "succeeded", on_pass=note)
    assert seen == [("pending", "running"), ("running", "running"), ("succeeded", "succeeded")]


def test_requests_over_the_inline_threshold_go_through_a_jsonl_file(
    inline_worker: GeminiEmulator, owner: Actor, settings: Any
) -> None:
    settings.BUNCH_BATCH_INLINE_MAX_BYTES = 10
    created = submit(owner, items=items("a fox", "a hare", count=2))

    batch = finish(created["id"])

    assert batch.status == "succeeded"
    assert ProviderBatch.objects.get(batch=batch).input_mode == "file"
    assert Image.objects.filter(job__batch=batch).count() == 4


def test_provider_batches_are_split_at_the_request_limit(
    inline_worker: GeminiEmulator, owner: Actor, settings: Any
) -> None:
    settings.BUNCH_BATCH_MAX_REQUESTS = 2
    created = submit(owner, items=items("a", "b", "c", "d", "e"))

    batch = finish(created["id"])

    assert batch.status == "succeeded"
    assert sorted(p.request_count for p in ProviderBatch.objects.filter(batch=batch)) == [1, 2, 2]


def test_failed_items_keep_their_codes_and_release_their_reservation(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    created = submit(owner, items=items("a cat", "a cat [[fail:400]]", "a cat [[safety]]"))

    batch = finish(created["id"])

    assert batch.status == "succeeded"  # completed, with failed items
    jobs = {j.metadata.get("label", j.prompt): j for j in Job.objects.filter(batch=batch)}
    codes = sorted((j.prompt, j.status, j.error_code) for j in jobs.values())
    assert codes == [
        ("a cat", "succeeded", ""),
        ("a cat [[fail:400]]", "failed", "invalid_argument"),
        ("a cat [[safety]]", "failed", "image_refused"),
    ]
    assert get_batch(owner, created["id"])["progress"]["failed"] == 2
    assert quota(owner).images_used == 1
    assert quota(owner).images_reserved == 0 and quota(owner).spend_reserved_nanos == 0


def test_a_retryable_item_failure_goes_into_the_next_provider_batch(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    created = submit(owner, items=items("an owl [[fail:503x1]]", "a bat"))

    batch = finish(created["id"])

    assert batch.status == "succeeded"
    owl = Job.objects.get(batch=batch, prompt__startswith="an owl")
    assert owl.status == "succeeded" and owl.attempts == 2
    assert ProviderBatch.objects.filter(batch=batch).count() == 2
    assert UsageEvent.objects.filter(job__batch=batch).count() == 2


def test_cancel_stops_the_provider_batch_and_releases_everything(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    inline_worker.configure(batch_step_seconds=5)
    created = submit(owner, items=items("a", "b"))

    response = owner.api().post(f"{BATCHES}/{created['id']}/cancel")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "canceled" and body["progress"]["canceled"] == 2
    assert ProviderBatch.objects.get(batch_id=created["id"]).state == "cancelled"
    assert not UsageEvent.objects.filter(job__batch_id=created["id"]).exists()
    assert quota(owner).images_reserved == 0 and quota(owner).spend_reserved_nanos == 0
    again = owner.api().post(f"{BATCHES}/{created['id']}/cancel")
    assert_error(again, 409, "batch_not_cancelable")


def test_expired_provider_batch_fails_items_with_batch_expired_and_bills_nothing(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    endpoint_create(tenant=owner.tenant, url="https://hooks.example.com/b", event_types=[])
    by_trigger = submit(owner, items=items("a tree [[expire]]", "a bush"))
    finish(by_trigger["id"])
    inline_worker.configure(batch_step_seconds=5)
    by_control = submit(owner, items=items("a rock"))
    inline_worker.expire_batch(ProviderBatch.objects.get(batch_id=by_control["id"]).name)

    for created in (by_trigger, by_control):
        batch = finish(created["id"])
        assert batch.status == "failed"
        assert set(Job.objects.filter(batch=batch).values_list("error_code", flat=True)) == {
            "batch_expired"
        }
    assert not UsageEvent.objects.exists()
    assert quota(owner).images_reserved == 0 and quota(owner).spend_reserved_nanos == 0
    failed = WebhookDelivery.objects.filter(event_type="batch.failed")
    assert failed.count() == 2
    assert failed.first().payload["data"]["batch"]["progress"]["failed"] >= 1  # type: ignore[union-attr]


def test_a_provider_batch_past_its_age_limit_is_cancelled_and_expired(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    import datetime as dt

    from django.utils import timezone

    inline_worker.configure(batch_step_seconds=5)
    created = submit(owner, items=items("a slow river"))

    dispatch.poll(now=timezone.now() + dt.timedelta(hours=49))

    batch = Batch.objects.get(pk=created["id"])
    assert batch.status == "failed"
    assert Job.objects.get(batch=batch).error_code == "batch_expired"


def test_ingesting_twice_never_stores_or_bills_twice(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    created = submit(owner, items=items("a kite", "a boat", count=2))
    batch = finish(created["id"])
    record = ProviderBatch.objects.get(batch=batch)
    before = (Image.objects.count(), UsageEvent.objects.count(), quota(owner).images_used)

    # As if the first ingest had crashed after storing: the record is unfinished again and
    # the jobs are still running; every later pass must find the images already stored.
    ProviderBatch.objects.filter(pk=record.pk).update(ingested_at=None, state="running")
    Job.objects.filter(batch=batch).update(status="running", finished_at=None)
    dispatch.poll()
    dispatch.poll()

    assert (Image.objects.count(), UsageEvent.objects.count(), quota(owner).images_used) == before
    assert before[:2] == (4, 4)
    assert set(Job.objects.filter(batch=batch).values_list("status", flat=True)) == {"succeeded"}


def test_realtime_mode_runs_items_as_standard_jobs(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    created = submit(owner, mode="realtime", items=items("a hat", "a scarf"))

    batch = finish(created["id"])

    assert batch.status == "succeeded" and created["mode"] == "realtime"
    assert not ProviderBatch.objects.exists()
    assert {e.mode for e in UsageEvent.objects.filter(job__batch=batch)} == {"standard"}


def test_batch_completed_webhook_carries_the_progress(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    endpoint_create(
        tenant=owner.tenant, url="https://hooks.example.com/a", event_types=["batch.completed"]
    )
    created = submit(owner, items=items("a cup"))

    finish(created["id"])

    delivery = WebhookDelivery.objects.get(event_type="batch.completed")
    data = delivery.payload["data"]["batch"]
    assert data["id"] == created["id"] and data["progress"]["succeeded"] == 1


def test_submission_is_all_or_nothing_with_each_bad_item_named(owner: Actor) -> None:
    response = owner.api().post(
        BATCHES,
        {"items": [{"prompt": "ok"}, {"prompt": "tall", "model": "pro", "aspect_ratio": "1:8"}]},
        format="json",
    )

    error = assert_error(response, 400, "invalid_items")
    assert list(error["fields"]) == ["items[1].aspect_ratio"]
    assert not Batch.objects.exists() and not Job.objects.exists()


def test_over_quota_batch_is_refused_with_402_and_nothing_reserved(owner: Actor) -> None:
    make_plan(monthly_image_quota=5)
    owner.tenant.refresh_from_db()

    response = owner.api().post(BATCHES, {"items": items(*"abc", count=2)}, format="json")

    assert_error(response, 402, "quota_exceeded")
    assert not Job.objects.exists()
    assert not QuotaPeriod.objects.filter(tenant=owner.tenant, images_reserved__gt=0).exists()


def test_batch_mode_outside_the_plan_is_refused_but_realtime_is_allowed(owner: Actor) -> None:
    make_plan(batch_allowed=False)

    refused = owner.api().post(BATCHES, {"items": items("a")}, format="json")

    assert_error(refused, 403, "batch_not_in_plan")
    submit(owner, mode="realtime", items=items("a"))


def test_more_than_ten_thousand_items_are_refused(owner: Actor) -> None:
    response = owner.api().post(BATCHES, {"items": [{"prompt": "x"}] * 10_001}, format="json")
    assert response.status_code == 400
    assert "items" in response.json()["error"]["fields"]


def test_items_are_listed_in_order_with_their_labels_and_jobs(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    created = submit(owner, items=items(*[f"shape {i}" for i in range(5)]))
    finish(created["id"])

    first = owner.api().get(f"{BATCHES}/{created['id']}/items?limit=3").json()
    second = owner.api().get(first["next"]).json()

    rows = first["results"] + second["results"]
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["label"] for r in rows] == [f"p{i}" for i in range(5)]
    assert rows[0]["job"]["status"] == "succeeded" and len(rows[0]["job"]["images"]) == 1
    listed = owner.api().get(BATCHES).json()["results"]
    assert [b["id"] for b in listed] == [created["id"]]


def test_resending_with_the_same_idempotency_key_returns_the_first_batch(owner: Actor) -> None:
    body = {"mode": "realtime", "items": items("a")}
    first = owner.api().post(BATCHES, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = owner.api().post(BATCHES, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    other = owner.api().post(
        BATCHES, {**body, "name": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )

    assert first.status_code == again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"]
    assert again.json()["id"] == first.json()["id"] and Batch.objects.count() == 1
    assert_error(other, 409, "idempotency_key_reused")


def test_a_batch_replay_answers_with_the_batch_as_it_is_now(owner: Actor) -> None:
    body = {"mode": "realtime", "items": items("a", "b")}
    first = owner.api().post(BATCHES, body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    owner.api().post(f"{BATCHES}/{first.json()['id']}/cancel")
    explicit = {**body, "name": "", "metadata": {}, "count": 1}  # defaults, said aloud

    again = owner.api().post(BATCHES, explicit, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    assert again.status_code == 200, again.content
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["status"] == "canceled"
    assert again.json() == get_batch(owner, first.json()["id"])
