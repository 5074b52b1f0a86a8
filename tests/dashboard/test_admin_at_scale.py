"""Operator admin at scale: changelists that neither count nor scan every row."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from billing.models import UsageEvent
from config import paging
from generation.models import Job
from tests.billing.conftest import record_usage
from tests.generation.test_lists_at_scale import _jobs
from tests.plugins.actors import Actor

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(db: None, django_user_model: type) -> Client:
    django_user_model.objects.create_superuser("ops", "ops@bunch.test", "ops-password-1")
    client = Client()
    assert client.login(username="ops", password="ops-password-1")
    return client


def _listed(response) -> list:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content[:500]
    return list(response.context["cl"].result_list)


def test_job_search_finds_a_job_by_id_or_by_words_of_its_prompt(
    operator: Client, owner: Actor, outsider: Actor
) -> None:
    zebras = _jobs(owner.tenant, 2, prompt="a Zebra crossing")
    _jobs(outsider.tenant, 3, prompt="a red fox")

    by_words = _listed(operator.get("/admin/generation/job/", {"q": "zebra"}))
    by_id = _listed(operator.get("/admin/generation/job/", {"q": str(zebras[0].pk)}))

    assert {job.pk for job in by_words} == {job.pk for job in zebras}
    assert [job.pk for job in by_id] == [zebras[0].pk]


def test_image_and_usage_searches_find_rows_by_id_or_text(operator: Client, owner: Actor) -> None:
    [event, other] = record_usage(owner.tenant, n=2)
    Job.objects.filter(pk=event.job_id).update(prompt="a lighthouse at dusk")
    UsageEvent.objects.filter(pk=other.pk).update(stripe_last_error="meter not found")

    images = _listed(operator.get("/admin/generation/image/", {"q": "LIGHTHOUSE"}))
    by_id = _listed(operator.get("/admin/billing/usageevent/", {"q": str(event.pk)}))
    by_error = _listed(operator.get("/admin/billing/usageevent/", {"q": "meter not"}))

    assert {image.job_id for image in images} == {event.job_id}
    assert [row.pk for row in by_id] == [event.pk]
    assert [row.pk for row in by_error] == [other.pk]


def test_tier_and_model_filters_list_the_catalog_and_narrow_the_rows(
    operator: Client, owner: Actor
) -> None:
    record_usage(owner.tenant, tier="pro")
    record_usage(owner.tenant, tier="lite", n=2)

    jobs = _listed(operator.get("/admin/generation/job/", {"tier": "pro"}))
    events = _listed(operator.get("/admin/billing/usageevent/", {"model": "gemini-3-pro-image"}))

    assert [job.tier for job in jobs] == ["pro"]
    assert [event.model for event in events] == ["gemini-3-pro-image"]


def test_a_changelist_past_the_exact_limit_shows_an_estimate_on_postgresql(
    operator: Client, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paging, "EXACT_UP_TO", 20)
    _jobs(owner.tenant, 150)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE generation_job")

    small = operator.get("/admin/generation/job/", {"tier": "flash"})
    large = operator.get("/admin/generation/job/")

    assert small.context["cl"].result_count == 0
    paginator = large.context["cl"].paginator
    assert len(_listed(large)) == 100
    if connection.vendor == "postgresql":
        assert paginator.count_is_estimate
        assert 100 <= paginator.count <= 300  # the planner's figure, near 150
    else:
        assert not paginator.count_is_estimate
        assert paginator.count == 150


def test_changelist_counts_are_shown_with_thousands_separators(
    operator: Client, owner: Actor
) -> None:
    _jobs(owner.tenant, 1234, prompt="a red fox")

    jobs = operator.get("/admin/generation/job/").content.decode()
    images = operator.get("/admin/generation/image/").content.decode()
    search = operator.get("/admin/generation/job/", {"q": "red fox"}).content.decode()

    assert "1,234 jobs" in jobs and "1234 jobs" not in jobs
    assert "Select all 1,234 jobs" in jobs and "All 1,234 selected" in jobs
    assert "1,234 images" in images
    assert "1,234 results" in search


def test_an_estimated_count_says_about_and_has_separators_on_postgresql(
    operator: Client, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paging, "EXACT_UP_TO", 20)
    _jobs(owner.tenant, 1100)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE generation_job")

    response = operator.get("/admin/generation/job/")

    page = response.content.decode()
    count = response.context["cl"].paginator.count
    if connection.vendor == "postgresql":
        assert f"about {count:,} jobs" in page
    else:
        assert "1,100 jobs" in page and "about" not in page
