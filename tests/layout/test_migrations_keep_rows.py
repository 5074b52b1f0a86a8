"""A database made by the layout before batches and webhooks had their own apps migrates
forward with every row intact, readable through the models in their new homes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django_q.models import Schedule

# The last migrations of the apps before the move (main at the end of the first wave);
# batches and webhooks did not exist.
BEFORE_THE_MOVE: dict[str, str | None] = {
    "tenants": "0002_ratelimit_unlogged",
    "generation": "0004_job_claim_index",
    "billing": "0006_usage_quota_settled",
    "batches": None,
    "webhooks": None,
    "series": None,  # came later still
}


def _migrate(targets: list[tuple[str, str | None]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state([t for t in targets if t[1]]).apps


def _latest() -> list[tuple[str, str | None]]:
    executor = MigrationExecutor(connection)
    return list(executor.loader.graph.leaf_nodes())


def _old_layout() -> list[tuple[str, str | None]]:
    """Every other app (contenttypes, django_q, …) as it is now."""
    others = [node for node in _latest() if node[0] not in BEFORE_THE_MOVE]
    return [*others, *BEFORE_THE_MOVE.items()]


def _old_rows(apps: Any) -> dict[str, Any]:
    """One row of every model that moves, plus what points at them, made with the old
    layout's historical models."""
    get = apps.get_model
    now = timezone.now()
    plan = get("tenants", "Plan").objects.create(
        name="Legacy", slug="legacy", monthly_image_quota=100, monthly_spend_cap=Decimal(10)
    )
    tenant = get("tenants", "Tenant").objects.create(name="Acme", slug="acme", plan=plan)
    template = get("generation", "PromptTemplate").objects.create(
        tenant=tenant, name="Summer sale", text="A {product} banner", defaults={"product": "hat"}
    )
    batch = get("generation", "Batch").objects.create(
        tenant=tenant, name="summer", template=template, total_items=1, total_images=1
    )
    job = get("generation", "Job").objects.create(
        tenant=tenant, prompt="p", model_prompt="p", aspect_ratio="1:1", batch=batch
    )
    item = get("generation", "BatchItem").objects.create(
        batch=batch, index=0, label="de-DE", locale="de-DE", job=job
    )
    provider_batch = get("generation", "ProviderBatch").objects.create(
        tenant=tenant, batch=batch, tier="lite", name="batches/abc", job_ids=[str(job.pk)]
    )
    image = get("generation", "Image").objects.create(
        tenant=tenant,
        job=job,
        index=0,
        file="t/1/x.png",
        mime_type="image/png",
        width=1,
        height=1,
        size_bytes=1,
        sha256="0" * 64,
    )
    usage = get("billing", "UsageEvent").objects.create(
        tenant=tenant,
        job=job,
        image=image,
        tier="lite",
        model="gemini-3.1-flash-lite-image",
        mode="batch",
        provider_cost=Decimal("0.0168"),
        markup=Decimal("0.004"),
        billed=Decimal("0.0208"),
    )
    endpoint = get("generation", "WebhookEndpoint").objects.create(
        tenant=tenant, url="https://example.com/hook", secret="whsec_" + "A" * 32
    )
    delivery = get("generation", "WebhookDelivery").objects.create(
        endpoint=endpoint,
        event_id="msg_1",
        event_type="job.succeeded",
        payload={"job": {"id": str(job.pk)}},
        attempts=2,
        last_error="503",
        next_attempt_at=now + dt.timedelta(minutes=5),
    )
    # Made by generation's 0003 (other tests may have flushed it since).
    get("django_q", "Schedule").objects.update_or_create(
        name="generation.batches_poll",
        defaults={"func": "generation.batch_tasks.poll", "schedule_type": "I", "minutes": 1},
    )
    content_type = get("contenttypes", "ContentType").objects.get_or_create(
        app_label="generation", model="batch"
    )[0]
    return {
        "tenant": tenant.pk,
        "template": template.pk,
        "batch": batch.pk,
        "job": job.pk,
        "item": item.pk,
        "provider_batch": provider_batch.pk,
        "image": image.pk,
        "usage": usage.pk,
        "endpoint": endpoint.pk,
        "delivery": delivery.pk,
        "batch_content_type": content_type.pk,
    }


@pytest.mark.django_db(transaction=True)
def test_a_database_of_the_old_layout_migrates_forward_with_every_row() -> None:
    from batches.models import Batch, BatchItem, PromptTemplate, ProviderBatch
    from billing.models import UsageEvent
    from generation.models import Job
    from webhooks.models import WebhookDelivery, WebhookEndpoint

    latest = _latest()
    ids = _old_rows(_migrate(_old_layout()))
    try:
        _migrate(latest)
    finally:  # whatever happens, leave the database as the other tests expect it
        _migrate(latest)

    batch = Batch.objects.select_related("template").get(pk=ids["batch"])
    assert batch.template.pk == ids["template"]
    assert batch.template.defaults == {"product": "hat"}
    item = BatchItem.objects.select_related("job").get(pk=ids["item"])
    assert (item.batch_id, item.job.pk, item.locale) == (ids["batch"], ids["job"], "de-DE")
    assert Job.objects.get(pk=ids["job"]).batch_id == ids["batch"]
    assert list(batch.jobs.values_list("pk", flat=True)) == [ids["job"]]
    assert ProviderBatch.objects.get(pk=ids["provider_batch"]).job_ids == [str(ids["job"])]
    assert PromptTemplate.objects.count() == 1
    usage = UsageEvent.objects.get(pk=ids["usage"])
    assert (usage.job_id, usage.image_id) == (ids["job"], ids["image"])
    endpoint = WebhookEndpoint.objects.get(pk=ids["endpoint"])
    assert endpoint.secret == "whsec_" + "A" * 32
    delivery = WebhookDelivery.objects.get(pk=ids["delivery"])
    assert (delivery.endpoint_id, delivery.attempts, delivery.last_error) == (
        ids["endpoint"],
        2,
        "503",
    )
    # Admin history and permissions point at content types: the same rows, relabelled.
    moved = ContentType.objects.get(pk=ids["batch_content_type"])
    assert (moved.app_label, moved.model) == ("batches", "batch")
    assert ContentType.objects.get_for_model(Batch).pk == ids["batch_content_type"]
    tables = set(connection.introspection.table_names())
    assert {"batches_batch", "batches_batchitem", "webhooks_webhookendpoint"} <= tables
    assert not {t for t in tables if t.startswith("generation_") and "webhook" in t}
    assert Schedule.objects.filter(name="batches.poll", func="batches.tasks.poll").exists()
    assert Schedule.objects.filter(name="webhooks.sweep", func="webhooks.tasks.sweep").exists()
    assert not Schedule.objects.filter(name="generation.batches_poll").exists()
