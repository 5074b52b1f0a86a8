"""Edit conversations: every turn sends the whole history, thought signatures verbatim;
the estimate grows with it; the model's input limit is a clear 400 before any call."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from PIL import Image as PILImage

from billing.models import UsageEvent
from generation.conversations import history as hist
from generation.models import Conversation, ConversationTurn, Image, Job
from tests.plugins.actors import Actor, assert_error, make_actor
from tests.plugins.cluster import Cluster
from tests.plugins.gemini import GeminiEmulator

INPUT_PRICE = {"lite": Decimal("0.25") / 1_000_000}


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def _upload(actor: Actor, colour: tuple[int, int, int] = (200, 40, 40)) -> dict[str, Any]:
    response = actor.api().post(
        "/api/v1/images", {"file": io.BytesIO(_png(colour))}, format="multipart"
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


def _start(actor: Actor, image_id: str, **body: Any) -> dict[str, Any]:
    response = actor.api().post(f"/api/v1/images/{image_id}/conversations", body, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


def _turn(actor: Actor, conversation_id: str, prompt: str, **headers: str) -> Any:
    return actor.api().post(
        f"/api/v1/conversations/{conversation_id}/turns",
        {"prompt": prompt},
        format="json",
        HTTP_PREFER="wait=30",
        **headers,
    )


def _wire(value: Any) -> Any:
    """Contents as the wire allows them to be spelled: keys in camelCase, base64 as bytes
    (the SDK writes URL-safe base64, Google standard), so that equal means verbatim."""
    if isinstance(value, list):
        return [_wire(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        camel = "".join(w.capitalize() if i else w for i, w in enumerate(key.split("_")))
        if camel == "thoughtSignature":
            text = item.replace("-", "+").replace("_", "/")
            item = base64.b64decode(text + "=" * (-len(text) % 4)).hex()
        out[camel] = _wire(item)
    return out


def _three_turns(owner: Actor, gemini: GeminiEmulator) -> tuple[dict[str, Any], list[Any]]:
    source = _upload(owner)
    conversation = _start(owner, source["id"])
    assert conversation["turns"] == [] and conversation["model"] == "lite"
    prompts = ["make it a poster", "now make it dusk", "now remove the logo"]
    answers = []
    for prompt in prompts:
        answer = _turn(owner, conversation["id"], prompt)
        assert answer.status_code == 200, answer.content
        assert answer.json()["status"] == "succeeded", answer.json()
        answers.append(answer.json())
    return source, answers


def _assert_history_sent_verbatim(source: dict[str, Any], gemini: GeminiEmulator) -> None:
    calls = gemini.requests()
    assert len(calls) == 3
    prompts = ["make it a poster", "now make it dusk", "now remove the logo"]
    # Turn 1: the source image and the first prompt.
    [first_user] = calls[0]["contents"]
    assert first_user["role"] == "user"
    blob = first_user["parts"][0]["inlineData"]
    assert blob["dataSha256"] == Image.objects.get(pk=source["id"]).sha256
    assert first_user["parts"][1] == {"text": prompts[0]}
    # Turn k + 1 sends turn k's contents, then the model's answer to it as the model sent
    # it (signatures on its parts included), then the new prompt.
    for k in (1, 2):
        sent, before, answer = (
            calls[k]["contents"],
            calls[k - 1]["contents"],
            calls[k - 1]["answer"],
        )
        assert _wire(sent[:-2]) == _wire(before)
        assert _wire(sent[-2]) == _wire(answer)
        assert sent[-1] == {"role": "user", "parts": [{"text": prompts[k]}]}
        images = [p for p in sent[-2]["parts"] if "inlineData" in _wire(p)]
        assert images and all("thoughtSignature" in _wire(p) for p in images)
    assert len(calls[2]["contents"]) == 5
    # Turn 2 was answered with text too (the history holds text): its first part's
    # signature went back with it.
    text_part = calls[2]["contents"][3]["parts"][0]
    assert "text" in text_part and "thoughtSignature" in _wire(text_part)


@pytest.mark.cluster
def test_three_turns_through_a_real_worker_send_the_history_with_signatures_verbatim(
    cluster_factory: Callable[..., Cluster], owner: Actor, gemini: GeminiEmulator
) -> None:
    cluster_factory()
    source, answers = _three_turns(owner, gemini)
    _assert_history_sent_verbatim(source, gemini)

    # Each turn's image is the next version of the one before it.
    images = [a["images"][0]["id"] for a in answers]
    parents = [str(Image.objects.get(pk=i).parent_id) for i in images]
    assert parents == [source["id"], images[0], images[1]]
    # And the stored image is the model's: the answer the emulator gave, byte for byte.
    last_answer = gemini.requests()[2]["answer"]
    image_part = next(p for p in last_answer["parts"] if "inlineData" in p)
    assert image_part["inlineData"]["dataSha256"] == Image.objects.get(pk=images[2]).sha256


def test_the_third_turns_estimate_and_bill_count_the_larger_input(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    source, answers = _three_turns(owner, inline_worker)
    _assert_history_sent_verbatim(source, inline_worker)
    estimates = [a["estimate"] for a in answers]

    # History before each turn: none; the source + turn 1 (2 images); + turn 2 (3 images).
    assert [e["history_images"] for e in estimates] == [0, 2, 3]
    assert (
        estimates[0]["input_tokens"] < estimates[1]["input_tokens"] < estimates[2]["input_tokens"]
    )
    assert estimates[2]["history_input_tokens"] == (estimates[2]["history_text_tokens"] + 3 * 1120)
    assert estimates[2]["input_tokens"] == (
        estimates[2]["history_input_tokens"] + estimates[2]["prompt_tokens"] + 16
    )  # + the 16 every estimate adds to a request
    # The growth is priced at the input price: what turn 3 adds over turn 2 is its extra
    # input tokens at $0.25 per million (the output bound is the same for both).
    grown = Decimal(estimates[2]["estimated_cost"]) - Decimal(estimates[1]["estimated_cost"])
    extra = estimates[2]["input_tokens"] - estimates[1]["input_tokens"]
    assert abs(grown - extra * INPUT_PRICE["lite"]) <= Decimal("0.000001")
    assert [a["job"]["estimated_cost"] for a in answers] == [e["estimated_cost"] for e in estimates]

    # Billed per turn from the model's usage: the third call's input holds three images.
    usage = [UsageEvent.objects.get(job_id=a["job"]["id"]) for a in answers]
    assert [u.input_image_tokens for u in usage] == [1120, 2240, 3360]
    assert all(
        u.billed <= Decimal(e["estimated_cost"]) for u, e in zip(usage, estimates, strict=True)
    )

    conversation = owner.api().get(answers[0]["links"]["conversation"]).json()
    assert [t["index"] for t in conversation["turns"]] == [1, 2, 3]
    assert [t["images"][0]["id"] for t in conversation["turns"]] == [
        a["images"][0]["id"] for a in answers
    ]
    upcoming = conversation["next_turn_estimate"]
    assert upcoming["history_images"] == 4
    assert upcoming["input_tokens"] > estimates[2]["input_tokens"] - estimates[2]["prompt_tokens"]
    assert Decimal(upcoming["estimated_cost"]) > Decimal(estimates[2]["estimated_cost"]) - Decimal(
        "0.001"
    )


def test_a_history_past_the_input_limit_is_refused_with_400_before_any_call(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    conversation = _start(owner, _upload(owner)["id"])
    prompt = "x" * 8000
    made = 0
    while True:
        answer = _turn(owner, conversation["id"], f"{made} {prompt}"[:8000])
        if answer.status_code != 200:
            break
        made += 1
        assert made < 10
    error = assert_error(answer, 400, "history_too_long")
    assert "65,536" in error["message"]
    body = owner.api().get(f"/api/v1/conversations/{conversation['id']}").json()
    assert body["next_turn_estimate"]["input_tokens"] + 8000 > 65_536
    assert made >= 6  # eight 8 KB prompts and their images do not fit; six do
    assert len(inline_worker.requests()) == made  # the refused turn called nothing
    assert Job.objects.filter(tenant=owner.tenant).count() == made
    assert len(body["turns"]) == made


def test_a_turn_while_the_last_one_runs_is_refused_with_409(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = _start(owner, _upload(owner)["id"])
    with django_capture_on_commit_callbacks(execute=False):
        first = owner.api().post(
            f"/api/v1/conversations/{conversation['id']}/turns", {"prompt": "a"}, format="json"
        )
        second = owner.api().post(
            f"/api/v1/conversations/{conversation['id']}/turns", {"prompt": "b"}, format="json"
        )
    assert first.status_code == 202 and first.json()["status"] == "queued"
    assert_error(second, 409, "turn_in_progress")
    assert ConversationTurn.objects.count() == 1


def test_a_turn_replayed_with_its_idempotency_key_is_the_same_turn(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = _start(owner, _upload(owner)["id"])
    url = f"/api/v1/conversations/{conversation['id']}/turns"
    with django_capture_on_commit_callbacks(execute=False):
        first = owner.api().post(url, {"prompt": "dusk"}, format="json", HTTP_IDEMPOTENCY_KEY="t1")
        again = owner.api().post(url, {"prompt": "dusk"}, format="json", HTTP_IDEMPOTENCY_KEY="t1")
        other = owner.api().post(url, {"prompt": "dawn"}, format="json", HTTP_IDEMPOTENCY_KEY="t1")
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert_error(other, 409, "idempotency_key_reused")
    assert Job.objects.count() == 1


def test_conversations_and_turns_are_listed_in_cursor_pages(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    image = _upload(owner)["id"]
    made = [_start(owner, image)["id"] for _ in range(3)]
    page = owner.api().get("/api/v1/conversations?limit=2").json()
    rest = owner.api().get(page["next"]).json()
    assert [c["id"] for c in page["results"] + rest["results"]] == made[::-1]
    with django_capture_on_commit_callbacks(execute=False):
        owner.api().post(f"/api/v1/conversations/{made[0]}/turns", {"prompt": "a"}, format="json")
    turns = owner.api().get(f"/api/v1/conversations/{made[0]}/turns").json()
    assert [t["index"] for t in turns["results"]] == [1]
    assert_error(owner.api().get("/api/v1/conversations?limit=abc"), 400, "invalid_limit")


def test_bad_turns_get_clear_400s(owner: Actor) -> None:
    conversation = _start(owner, _upload(owner)["id"])
    url = f"/api/v1/conversations/{conversation['id']}/turns"
    api = owner.api()
    assert_error(api.post(url, {"prompt": "  "}, format="json"), 400, "invalid_request")
    assert_error(api.post(url, {"prompt": "x" * 8001}, format="json"), 400, "validation_error")
    assert_error(api.post(url, {}, format="json"), 400, "validation_error")
    assert_error(api.post(url, {"prompt": "a", "extra": 1}, format="json"), 400, "validation_error")
    start = f"/api/v1/images/{conversation['image_id']}/conversations"
    assert_error(api.post(start, {"model": "ultra"}, format="json"), 400, "validation_error")
    assert ConversationTurn.objects.count() == 0


def test_another_tenant_gets_404_for_conversations_turns_and_starting_one(
    owner: Actor, outsider: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    image = _upload(owner)["id"]
    conversation = _start(owner, image)
    with django_capture_on_commit_callbacks(execute=False):
        turn = _turn(owner, conversation["id"], "dusk").json()
    theirs = outsider.api()
    base = f"/api/v1/conversations/{conversation['id']}"
    for response in (
        theirs.get(base),
        theirs.get(f"{base}/turns"),
        theirs.get(f"{base}/turns/{turn['id']}"),
        theirs.post(f"{base}/turns", {"prompt": "mine now"}, format="json"),
        theirs.post(f"/api/v1/images/{image}/conversations", {}, format="json"),
    ):
        assert_error(response, 404, "not_found")
    assert theirs.get("/api/v1/conversations").json()["results"] == []
    assert Conversation.objects.count() == 1 and ConversationTurn.objects.count() == 1


def test_members_converse_and_a_read_only_key_only_reads(
    owner: Actor, member: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    image = _upload(owner)["id"]
    # A member (role map: read + generate) starts a conversation and adds a turn, signed
    # in to the dashboard as through a key.
    from rest_framework.test import APIClient

    session = APIClient()
    session.force_login(member.user)
    started = session.post(f"/api/v1/images/{image}/conversations", {}, format="json")
    assert started.status_code == 201, started.content
    url = f"/api/v1/conversations/{started.json()['id']}/turns"
    with django_capture_on_commit_callbacks(execute=False):
        assert session.post(url, {"prompt": "dusk"}, format="json").status_code == 202
    # A viewer's key (`read` scope only) may read it, never add to it or start one.
    viewer = make_actor(owner.tenant, "viewer@acme.test", "member", scopes=["read"]).api()
    assert viewer.get(url).status_code == 200
    assert viewer.get(url.removesuffix("/turns")).status_code == 200
    assert_error(viewer.post(url, {"prompt": "x"}, format="json"), 403, "insufficient_scope")
    assert_error(
        viewer.post(f"/api/v1/images/{image}/conversations", {}, format="json"),
        403,
        "insufficient_scope",
    )
    assert ConversationTurn.objects.count() == 1


def test_a_failed_turn_adds_nothing_and_the_next_turn_goes_on_from_the_last_image(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    source = _upload(owner)
    conversation = _start(owner, source["id"])
    first = _turn(owner, conversation["id"], "make it a poster").json()
    refused = _turn(owner, conversation["id"], "now add [[safety]] flames").json()
    assert refused["status"] == "failed" and refused["job"]["error"]["code"] == "image_refused"
    assert refused["images"] == []
    third = _turn(owner, conversation["id"], "now make it dusk").json()
    assert third["status"] == "succeeded"

    # The refused turn is not in what the third sent: its history is turn 1 alone.
    calls = inline_worker.requests()
    assert [len(c["contents"]) for c in calls] == [1, 3, 3]
    assert calls[2]["contents"][:2] == calls[1]["contents"][:2]
    assert third["estimate"]["history_images"] == 2
    assert str(Image.objects.get(pk=third["images"][0]["id"]).parent_id) == first["images"][0]["id"]
    # Billed: the two images made, not the refusal.
    assert UsageEvent.objects.filter(tenant=owner.tenant).count() == 2

    # Stored once: the history names the stored images instead of copying their bytes.
    stored = Conversation.objects.get(pk=conversation["id"]).history
    assert [c["role"] for c in stored] == ["user", "model", "user", "model"]
    assert hist.image_ids(stored) == [
        source["id"],
        first["images"][0]["id"],
        third["images"][0]["id"],
    ]
    assert len(json.dumps(stored)) < 4000
