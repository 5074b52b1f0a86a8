"""Virtual try-on: the `tryon` kind (a product image, then a person), from the API and as a
catalogue batch from a template × rows."""

from __future__ import annotations

import hashlib

from django.test import Client

from generation.models import Job
from generation.presets import PRESETS
from tenants.services import api_key_create
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator
from tests.series.conftest import emulator_calls, upload

GENERATIONS = "/api/v1/generations"


def test_a_tryon_job_sends_the_product_then_the_person_at_3_4_with_the_preset(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    product, person = upload(owner, (240, 200, 10)), upload(owner, (90, 60, 40))
    body = {"kind": "tryon", "prompt": "standing", "input_images": [product["id"], person["id"]]}
    job = owner.api().post(GENERATIONS, body, format="json").json()
    done = owner.api().get(f"{GENERATIONS}/{job['id']}").json()
    assert (done["status"], done["aspect_ratio"]) == ("succeeded", "3:4")
    assert (done["images"][0]["width"], done["images"][0]["height"]) == (896, 1200)
    (call,) = emulator_calls(inline_worker)
    assert call["inputs"] == [product["sha256"], person["sha256"]]
    row = Job.objects.get(pk=job["id"])
    assert row.model_prompt == PRESETS["tryon"].render("standing")
    assert "Keep the product exactly as it is" in row.model_prompt


def test_a_tryon_without_both_images_is_refused(owner: Actor) -> None:
    product = upload(owner, (1, 1, 1))
    answer = owner.api().post(
        GENERATIONS,
        {"kind": "tryon", "prompt": "x", "input_images": [product["id"]]},
        format="json",
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "tryon_needs_images"


def test_a_tryon_batch_puts_one_product_on_five_models(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    product = upload(owner, (200, 20, 20))
    models = [upload(owner, (20, 20 + 40 * i, 200)) for i in range(5)]
    template = owner.api().post(
        "/api/v1/templates", {"name": "Catalogue", "text": "{pose}, studio backdrop"},
        format="json",
    ).json()  # fmt: skip
    body = {
        "template": template["id"],
        "mode": "realtime",
        "kind": "tryon",
        "product_image": product["id"],
        "rows": [{"pose": f"pose {i}", "model_image": m["id"]} for i, m in enumerate(models)],
    }
    answer = owner.api().post("/api/v1/batches", body, format="json")
    assert answer.status_code == 202, answer.content
    batch = owner.api().get(f"/api/v1/batches/{answer.json()['id']}").json()
    assert batch["status"] == "succeeded" and batch["total_items"] == 5
    jobs = Job.objects.filter(batch_id=batch["id"])
    # Each item's call got the product, then its row's model (calls matched by prompt).
    sent = {c["prompt_sha256"]: c["inputs"] for c in emulator_calls(inline_worker)}
    by_pose = {
        j.prompt.split(",")[0]: sent[hashlib.sha256(j.model_prompt.encode()).hexdigest()]
        for j in jobs
    }
    assert by_pose == {f"pose {i}": [product["sha256"], m["sha256"]] for i, m in enumerate(models)}
    assert {(j.kind, j.aspect_ratio, j.status) for j in jobs} == {("tryon", "3:4", "succeeded")}


def test_a_tryon_batch_row_without_a_model_image_is_refused_naming_the_row(owner: Actor) -> None:
    product = upload(owner, (5, 5, 5))
    template = (
        owner.api().post("/api/v1/templates", {"name": "C", "text": "{pose}"}, format="json").json()
    )
    body = {
        "template": template["id"],
        "mode": "realtime",
        "kind": "tryon",
        "product_image": product["id"],
        "rows": [{"pose": "a", "model_image": product["id"]}, {"pose": "b"}],
    }
    answer = owner.api().post("/api/v1/batches", body, format="json")
    assert answer.status_code == 400
    assert list(answer.json()["error"]["fields"]) == ["rows[1]"]


def test_the_dashboards_generate_page_offers_the_tryon_kind(owner: Actor) -> None:
    browser = Client()
    browser.force_login(owner.user)
    page = browser.get("/generate/").content.decode()
    assert 'value="tryon"' in page and "Virtual try-on" in page


def test_series_routes_follow_the_role_map(member: Actor, owner: Actor) -> None:
    reader = api_key_create(tenant=owner.tenant, name="reader", scopes=["read"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {reader.plaintext}")
    assert client.get("/api/v1/series").status_code == 200
    refused = client.post(
        "/api/v1/series", {"frames": [{"prompt": "x"}]}, content_type="application/json"
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    made = member.api().post("/api/v1/series", {"frames": [{"prompt": "x"}]}, format="json")
    assert made.status_code == 202  # members generate, so they run storyboards
