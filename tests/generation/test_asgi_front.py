"""The web's ASGI front (config/asgi_front.py), driven as uvicorn drives it: an ordinary
request runs whole in a pool thread; a submit with `Prefer: wait` runs there too, then
waits on the event loop for its job and is answered 200 when it finishes, or 202 with
`Location` at its deadline."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
import time
from typing import Any

from django.core.asgi import get_asgi_application
from PIL import Image as PILImage

from config.asgi_front import FrontApplication, SyncViewsHandler
from generation.streams import WAIT_GUARD_S, wait_answer
from tests.generation.test_waits_and_events import run_later, unsigned
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator

GENERATIONS = "/api/v1/generations"


def front() -> FrontApplication:
    return FrontApplication(
        get_asgi_application(), SyncViewsHandler(), threads=4, answer_wait=wait_answer
    )


async def _call(
    app: FrontApplication,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    leave_after_s: float | None = None,
) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "http.request", "body": body, "more_body": False})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if inbox.empty():
            if leave_after_s is None:
                await asyncio.sleep(3600)  # the client stays connected
            await asyncio.sleep(leave_after_s or 0)
            return {"type": "http.disconnect"}
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if not sent:
        return 0, {}, b""  # nothing was sent: the client had left
    start = sent[0]
    got = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], got, b"".join(m.get("body", b"") for m in sent[1:])


def call(
    method: str, path: str, actor: Actor, body: dict[str, Any] | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes, float]:
    sent = {"Authorization": f"Bearer {actor.key}", "Host": "testserver", **headers}
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        sent |= {"Content-Type": "application/json", "Content-Length": str(len(data))}
    started = time.monotonic()
    status, got, raw = asyncio.run(asyncio.wait_for(_call(front(), method, path, sent, data), 60))
    return status, got, raw, time.monotonic() - started


def test_an_ordinary_request_is_answered_whole_from_a_pool_thread(
    owner: Actor, transactional_db: None
) -> None:
    status, headers, raw, _ = call("GET", "/api/v1/me", owner)

    assert status == 200
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(raw)
    assert json.loads(raw) == owner.api().get("/api/v1/me").json()
    assert headers["x-request-id"].startswith("req_")


def test_a_header_spelled_with_underscores_does_not_pass_for_one_with_dashes(
    owner: Actor, transactional_db: None
) -> None:
    _, headers, _, _ = call("GET", "/api/v1/me", owner, **{"X_Request_Id": "spoofed-123456"})
    _, kept, _, _ = call("GET", "/api/v1/me", owner, **{"X-Request-Id": "client-123456"})

    assert headers["x-request-id"] != "spoofed-123456"
    assert kept["x-request-id"] == "client-123456"


def test_an_upload_is_read_whole_and_its_file_streams_back_unchanged(
    owner: Actor, transactional_db: None
) -> None:
    out = io.BytesIO()
    PILImage.new("RGB", (300, 200), "teal").save(out, format="PNG")
    png = out.getvalue()
    boundary = "bunch-front-test"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, _, raw = asyncio.run(
        _call(
            front(),
            "POST",
            "/api/v1/images",
            {
                "Authorization": f"Bearer {owner.key}",
                "Host": "testserver",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(form)),
            },
            form,
        )
    )
    assert status == 201, raw
    image_id = json.loads(raw)["id"]

    status, headers, content, _ = call("GET", f"/api/v1/images/{image_id}/content", owner)

    assert status == 200
    assert headers["content-type"] == "image/png"
    assert hashlib.sha256(content).hexdigest() == hashlib.sha256(png).hexdigest()


def test_a_submit_without_wait_is_answered_at_once_by_the_plain_view(
    queued_worker: GeminiEmulator,
    owner: Actor,
) -> None:
    status, headers, raw, took = call("POST", GENERATIONS, owner, {"prompt": "x"})

    assert status == 202
    assert headers["location"] == json.loads(raw)["links"]["self"]
    assert took < 5


def test_a_wait_through_the_front_is_answered_202_with_location_at_its_deadline(
    queued_worker: GeminiEmulator,
    owner: Actor,
) -> None:
    status, headers, raw, took = call("POST", GENERATIONS, owner, {"prompt": "x"}, Prefer="wait=2")

    body = json.loads(raw)
    assert status == 202
    assert body["status"] == "queued"
    assert headers["location"] == body["links"]["self"]
    assert headers["preference-applied"] == "wait=2"
    assert int(headers["content-length"]) == len(raw)
    assert 2.0 - WAIT_GUARD_S <= took < 3.0


def test_a_wait_through_the_front_is_woken_by_the_job_finishing(
    queued_worker: GeminiEmulator,
    owner: Actor,
    news: str,
) -> None:
    worker = run_later(delay_s=0.5)
    status, headers, raw, took = call(
        "POST", GENERATIONS, owner, {"prompt": "a fox"}, Prefer="wait=20"
    )
    worker.join(timeout=20)

    body = json.loads(raw)
    assert status == 200, raw
    assert body["status"] == "succeeded"
    assert len(body["images"]) == 1
    assert headers["bunch-served-model"] == body["served_model"]
    assert int(headers["content-length"]) == len(raw)
    assert unsigned(body) == unsigned(owner.api().get(f"{GENERATIONS}/{body['id']}").json())
    assert took < 6
    assert threading.active_count() < 50  # no thread per waiting request left behind


def test_a_waiter_that_disconnects_is_let_go_at_once_and_its_job_stays(
    queued_worker: GeminiEmulator, owner: Actor
) -> None:
    data = json.dumps({"prompt": "x"}).encode()
    headers = {
        "Authorization": f"Bearer {owner.key}",
        "Host": "testserver",
        "Prefer": "wait=20",
        "Content-Type": "application/json",
        "Content-Length": str(len(data)),
    }
    started = time.monotonic()
    status, _, _ = asyncio.run(
        asyncio.wait_for(_call(front(), "POST", GENERATIONS, headers, data, leave_after_s=0.5), 30)
    )
    took = time.monotonic() - started

    assert status == 0  # nothing sent to a client that has gone
    assert took < 5, f"the wait went on {took:.1f} s after the client left"
    jobs = owner.api().get(GENERATIONS).json()["results"]
    assert [j["status"] for j in jobs] == ["queued"]  # the submit itself stands
