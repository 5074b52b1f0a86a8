"""The "up to" estimate is a true upper bound: no image is ever billed above it.

Jobs run through the Gemini emulator, whose usage figures include 3 Pro's thinking tokens
and any text part it adds; the bound is checked job by job and image by image.
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from PIL import Image as PILImage

from billing.models import UsageEvent
from billing.pricing import cost_of, estimate_image_cost, price_for
from core.catalog import MODELS, TokenUsage
from generation.models import Job
from generation.providers import gemini
from generation.providers.types import ImageRequest
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator

GENERATIONS = "/api/v1/generations"


def _upload(actor: Actor, size: tuple[int, int] = (96, 64)) -> str:
    out = io.BytesIO()
    PILImage.new("RGB", size, (200, 40, 90)).save(out, format="PNG")
    out.seek(0)
    out.name = "ref.png"
    response = actor.api().post("/api/v1/images", {"file": out}, format="multipart")
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


def _submit(actor: Actor, **body: Any) -> dict[str, Any]:
    response = actor.api().post(GENERATIONS, body, format="json", HTTP_PREFER="wait=30")
    assert response.status_code in (200, 202), response.content
    job = dict(response.json())
    assert job["status"] == "succeeded", job
    return job


CASES = [
    # model, ratio, size, count, input images, prompt
    ("pro", "16:9", "1K", 6, 0, "a lighthouse at dusk, long exposure"),
    ("pro", "9:16", "4K", 2, 3, "the same bottle on a marble table"),
    ("pro", "21:9", "2K", 1, 14, "ünïcödé prompt — 日本語のバナー"),
    ("flash", "1:8", "512", 3, 0, "a tall banner"),
    ("flash", "4:1", "4K", 2, 2, "a wide hero image"),
    ("lite", "1:1", "1K", 8, 0, "an avatar"),
    ("lite", "8:1", "1K", 1, 5, "x" * 2000),
]


@pytest.mark.parametrize(("tier", "ratio", "size", "count", "inputs", "prompt"), CASES)
def test_no_job_is_billed_above_its_up_to_estimate(
    inline_worker: GeminiEmulator,
    owner: Actor,
    tier: str,
    ratio: str,
    size: str,
    count: int,
    inputs: int,
    prompt: str,
) -> None:
    input_ids = [_upload(owner) for _ in range(inputs)]
    job = _submit(
        owner,
        prompt=prompt,
        model=tier,
        aspect_ratio=ratio,
        image_size=size,
        count=count,
        input_images=input_ids,
    )

    estimate = Job.objects.get(pk=job["id"]).estimated_cost
    events = list(UsageEvent.objects.filter(job_id=job["id"]))
    assert len(events) == count
    if tier == "pro":
        assert all(event.thoughts_tokens > 0 for event in events)
    per_image = estimate / count
    assert all(event.billed <= per_image for event in events)
    assert sum(event.billed for event in events) <= estimate
    assert Decimal(job["actual_cost"]) <= estimate


def test_an_edit_with_a_text_answer_stays_under_its_estimate(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    original = _submit(owner, prompt="a red bicycle", model="pro")
    image_id = original["images"][0]["id"]
    response = owner.api().post(
        f"/api/v1/images/{image_id}/edits",
        {"instruction": "make it blue", "model": "pro", "count": 2},
        format="json",
        HTTP_PREFER="wait=30",
    )
    assert response.status_code in (200, 202), response.content
    edit = response.json()

    assert edit["status"] == "succeeded"
    assert Decimal(edit["actual_cost"]) <= Decimal(edit["estimated_cost"])


@pytest.mark.parametrize("mode", ["standard", "batch"])
@pytest.mark.parametrize("tier", list(MODELS))
def test_the_estimate_covers_the_most_output_the_request_allows(
    db: None, tier: str, mode: str
) -> None:
    """Whatever the model spends its output cap on (thinking, text), the cost stays under
    the estimate: the image's tokens are fixed by its size, the rest is text-priced."""
    spec = MODELS[tier]
    price = price_for(model=spec.model_id, mode=mode)
    for size in spec.image_sizes:
        estimate = estimate_image_cost(
            tier=tier, mode=mode, image_size=size, prompt="ab", input_images=1, markup=Decimal(0)
        ).billed
        spare = spec.max_output_tokens(size) - spec.image_tokens[size]
        for thoughts in (0, spare // 2, spare):
            worst = TokenUsage(
                input_text_tokens=1,
                input_image_tokens=spec.input_image_tokens,
                output_image_tokens=spec.image_tokens[size],
                output_text_tokens=spare - thoughts,
                thoughts_tokens=thoughts,
            )
            assert cost_of(usage=worst, price=price, markup=Decimal(0)).billed <= estimate


def test_image_page_shows_the_thinking_tokens_it_was_billed_for(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    job = _submit(owner, prompt="a red bicycle", model="pro")
    event = UsageEvent.objects.get(job_id=job["id"])
    client = Client()
    client.force_login(owner.user)

    page = client.get(f"/images/{job['images'][0]['id']}/").content.decode()

    assert event.thoughts_tokens == 258
    assert "1,120 out · 258 thinking" in page


def test_every_request_caps_its_output_at_the_estimates_bound() -> None:
    for tier, spec in MODELS.items():
        for size in spec.image_sizes:
            request = ImageRequest(tier=tier, prompt="p", aspect_ratio="1:1", image_size=size)
            _, _, config = gemini._prepare(request)
            assert config.max_output_tokens == spec.max_output_tokens(size)
