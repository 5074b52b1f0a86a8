"""bench.reads serves API reads as the web process does: a view with a sync form (the
job list) runs that form, not its async wrapper (which closes the connection per step)."""

from __future__ import annotations

import pytest
from django.urls import resolve
from rest_framework.test import APIClient

from bench.reads import served_as_in_production
from tests.plugins.actors import Actor

pytestmark = pytest.mark.django_db


def test_the_job_list_is_served_by_its_sync_view(owner: Actor) -> None:
    handler = served_as_in_production()
    api = APIClient()
    api.handler = handler
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.key}")
    wrapped = resolve("/api/v1/generations").func
    assert getattr(wrapped, "sync_view", None) is not None  # the async view has a sync form
    seen = []
    original = handler.resolve_request

    def noting(request: object) -> object:
        match = original(request)
        seen.append(match.func)
        return match

    handler.resolve_request = noting  # type: ignore[method-assign]

    response = api.get("/api/v1/generations")

    assert response.status_code == 200 and response.json()["results"] == []
    assert seen == [wrapped.sync_view]
