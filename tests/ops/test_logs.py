"""Log lines: JSON in production with the request, tenant and job they are about, and
never a key or a secret, whatever a message was given."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from config.logging import JsonFormatter, TextFormatter, redact
from core import logcontext
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG and up, as the production formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_redact_masks_keys_and_secrets_but_keeps_their_public_part() -> None:
    text = (
        "key bk_live_0123456789ab_S3cretS3cretS3cret and whsec_c2VjcmV0LXNlY3JldA== "
        "sk_test_51Abcdef and Authorization: Bearer tok-123"
    )
    assert redact(text) == (
        "key bk_live_0123456789ab_[redacted] and whsec_[redacted] "
        "sk_test_[redacted] and Authorization: Bearer [redacted]"
    )


def test_a_line_carries_its_context_and_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "bunch", "levelname": "INFO", "msg": "stored %s", "args": ("image",)}
    )
    record.duration_ms = 12.5
    with logcontext.bound(request_id="req_1", tenant="acme", job_id="j-1"):
        line = json.loads(JsonFormatter().format(record))
        text = TextFormatter("%(levelname)s%(context)s %(message)s").format(record)
    assert line["message"] == "stored image"
    assert (line["request_id"], line["tenant"], line["job_id"]) == ("req_1", "acme", "j-1")
    assert line["duration_ms"] == 12.5
    assert text == "INFO [request_id=req_1 tenant=acme job_id=j-1] stored image"
    assert logcontext.current() == {}


def test_a_full_run_logs_json_lines_with_ids_and_no_secret(
    inline_worker: GeminiEmulator,
    owner: Actor,
    client: Client,
    json_lines: io.StringIO,
    settings: Any,
) -> None:
    api = owner.api()
    hook = api.post(
        "/api/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/hook"}, format="json"
    ).json()
    job = api.post(
        "/api/v1/generations",
        {"prompt": "a lantern", "count": 1},
        format="json",
        HTTP_PREFER="wait=20",
        HTTP_X_REQUEST_ID="req_logs_test_1",
    ).json()
    assert job["status"] == "succeeded"
    logging.getLogger("bunch.test").info(
        "a careless message with %s and %s", owner.key, hook["secret"]
    )
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    assert lines, "nothing was logged"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    whole = json_lines.getvalue()
    secret_part = owner.key.split("_", 3)[3]  # bk_live_<public>_<secret>; the secret may hold "_"
    assert len(secret_part) >= 32
    assert secret_part not in whole
    assert hook["secret"].removeprefix("whsec_") not in whole
    assert settings.SECRET_KEY not in whole
    (request,) = [
        line
        for line in lines
        if line.get("request_id") == "req_logs_test_1" and line["event"] == "http.request"
    ]
    assert (request["tenant"], request["status"]) == (owner.tenant.slug, 200)
    assert request["duration_ms"] > 0
    (finished,) = [line for line in lines if line["event"] == "job.finished"]
    assert (finished["job_id"], finished["status"]) == (job["id"], "succeeded")
    assert finished["tenant"] == owner.tenant.slug and finished["duration_ms"] >= 0
    careless = [line for line in lines if line["logger"] == "bunch.test"]
    assert "[redacted]" in careless[0]["message"]
