"""Resource limits: what one request may make the server decode, parse, hold or list."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from batches.models import Batch
from generation.image_header import declared_size
from generation.models import Job
from tenants.models import Plan
from tests.plugins.actors import Actor, assert_error, make_plan
from tests.security.images import png_declaring

IMAGES = "/api/v1/images"


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise AssertionError(field)


def _upload(actor: Actor, data: bytes, name: str = "x.png") -> Any:
    file = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return actor.api().post(IMAGES, {"file": file}, format="multipart")


def _jpeg_declaring(width: int, height: int) -> bytes:
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def _webp_declaring(width: int, height: int) -> bytes:
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    vp8x = b"\x00\x00\x00\x00" + size
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


BOMBS = {
    "png 20000x20000": png_declaring(20_000, 20_000),
    "png 100 Mpx (10000x10000)": png_declaring(10_000, 10_000),
    "png 100000000x1": png_declaring(100_000_000, 1, rows=1),
    "png 1x100000000": png_declaring(1, 100_000_000, rows=1),
    "png 65535x65535": png_declaring(65_535, 65_535, rows=1),
    "png 4097x4096": png_declaring(4_097, 4_096, rows=1),
    "jpeg 65500x65500": _jpeg_declaring(65_500, 65_500),
    "webp 16384x16384": _webp_declaring(16_384, 16_384),
}


@pytest.mark.parametrize("bomb", list(BOMBS), ids=list(BOMBS))
def test_an_upload_declaring_too_many_pixels_is_refused_with_400_without_decoding(
    owner: Actor, bomb: str
) -> None:
    data = BOMBS[bomb]
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets the peak-RSS mark, so VmHWM below is this request's peak
    before = _status_mb("VmRSS")

    response = _upload(owner, data)

    growth = _status_mb("VmHWM") - before
    error = assert_error(response, 400, "image_dimensions_too_large")
    assert "4096 pixels a side" in error["message"]
    assert growth < 50, f"{bomb}: resident size grew by {growth:.0f} MB"


def test_the_header_reader_reports_the_declared_size_of_each_accepted_format() -> None:
    assert declared_size(png_declaring(20_000, 30, rows=1)) == (20_000, 30)
    assert declared_size(_jpeg_declaring(640, 480)) == (640, 480)
    assert declared_size(_webp_declaring(300, 200)) == (300, 200)
    assert declared_size(b"GIF89a....") is None


def test_a_real_image_within_the_limits_is_still_accepted(owner: Actor) -> None:
    response = _upload(owner, png_declaring(4096, 4, rows=4))
    assert response.status_code == 201, response.content
    assert (response.json()["width"], response.json()["height"]) == (4096, 4)


# JSON bodies ---------------------------------------------------------------------------


def test_a_json_body_over_one_megabyte_is_refused_with_413(owner: Actor) -> None:
    body = json.dumps({"prompt": "a cat", "metadata": {"pad": "x" * (1024 * 1024)}})

    response = owner.api().post("/api/v1/generations", body, content_type="application/json")

    error = assert_error(response, 413, "request_too_large")
    assert "1,048,576" in error["message"]
    assert not Job.objects.exists()


def test_a_json_body_just_under_one_megabyte_reaches_validation(owner: Actor) -> None:
    body = json.dumps({"prompt": "a cat", "metadata": {"pad": "x" * (1024 * 1024 - 100)}})

    response = owner.api().post("/api/v1/generations", body, content_type="application/json")

    assert_error(response, 400, "validation_error")  # metadata too big, not the body


def test_an_unknown_path_gets_the_413_too_before_anything_reads_the_body(owner: Actor) -> None:
    response = owner.api().post(
        "/api/v1/nothing-here", "x" * (2 * 1024 * 1024), content_type="application/json"
    )
    assert_error(response, 413, "request_too_large")


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_nested_past_the_recursion_limit_is_a_400_not_a_500(
    owner: Actor, opening: str
) -> None:
    body = opening * 100_000

    response = owner.api().post("/api/v1/generations", body, content_type="application/json")

    assert_error(response, 400, "malformed_request")


# Metadata ------------------------------------------------------------------------------

DEEP: dict[str, Any] = {"a": {"b": {"c": {"d": {"e": 1}}}}}
BAD_METADATA = {
    "deeper than 4": DEEP,
    "more than 64 keys": {f"k{i}": i for i in range(65)},
    "a key over 64 characters": {"k" * 65: 1},
    "over 4 KB": {"pad": "x" * 4100},
    "not an object": ["a", "b"],
}


@pytest.mark.parametrize("case", list(BAD_METADATA), ids=list(BAD_METADATA))
def test_metadata_over_its_limits_is_refused_with_a_field_error(owner: Actor, case: str) -> None:
    response = owner.api().post(
        "/api/v1/generations", {"prompt": "a cat", "metadata": BAD_METADATA[case]}, format="json"
    )

    error = assert_error(response, 400, "validation_error")
    assert "metadata" in error["fields"]
    assert not Job.objects.exists()


def test_metadata_at_its_limits_is_accepted(owner: Actor) -> None:
    # Strings only (issue 26's typed metadata): 50 keys, one of 40 characters, 4 KB in all.
    metadata = {"k" * 40: "v" * 70, **{f"k{i}": "v" * 70 for i in range(49)}}

    response = owner.api().post(
        "/api/v1/generations", {"prompt": "a cat", "metadata": metadata}, format="json"
    )

    assert response.status_code == 202, response.content


def test_batch_metadata_has_the_same_limits(owner: Actor) -> None:
    response = owner.api().post(
        "/api/v1/batches", {"items": [{"prompt": "x"}], "metadata": DEEP}, format="json"
    )
    assert "metadata" in assert_error(response, 400, "validation_error")["fields"]


# Batches and pages ---------------------------------------------------------------------


@pytest.fixture
def roomy_plan(plan: Plan) -> Plan:
    return make_plan(monthly_image_quota=50_000, monthly_spend_cap="5000.00")


def test_a_batch_of_ten_thousand_items_is_accepted_and_ten_thousand_and_one_refused(
    owner: Actor, roomy_plan: Plan
) -> None:
    prompts = [{"prompt": f"a banner, variant {i}"} for i in range(10_001)]

    refused = owner.api().post("/api/v1/batches", {"items": prompts}, format="json")
    accepted = owner.api().post("/api/v1/batches", {"items": prompts[:10_000]}, format="json")

    error = assert_error(refused, 400, "validation_error")
    assert error["fields"]["items"] == {
        "non_field_errors": ["A batch holds at most 10,000 items; send the rest in another batch."]
    }
    assert accepted.status_code == 202, accepted.content[:500]
    assert Batch.objects.get().items.count() == 10_000


def test_limit_one_million_is_capped_at_the_documented_200(owner: Actor) -> None:
    client = owner.api()
    for i in range(205):
        created = client.post("/api/v1/generations", {"prompt": f"p{i}"}, format="json")
        assert created.status_code == 202

    page = client.get("/api/v1/generations?limit=1000000")

    assert page.status_code == 200
    assert len(page.json()["results"]) == 200
    assert page.json()["next"]
