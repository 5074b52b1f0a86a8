"""The batch list and the webhook delivery log: O(page) reads that stay correct."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count
from django.test import Client

from batches import selectors as batch_selectors
from batches.models import Batch
from generation.models import Job
from tenants.models import Tenant
from tests.generation.test_lists_at_scale import (
    T0,
    _all_pages,
    _assert_limit_over_index,
    _jobs,
    _plan,
    _queries,
)
from tests.plugins.actors import Actor, rate_limit_queries
from webhooks import selectors as webhook_selectors
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db
BATCHES = "/api/v1/batches"


def _batches(tenant: Tenant, n: int, *, statuses: tuple[str, ...] = ("succeeded",)) -> list[Batch]:
    """`n` batches, newest last, each with one job per entry of `statuses`."""
    batches = Batch.objects.bulk_create(
        Batch(
            tenant=tenant,
            name=f"batch {i}",
            total_items=len(statuses),
            total_images=len(statuses),
            created_at=T0 - dt.timedelta(seconds=n - i),
        )
        for i in range(n)
    )
    jobs = [
        Job(
            tenant=tenant,
            prompt=f"item {k}",
            model_prompt="item",
            aspect_ratio="1:1",
            status=status,
            mode="batch",
            batch=batch,
            created_at=batch.created_at,
        )
        for batch in batches
        for k, status in enumerate(statuses)
    ]
    Job.objects.bulk_create(jobs)
    return batches


def _endpoint(tenant: Tenant) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        tenant=tenant, url="https://hooks.example.com/x", secret="whsec_test"
    )


def _deliveries(endpoint: WebhookEndpoint, n: int) -> list[WebhookDelivery]:
    return WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint=endpoint,
            event_id=f"evt_{uuid.uuid4().hex}",
            event_type="job.succeeded",
            payload={},
            status="succeeded",
            created_at=T0 - dt.timedelta(seconds=(n - i) // 2),  # pairs share an instant
        )
        for i in range(n)
    )


def _analyze() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE batches_batch, generation_job, webhooks_webhookdelivery")


def test_each_batchs_progress_on_the_list_counts_its_own_items(
    owner: Actor, outsider: Actor
) -> None:
    mixed = ("succeeded", "succeeded", "failed", "queued", "running", "canceled")
    [mine] = _batches(owner.tenant, 1, statuses=mixed)
    [done] = _batches(owner.tenant, 1, statuses=("succeeded",) * 3)
    _batches(outsider.tenant, 2, statuses=("failed",) * 4)

    listed = {row["id"]: row["progress"] for row in _all_pages(owner, BATCHES)}

    assert set(listed) == {str(mine.pk), str(done.pk)}
    counts = {k: listed[str(mine.pk)][k] for k in mixed}
    assert counts == {"succeeded": 2, "failed": 1, "queued": 1, "running": 1, "canceled": 1}
    assert listed[str(done.pk)]["succeeded"] == 3 and listed[str(done.pk)]["failed"] == 0


def test_the_batch_list_runs_the_same_number_of_queries_for_3_or_120_batches(
    owner: Actor,
) -> None:
    _batches(owner.tenant, 3, statuses=("succeeded", "failed"))
    _queries(owner, BATCHES)  # the first request also looks the API key up
    few = _queries(owner, f"{BATCHES}?limit=200")
    _batches(owner.tenant, 117, statuses=("succeeded", "queued", "failed"))

    many = _queries(owner, f"{BATCHES}?limit=200")

    assert many == few


def test_the_batch_lists_page_is_read_off_the_tenant_created_index(
    owner: Actor, outsider: Actor
) -> None:
    _batches(owner.tenant, 1500, statuses=("succeeded", "failed"))
    _batches(outsider.tenant, 1500)
    _jobs(owner.tenant, 2000)
    _analyze()
    batches = batch_selectors.batches_page_for_tenant(owner.tenant).order_by("-created_at")
    page = [b.pk for b in batches[:51]]
    counts = Job.objects.filter(batch_id__in=page).values("batch_id", "status").order_by()

    _assert_limit_over_index(_plan(batches[:51]), "batches_batch", "batch_tenant_created")
    # The progress is grouped over the page's jobs, found by batch id, not the tenant's.
    plan = str(_plan(counts.annotate(n=Count("pk"))))
    assert "generation_job_batch_id" in plan, plan


def test_the_delivery_log_visits_every_delivery_once_newest_first(owner: Actor) -> None:
    endpoint = _endpoint(owner.tenant)
    made = _deliveries(endpoint, 125)
    other = _endpoint(owner.tenant)
    _deliveries(other, 5)
    url = f"/api/v1/webhook-endpoints/{endpoint.pk}/deliveries"

    rows = _all_pages(owner, f"{url}?limit=20")

    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == 125
    assert set(ids) == {str(d.pk) for d in made}
    stamps = [row["created_at"] for row in rows]
    assert stamps == sorted(stamps, reverse=True)


def test_the_delivery_log_is_read_off_the_endpoint_created_index(owner: Actor) -> None:
    endpoint = _endpoint(owner.tenant)
    _deliveries(endpoint, 3000)
    _deliveries(_endpoint(owner.tenant), 3000)
    _analyze()
    log = webhook_selectors.deliveries_for_endpoint(endpoint).order_by("-created_at", "-id")
    later = log.filter(created_at__lt=T0 - dt.timedelta(seconds=500))

    _assert_limit_over_index(
        _plan(log[:51]), "webhooks_webhookdelivery", "delivery_endpoint_created"
    )
    _assert_limit_over_index(
        _plan(later[:51]), "webhooks_webhookdelivery", "delivery_endpoint_created"
    )


@pytest.fixture
def operator(db: None, django_user_model: type) -> Client:
    django_user_model.objects.create_superuser("ops", "ops@bunch.test", "ops-password-1")
    client = Client()
    assert client.login(username="ops", password="ops-password-1")
    return client


def test_the_admin_delivery_changelist_is_read_off_the_created_index(
    operator: Client, owner: Actor
) -> None:
    _deliveries(_endpoint(owner.tenant), 4000)
    _analyze()

    response = operator.get("/admin/webhooks/webhookdelivery/")

    assert response.status_code == 200
    cl: Any = response.context["cl"]
    plan = _plan(cl.queryset[:100])
    if connection.vendor == "postgresql":
        _assert_limit_over_index(plan, "webhooks_webhookdelivery", "delivery_created_id")
    else:  # no tenant to SEARCH by: the whole index, in its order
        assert "SCAN webhooks_webhookdelivery USING INDEX delivery_created_id" in plan, plan
        assert "TEMP B-TREE" not in plan, plan


def test_the_admin_finds_a_delivery_by_id_or_by_the_start_of_its_event_id(
    operator: Client, owner: Actor, outsider: Actor
) -> None:
    [first, second] = _deliveries(_endpoint(owner.tenant), 2)
    _deliveries(_endpoint(outsider.tenant), 3)

    def found(q: str) -> set[uuid.UUID]:
        response = operator.get("/admin/webhooks/webhookdelivery/", {"q": q})
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    assert found(str(second.pk)) == {second.pk}
    assert found(first.event_id[:14]) == {first.pk}
    assert found("evt_no-such-event") == set()


def test_the_admin_event_type_filter_lists_the_types_sent_and_narrows_the_rows(
    operator: Client, owner: Actor
) -> None:
    endpoint = _endpoint(owner.tenant)
    [_, failed] = _deliveries(endpoint, 2)
    WebhookDelivery.objects.filter(pk=failed.pk).update(event_type="job.failed")

    response = operator.get("/admin/webhooks/webhookdelivery/", {"event_type": "job.failed"})

    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [failed.pk]
    [spec] = [f for f in response.context["cl"].filter_specs if f.title == "event type"]
    assert [value for value, _ in spec.lookup_choices] == list(WebhookEndpoint.EVENT_TYPES)


def _items(batch: Batch, jobs: int) -> None:
    from batches.models import BatchItem

    made = Job.objects.bulk_create(
        Job(
            tenant=batch.tenant, prompt=f"item {i}", model_prompt="item", aspect_ratio="1:1",
            status="succeeded", mode="batch", batch=batch, created_at=T0,
        )
        for i in range(jobs)
    )  # fmt: skip
    have = BatchItem.objects.filter(batch=batch).count()
    BatchItem.objects.bulk_create(
        BatchItem(batch=batch, index=have + i, job=job) for i, job in enumerate(made)
    )


def test_batch_items_cost_the_same_queries_for_3_or_90_items_with_no_tenant_per_row(
    owner: Actor,
) -> None:
    from django.test.utils import CaptureQueriesContext

    [batch] = _batches(owner.tenant, 1, statuses=())
    _items(batch, 3)
    url = f"{BATCHES}/{batch.pk}/items"
    _queries(owner, url)  # the first request also looks the API key up
    few = _queries(owner, url)
    _items(batch, 87)

    with CaptureQueriesContext(connection) as captured:
        body = owner.api().get(url).json()

    # Batch, items, their jobs, their images.
    assert len(captured) == few == 4 + rate_limit_queries()
    assert [row["index"] for row in body["results"]] == list(range(90))
    jobs_sql = next(q["sql"] for q in captured if 'FROM "generation_job"' in q["sql"])
    # The page's jobs share the request's tenant and plan; their cost is a subquery per
    # job, not a GROUP BY over the jobs' every column.
    assert '"tenants_tenant"' not in jobs_sql and "GROUP BY" not in jobs_sql.split("(SELECT")[0]


def test_each_batchs_images_and_cost_on_the_list_are_its_own_jobs(
    owner: Actor, outsider: Actor
) -> None:
    from decimal import Decimal

    from core.money import usd
    from generation.models import Image
    from tests.billing.conftest import record_usage

    mine, empty = _batches(owner.tenant, 2, statuses=("succeeded", "failed", "queued"))
    events = record_usage(owner.tenant, n=2)  # a job with two images and their usage
    Job.objects.filter(pk=events[0].job_id).update(batch=mine)
    unbilled = Job.objects.filter(batch=mine, status="failed").get()
    Image.objects.create(
        tenant=owner.tenant, job=unbilled, index=0, file="test/x.png", mime_type="image/png",
        width=1, height=1, size_bytes=1, sha256="0" * 64,
    )  # fmt: skip
    record_usage(owner.tenant, n=3)  # not in a batch
    record_usage(outsider.tenant, n=2)

    listed = {row["id"]: row for row in _all_pages(owner, BATCHES)}

    assert listed[str(mine.pk)]["progress"]["images_made"] == 3
    assert listed[str(mine.pk)]["progress"]["succeeded"] == 2  # its own and the moved one
    assert listed[str(mine.pk)]["actual_cost"] == usd(sum(e.billed for e in events))
    assert listed[str(empty.pk)]["progress"]["images_made"] == 0
    assert listed[str(empty.pk)]["actual_cost"] == usd(Decimal(0))


def test_the_batch_progress_query_runs_without_jit_and_only_it() -> None:
    from django.db import transaction

    from config.sql import without_jit

    if connection.vendor != "postgresql":
        with without_jit():
            pass  # a no-op elsewhere
        return

    def jit() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW jit")
            return str(cursor.fetchone()[0])

    with transaction.atomic():
        before = jit()
        with without_jit():
            inside = jit()
        after = jit()

    assert inside == "off"
    assert before == after  # SET LOCAL ends with the block's (sub)transaction
