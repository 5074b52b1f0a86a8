"""The gallery's locale choices come from the tenant's recent batches (an index of their
localised items), not from every image the tenant ever made; any locale still filters."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from batches.models import Batch, BatchItem
from generation.models import Image, Job
from tests.dashboard.conftest import signed_in
from tests.generation.test_batch_and_delivery_lists_at_scale import _items
from tests.generation.test_lists_at_scale import T0, _jobs
from tests.plugins.actors import Actor

pytestmark = pytest.mark.django_db


def _localised(actor: Actor, batch: Batch, locales: list[str]) -> None:
    for index, locale in enumerate(locales):
        job = Job.objects.create(
            tenant=actor.tenant, prompt=f"{locale} banner", model_prompt="b",
            aspect_ratio="1:1", status="succeeded", mode="batch", batch=batch,
        )  # fmt: skip
        BatchItem.objects.create(batch=batch, index=index, locale=locale, job=job)
        Image.objects.create(
            tenant=actor.tenant, job=job, index=0, file=f"test/{job.pk}.png",
            mime_type="image/png", width=8, height=8, size_bytes=1, sha256="0" * 64,
        )  # fmt: skip


def _locale_choices(page: str) -> list[str]:
    select = re.search(r'<select name="locale"[^>]*>(.*?)</select>', page, re.S)
    assert select, "no locale filter"
    return [v for v in re.findall(r'<option value="([^"]*)"', select.group(1)) if v]


def test_locales_offered_are_the_recent_batches_and_an_older_one_still_filters(
    owner: Actor, outsider: Actor
) -> None:
    batches = Batch.objects.bulk_create(
        Batch(tenant=owner.tenant, name=f"b{i}", created_at=T0 - dt.timedelta(hours=200 - i))
        for i in range(101)
    )
    _localised(owner, batches[0], ["fr"])  # the oldest: beyond the 100 recent batches
    _localised(owner, batches[-1], ["en", "de"])
    [theirs] = Batch.objects.bulk_create([Batch(tenant=outsider.tenant, name="x")])
    _localised(outsider, theirs, ["ja"])
    _jobs(owner.tenant, 30)
    client = signed_in(owner)

    with CaptureQueriesContext(connection) as captured:
        page = client.get("/gallery/").content.decode()
    # (read before the next request, which clears the connection's log)
    locale_sql = [q["sql"] for q in captured if "DISTINCT" in q["sql"] and "locale" in q["sql"]]
    older = client.get("/gallery/", {"locale": "fr"}).content.decode()

    assert _locale_choices(page) == ["de", "en"]  # neither an old batch's nor another's
    assert older.count('data-testid="thumb"') == 1 and "fr banner" in older
    assert _locale_choices(older) == ["de", "en", "fr"]
    assert len(locale_sql) == 1 and '"generation_image"' not in locale_sql[0]
    if connection.vendor == "postgresql":
        for batch in batches[1:-1:20]:
            _items(batch, 600)  # items without a locale, as most are
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE batches_batchitem")
        plan = (
            owner.tenant.batches.filter(pk__in=[b.pk for b in batches], items__locale__gt="")
            .values_list("items__locale", flat=True)
            .distinct()
            .explain()
        )
        assert "Seq Scan on batches_batchitem" not in plan, plan
