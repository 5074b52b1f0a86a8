"""Batch API and Files API end to end through the real SDK."""

from __future__ import annotations

import io
import json
import time
from typing import Any

from google.genai import types
from PIL import Image

from tests.emulators.test_gemini_conformance import LITE, sdk


def wait_done(client: Any, name: str, timeout_s: float = 10) -> types.BatchJob:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.batches.get(name=name)
        if job.done:
            return job
        time.sleep(0.02)  # polling is how the Batch API is used
    raise AssertionError(f"{name} did not finish")


def request(prompt: str, key: str) -> types.InlinedRequest:
    return types.InlinedRequest(
        contents=prompt,
        metadata={"key": key},
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="16:9")
        ),
    )


def test_inline_batch_goes_pending_running_succeeded_with_a_failed_item(gemini: Any) -> None:
    gemini.configure(batch_step_seconds=0.3)
    client = sdk(gemini)
    job = client.batches.create(
        model=LITE,
        src=[request("banner 'Hello'", "ok"), request("banner [[fail:500]]", "bad")],
        config=types.CreateBatchJobConfig(display_name="two"),
    )
    assert job.name.startswith("batches/")
    assert job.state == types.JobState.JOB_STATE_PENDING
    seen = {job.state}
    while not job.done:
        job = client.batches.get(name=job.name)
        seen.add(job.state)
        time.sleep(0.02)
    assert types.JobState.JOB_STATE_RUNNING in seen
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.display_name == "two"
    ok, bad = job.dest.inlined_responses
    assert ok.metadata == {"key": "ok"}
    image = ok.response.parts[-1].inline_data.data
    assert Image.open(io.BytesIO(image)).size == (1376, 768)
    assert ok.response.usage_metadata.candidates_tokens_details[0].token_count == 1120
    assert bad.metadata == {"key": "bad"} and bad.error.code == 500 and bad.response is None


def test_jsonl_file_batch_writes_a_responses_file(gemini: Any) -> None:
    client = sdk(gemini)
    lines = [
        {"key": "a", "request": {"contents": [{"parts": [{"text": "product mockup of a mug"}]}]}},
        {"key": "b", "request": {"contents": [{"parts": [{"text": "x"}]}],
                                 "generation_config": {"image_config": {"aspect_ratio": "9:9"}}}},
    ]  # fmt: skip
    upload = io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode())
    uploaded = client.files.upload(
        file=upload, config=types.UploadFileConfig(mime_type="application/jsonl")
    )
    assert uploaded.name.startswith("files/")
    assert client.files.get(name=uploaded.name).size_bytes == len(upload.getvalue())
    job = wait_done(client, client.batches.create(model=LITE, src=uploaded.name).name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    rows = [json.loads(x) for x in client.files.download(file=job.dest.file_name).splitlines()]
    assert [r["key"] for r in rows] == ["a", "b"]
    assert "candidates" in rows[0]["response"]
    assert rows[1]["error"]["code"] == 400


def test_cancelled_batch_ends_cancelled_without_output(gemini: Any) -> None:
    gemini.configure(batch_step_seconds=5)
    client = sdk(gemini)
    job = client.batches.create(model=LITE, src=[request("a tree", "t")])
    client.batches.cancel(name=job.name)
    job = client.batches.get(name=job.name)
    assert job.state == types.JobState.JOB_STATE_CANCELLED
    assert job.dest is None and job.end_time is not None


def test_batch_expires_by_trigger_and_by_control_call(gemini: Any) -> None:
    client = sdk(gemini)
    by_trigger = client.batches.create(model=LITE, src=[request("a tree [[expire]]", "t")])
    assert wait_done(client, by_trigger.name).state == types.JobState.JOB_STATE_EXPIRED
    gemini.configure(batch_step_seconds=5)
    by_call = client.batches.create(model=LITE, src=[request("a tree", "t")])
    gemini.expire_batch(by_call.name)
    assert client.batches.get(name=by_call.name).state == types.JobState.JOB_STATE_EXPIRED


def test_batches_list_pages_and_delete_removes(gemini: Any) -> None:
    client = sdk(gemini)
    names = {client.batches.create(model=LITE, src=[request("a", "k")]).name for _ in range(3)}
    pager = client.batches.list(config=types.ListBatchJobsConfig(page_size=2))
    assert len(pager.page) == 2
    listed = {job.name for job in pager}
    assert names <= listed
    for name in names:
        client.batches.delete(name=name)
    assert not names & {job.name for job in client.batches.list()}
