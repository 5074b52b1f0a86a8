"""Input the API does not understand is refused, naming what was wrong, never ignored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugins.actors import Actor, assert_error
from webhooks.services import endpoint_create

GENERATIONS = "/api/v1/generations"


def test_an_unknown_body_field_is_refused_naming_it_with_a_suggestion(owner: Actor) -> None:
    response = owner.api().post(
        GENERATIONS, {"prompt": "x", "aspect_ration": "16:9"}, format="json"
    )
    error = assert_error(response, 400, "validation_error")
    assert list(error["fields"]) == ["aspect_ration"]
    assert "Did you mean `aspect_ratio`?" in error["fields"]["aspect_ration"][0]
    assert "aspect_ration" in error["message"]


def test_an_unknown_field_of_a_batch_item_is_refused(owner: Actor) -> None:
    body = {"mode": "realtime", "items": [{"prompt": "a"}, {"prompt": "b", "colour": "red"}]}
    error = assert_error(
        owner.api().post("/api/v1/batches", body, format="json"), 400, "validation_error"
    )
    assert error["fields"]["items"]["1"]["colour"][0].startswith("Unknown field.")


def test_a_secret_in_a_webhook_patch_is_refused_not_ignored(owner: Actor) -> None:
    endpoint, _ = endpoint_create(
        tenant=owner.tenant, url="https://example.com/hook", event_types=[]
    )
    response = owner.api().patch(
        f"/api/v1/webhook-endpoints/{endpoint.pk}", {"secret": "whsec_mine"}, format="json"
    )
    error = assert_error(response, 400, "validation_error")
    assert list(error["fields"]) == ["secret"]


def test_metadata_on_an_edit_is_refused(owner: Actor) -> None:
    response = owner.api().post(
        "/api/v1/images/00000000-0000-0000-0000-000000000000/edits",
        {"instruction": "bluer", "metadata": {"a": "b"}},
        format="json",
    )
    # The image lookup comes first: another tenant's or a missing image stays a 404.
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "path", [GENERATIONS, "/api/v1/batches", "/api/v1/webhook-endpoints", "/api/v1/templates"]
)
@pytest.mark.parametrize("limit", ["abc", "0", "-1", "1.5", ""])
def test_a_bad_limit_is_a_400_saying_the_range(owner: Actor, path: str, limit: str) -> None:
    if limit == "":
        assert owner.api().get(path, {"limit": limit}).status_code == 400
        return
    error = assert_error(owner.api().get(path, {"limit": limit}), 400, "invalid_limit")
    assert "1 or more" in error["message"]


def test_the_largest_page_is_accepted(owner: Actor) -> None:
    assert owner.api().get(GENERATIONS, {"limit": "200"}).status_code == 200


def test_a_garbage_cursor_is_a_400_not_a_404(owner: Actor) -> None:
    assert_error(owner.api().get(GENERATIONS, {"cursor": "garbage"}), 400, "invalid_cursor")


@pytest.mark.parametrize(("name", "value"), [("status", "bogus"), ("kind", "poster")])
def test_an_unknown_filter_value_is_a_400_listing_the_choices(
    owner: Actor, name: str, value: str
) -> None:
    error = assert_error(owner.api().get(GENERATIONS, {name: value}), 400, "invalid_filter")
    assert list(error["fields"]) == [name]


def test_known_filter_values_still_filter(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        owner.api().post(GENERATIONS, {"prompt": "x"}, format="json")
    assert len(owner.api().get(GENERATIONS, {"status": "queued"}).json()["results"]) == 1
    assert owner.api().get(GENERATIONS, {"status": "succeeded"}).json()["results"] == []
