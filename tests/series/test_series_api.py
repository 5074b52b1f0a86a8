"""Series through the API with jobs run inline against the emulator: order, inputs, markers,
limits, estimates, retries, regeneration, idempotency, lists, results and webhooks."""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal
from typing import Any

import pytest
from django_q.conf import Conf
from PIL import Image as PILImage

from billing.models import UsageEvent
from billing.pricing import estimate_image_cost
from core.money import usd
from emulators.gemini import markers  # the emulator's own reading of its markers
from generation import tasks as generation_tasks
from generation.models import Image, Job
from generation.services import InvalidRequest
from generation.signals import job_finished
from series import tasks as series_tasks
from series.models import Series
from series.progress import on_job_finished
from series.services import FrameSpec, SeriesSpec, series_submit
from tests.generation.test_waits_and_events import parse_events, read_stream
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator
from tests.series.conftest import SERIES, emulator_calls, frames, get_series, submit, upload
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_create


def _stored(image_id: str) -> Image:
    return Image.objects.get(pk=image_id)


def _marker(image_id: str) -> markers.Marker | None:
    with _stored(image_id).file.open("rb") as fh:
        return markers.read_marker(fh.read())


def test_a_chained_series_sends_each_frame_the_references_then_the_frame_before(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    refs = [upload(owner, (200, 30, 30)), upload(owner, (30, 30, 200))]
    body = submit(owner, consistency="both", references=[r["id"] for r in refs], frames=frames(4))
    done = get_series(owner, body["id"])
    assert done["status"] == "succeeded"
    assert [f["status"] for f in done["frames"]] == ["succeeded"] * 4
    calls = [c for c in emulator_calls(inline_worker) if "the fox in scene" in c["prompt"]]
    assert [c["prompt"][-1] for c in calls] == ["0", "1", "2", "3"]
    made = [f["image"]["sha256"] for f in done["frames"]]
    ref_digests = [r["sha256"] for r in refs]
    assert calls[0]["inputs"] == ref_digests
    for k in range(1, 4):
        assert calls[k]["inputs"] == [*ref_digests, made[k - 1]]


def test_frames_carry_the_reference_marker_and_show_the_previous_frames(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    ref = upload(owner, (10, 160, 90))
    chained = get_series(
        owner, submit(owner, consistency="both", references=[ref["id"]], frames=frames(3))["id"]
    )
    alone = get_series(owner, submit(owner, consistency="chain", frames=frames(1, "no refs"))["id"])
    drawn = [_marker(f["image"]["id"]) for f in chained["frames"]]
    assert drawn[0] is not None and len(set(drawn)) == 1  # one character throughout
    assert _marker(alone["frames"][0]["image"]["id"]) is None  # no references, no marker
    # Visibly: the badge's monogram square is the marker's first colour, and a chained frame
    # shows the previous frame's badge top right.
    with _stored(chained["frames"][2]["image"]["id"]).file.open("rb") as fh:
        picture = PILImage.open(io.BytesIO(fh.read())).convert("RGB")
    own_box, previous_box = markers.badge_boxes(*picture.size)
    size = own_box[3] - own_box[1]
    inset = size // 5
    assert picture.getpixel((own_box[0] + inset, own_box[1] + inset)) == drawn[0].palette[0]
    assert (
        picture.getpixel((previous_box[0] + inset, previous_box[1] + inset))
        == (drawn[1].palette[0])
    )
    with _stored(chained["frames"][0]["image"]["id"]).file.open("rb") as fh:
        first = PILImage.open(io.BytesIO(fh.read())).convert("RGB")
    assert (
        first.getpixel((previous_box[0] + inset, previous_box[1] + inset)) != (drawn[0].palette[0])
    )  # the first frame has no frame before it


def test_a_failed_frame_is_retried_without_running_the_earlier_frames_again(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    ref = upload(owner, (90, 90, 20))
    plan = frames(4)
    plan[2]["prompt"] = "the fox in scene 2 [[fail:400x1]]"
    body = get_series(
        owner, submit(owner, consistency="both", references=[ref["id"]], frames=plan)["id"]
    )
    assert body["status"] == "succeeded"
    third = body["frames"][2]
    assert [(v["cause"], v["status"]) for v in third["versions"]] == [
        ("initial", "failed"),
        ("retry", "succeeded"),
    ]
    calls = [c["prompt"][:18] for c in emulator_calls(inline_worker) if "fox" in c["prompt"]]
    assert calls == ["the fox in scene 0", "the fox in scene 1", "the fox in scene 2",
                     "the fox in scene 2", "the fox in scene 3"]  # fmt: skip
    assert [len(f["versions"]) for f in body["frames"]] == [1, 1, 2, 1]


def test_a_frame_that_keeps_failing_fails_the_series_naming_it_and_skips_the_rest(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    plan = frames(3)
    plan[1]["prompt"] = "scene [[safety]]"
    body = get_series(owner, submit(owner, consistency="chain", frames=plan)["id"])
    assert body["status"] == "failed"
    assert body["error"]["code"] == "image_refused" or body["error"]["code"]
    assert "Frame 1 failed after 2 attempt(s)" in body["error"]["message"]
    assert [f["status"] for f in body["frames"]] == ["succeeded", "failed", "skipped"]
    assert Job.objects.filter(frame_version__frame__series_id=body["id"]).count() == 3


def test_a_frame_over_the_models_input_limits_is_refused_at_submit_naming_it(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    refs = [upload(owner, (i * 15, 100, 100))["id"] for i in range(14)]
    refused = submit(owner, 400, consistency="both", references=refs, frames=frames(3))
    error = refused["error"]
    assert error["code"] == "too_many_input_images"
    assert "Frame 1 (frames[1])" in error["message"] and "15 input images" in error["message"]
    assert list(error["fields"]) == ["frames[1]"]
    # The same references without the chain fit: 14 images a call.
    assert submit(owner, consistency="references", references=refs, frames=frames(1))
    assert Series.objects.count() == 1 and Job.objects.count() == 1


def test_a_frame_over_the_token_limit_is_refused_naming_it(owner: Actor) -> None:
    # Through the API a prompt is at most 8,000 characters, so 14 images and the longest
    # prompt (8,000 four-byte characters: 32,016 tokens at most) stay within 65,536 …
    wide = "🦊" * 8000
    body = submit(owner, consistency="chain", frames=[{"prompt": "a"}, {"prompt": wide}])
    assert body["frames"][1]["prompt"] == wide
    refused = submit(owner, 400, frames=[{"prompt": "a"}, {"prompt": "b" * 8001}])
    assert list(refused["error"]["fields"]["frames"]) == ["1"]  # the frame, by its index
    # … and the service, which the dashboard calls too, checks the bound itself first.
    spec = SeriesSpec(frames=(FrameSpec("a"), FrameSpec("🦊" * 17_000)), consistency="chain")
    with pytest.raises(InvalidRequest) as refusal:
        series_submit(tenant=owner.tenant, spec=spec)
    assert refusal.value.code == "input_tokens_exceeded"
    assert refusal.value.fields == {"frames[1]": [refusal.value.message]}
    assert (
        "Frame 1 (frames[1])" in refusal.value.message and "69,136 tokens" in refusal.value.message
    )
    assert Series.objects.count() == 1


def test_the_estimate_is_frames_times_each_frames_estimate_with_its_input_images(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    ref = upload(owner, (1, 2, 3))
    body = submit(owner, consistency="both", references=[ref["id"]], frames=frames(3))
    markup = owner.tenant.plan.markup_per_image
    per = [
        estimate_image_cost(
            tier="lite", mode="standard", image_size="1K", prompt=f"the fox in scene {i}",
            input_images=1 if i == 0 else 2, markup=markup,
        ).billed
        for i in range(3)
    ]  # fmt: skip
    assert body["estimated_cost"] == usd(sum(per))
    price = body["price"]
    assert set(price) == {"model", "mode", "provider_per_image", "markup_per_image",
                          "per_image", "discount"}  # fmt: skip
    assert (price["model"], price["mode"]) == ("lite", "standard")
    assert price["per_image"] == usd(per[2])
    # Two input images at 1,120 tokens and $0.25 per million on top of the image itself.
    no_inputs = estimate_image_cost(
        tier="lite", mode="standard", image_size="1K", prompt="the fox in scene 2",
        input_images=0, markup=markup,
    ).billed  # fmt: skip
    assert per[2] - no_inputs == Decimal("0.00056")


def test_regenerating_a_frame_with_cascade_re_runs_it_and_the_frames_after_keeping_versions(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    ref = upload(owner, (50, 50, 50))
    first = get_series(
        owner, submit(owner, consistency="both", references=[ref["id"]], frames=frames(4))["id"]
    )
    url = f"{SERIES}/{first['id']}/frames/1/regenerate"
    answer = owner.api().post(url, {"prompt": "the fox at dusk", "cascade": True}, format="json")
    assert answer.status_code in (200, 202), answer.content
    after = get_series(owner, first["id"])
    assert after["status"] == "succeeded"
    assert [len(f["versions"]) for f in after["frames"]] == [1, 2, 2, 2]
    assert [v["cause"] for v in after["frames"][2]["versions"]] == ["initial", "cascade"]
    assert after["frames"][1]["prompt"] == "the fox at dusk"
    # The new frame 2 was chained from the new frame 1; the old versions are still there.
    new_one = after["frames"][1]["image"]
    new_two_inputs = after["frames"][2]["versions"][1]["input_image_ids"]
    assert new_two_inputs == [ref["id"], new_one["id"]]
    assert after["frames"][1]["versions"][0]["image_id"] == first["frames"][1]["image"]["id"]
    # Without cascade only the frame itself.
    owner.api().post(f"{SERIES}/{first['id']}/frames/3/regenerate", {}, format="json")
    assert [len(f["versions"]) for f in get_series(owner, first["id"])["frames"]] == [1, 2, 2, 3]


def test_regenerate_while_running_or_of_a_missing_frame_is_refused(owner: Actor) -> None:
    body = submit(owner, frames=frames(2))  # no worker: its first frame stays queued
    url = f"{SERIES}/{body['id']}/frames/0/regenerate"
    assert owner.api().post(url, {}, format="json").status_code == 409
    owner.api().post(f"{SERIES}/{body['id']}/cancel")
    missing = owner.api().post(f"{SERIES}/{body['id']}/frames/7/regenerate", {}, format="json")
    assert missing.status_code == 404
    bad = owner.api().post(url, {"cascade": "maybe"}, format="json")
    assert bad.status_code == 400


def test_an_idempotency_key_replays_the_series_and_refuses_another_body(owner: Actor) -> None:
    headers = {"HTTP_IDEMPOTENCY_KEY": "storyboard-1"}
    first = owner.api().post(SERIES, {"frames": frames(2)}, format="json", **headers)
    again = owner.api().post(SERIES, {"frames": frames(2)}, format="json", **headers)
    other = owner.api().post(SERIES, {"frames": frames(3)}, format="json", **headers)
    assert first.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert Series.objects.count() == 1


def test_the_list_pages_newest_first_filters_by_status_and_shows_only_the_tenants(
    owner: Actor, outsider: Actor
) -> None:
    made = [submit(owner, frames=frames(1))["id"] for _ in range(3)]
    submit(outsider, frames=frames(1))
    page = owner.api().get(SERIES, {"limit": 2}).json()
    assert [s["id"] for s in page["results"]] == made[::-1][:2]
    rest = owner.api().get(page["next"]).json()
    assert [s["id"] for s in rest["results"]] == made[:1]
    owner.api().post(f"{SERIES}/{made[0]}/cancel")
    canceled = owner.api().get(SERIES, {"status": "canceled"}).json()["results"]
    assert [s["id"] for s in canceled] == [made[0]]
    assert owner.api().get(SERIES, {"status": "done"}).status_code == 400
    assert outsider.api().get(f"{SERIES}/{made[0]}").status_code == 404


def test_cancel_of_a_waiting_series_stops_it_and_bills_nothing(owner: Actor) -> None:
    body = submit(owner, frames=frames(3))
    answer = owner.api().post(f"{SERIES}/{body['id']}/cancel")
    assert answer.status_code == 200 and answer.json()["status"] == "canceled"
    assert [f["status"] for f in answer.json()["frames"]] == ["canceled"] * 3
    assert owner.api().post(f"{SERIES}/{body['id']}/cancel").status_code == 409
    assert UsageEvent.objects.count() == 0


def test_results_zip_holds_each_frames_current_image_in_frame_order(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    body = get_series(owner, submit(owner, consistency="chain", frames=frames(3))["id"])
    answer = owner.api().get(f"{SERIES}/{body['id']}/results.zip")
    assert answer.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(answer.streaming_content)))
    names = [n for n in archive.namelist() if n.startswith("frames/")]
    assert names == ["frames/000.png", "frames/001.png", "frames/002.png"]
    for i, name in enumerate(names):
        assert archive.read(name) == _stored(body["frames"][i]["image"]["id"]).file.read()
    assert archive.read("manifest.csv").decode().splitlines()[0].startswith("frame,version")


def _events(owner: Actor) -> list[tuple[str, dict[str, Any]]]:
    deliveries = WebhookDelivery.objects.filter(endpoint__tenant=owner.tenant)
    return [(d.event_type, d.payload["data"]) for d in deliveries.order_by("created_at")]


def test_webhooks_say_series_completed_and_series_failed_with_the_series(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    endpoint_create(
        tenant=owner.tenant, url="https://93.184.215.14/hook",
        event_types=["series.completed", "series.failed"],
    )  # fmt: skip
    ok = submit(owner, frames=frames(2))["id"]
    bad = submit(owner, frame_attempts=1, frames=[{"prompt": "x [[block]]"}])["id"]
    events = _events(owner)
    assert [(kind, data["series"]["id"], data["series"]["status"]) for kind, data in events] == [
        ("series.completed", ok, "succeeded"),
        ("series.failed", bad, "failed"),
    ]
    assert events[0][1]["series"]["frames"][1]["image"] is not None


def test_the_event_stream_reports_each_frame_then_done(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    body = submit(owner, consistency="chain", frames=frames(2))
    status, content_type, raw = read_stream(owner, f"{SERIES}/{body['id']}/events")
    events = parse_events(raw)
    assert (status, content_type) == (200, "text/event-stream")
    kinds = [e["event"] for e in events if "event" in e]
    assert kinds[-1] == "done" and "progress" in kinds
    progress = next(e for e in events if e.get("event") == "progress")
    assert progress["data"]["frames"] == ["succeeded", "succeeded"]
    again = read_stream(owner, f"{SERIES}/{body['id']}/events", **{"Last-Event-ID": "end"})
    assert again[0] == 204


def test_fifty_frames_run_and_each_frame_keeps_its_own_aspect_ratio(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    plan = frames(50)
    plan[7]["aspect_ratio"] = "16:9"
    body = get_series(owner, submit(owner, consistency="chain", frames=plan)["id"])
    assert body["progress"]["succeeded"] == 50
    sizes = {(f["image"]["width"], f["image"]["height"]) for f in body["frames"]}
    assert body["frames"][7]["image"]["width"] == 1376 and sizes == {(1024, 1024), (1376, 768)}


def test_the_scheduled_pass_moves_on_a_series_whose_frames_news_was_lost(
    inline_worker: GeminiEmulator, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)  # no worker: the test runs the jobs
    body = submit(owner, consistency="chain", frames=frames(2))
    job_finished.disconnect(dispatch_uid="series.progress")  # the news is lost
    try:
        (first,) = Job.objects.filter(status="queued")
        generation_tasks.run_job(str(first.pk))
    finally:
        job_finished.connect(on_job_finished, dispatch_uid="series.progress")
    assert get_series(owner, body["id"])["progress"]["frames"] == ["succeeded", "waiting"]
    series_tasks.advance()
    assert get_series(owner, body["id"])["progress"]["frames"] == ["succeeded", "queued"]
