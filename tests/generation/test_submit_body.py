"""The 202 answer to a submit is built without DRF's serializer (it was a fifth of the
submit path's CPU); it must stay exactly what GET shows for the same job."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image as PILImage

from tests.plugins.actors import Actor

GENERATIONS = "/api/v1/generations"


def _upload(actor: Actor) -> str:
    out = io.BytesIO()
    PILImage.new("RGB", (32, 32), (200, 30, 30)).save(out, format="PNG")
    response = actor.api().post(
        "/api/v1/images", {"file": io.BytesIO(out.getvalue())}, format="multipart"
    )
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


def _without_queue(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "queue"}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"kind": "banner", "count": 3, "aspect_ratio": "21:9", "metadata": {"sku": "A-1"}},
        {"model": "flash", "metadata": {"empty": "", "unicode": "größe 🎨"}},
    ],
)
def test_the_202_body_is_the_job_as_get_shows_it(
    owner: Actor, django_capture_on_commit_callbacks: Any, extra: dict[str, Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=False):  # no worker: the job stays queued
        posted = owner.api().post(GENERATIONS, {"prompt": "summer sale", **extra}, format="json")
    assert posted.status_code == 202, posted.content

    fetched = owner.api().get(posted["Location"])

    assert _without_queue(posted.json()) == _without_queue(fetched.json())
    # Where it stands costs queries the submit path does not spend: the 202 says null.
    assert posted.json()["queue"] is None
    assert fetched.json()["queue"]["position"] == 0


def test_the_202_body_of_a_job_with_inputs_and_a_parent_is_the_job_as_get_shows_it(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    source, reference = _upload(owner), _upload(owner)
    with django_capture_on_commit_callbacks(execute=False):
        posted = owner.api().post(
            f"/api/v1/images/{source}/edits",
            {"instruction": "make it blue", "input_images": [reference]},
            format="json",
        )
    assert posted.status_code == 202, posted.content
    body = posted.json()
    assert body["parent_image_id"] == source
    assert body["input_image_ids"] == [source, reference]

    assert _without_queue(body) == _without_queue(owner.api().get(posted["Location"]).json())
