"""A Python client generated from /api/schema/ by openapi-python-client does an
integrator's whole day against a live server, through the client alone."""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from drf_spectacular.generators import SchemaGenerator
from standardwebhooks.webhooks import Webhook

from batches import dispatch
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator
from tests.plugins.receiver import WebhookReceiver

PACKAGE = "bunch_client"
# openapi-python-client parses no image or zip bodies; those calls still return the bytes.
BINARY_ONLY = {"image/png", "image/webp", "application/zip"}


@pytest.fixture(scope="module")
def bunch_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The schema as the app builds it, then a client package generated from it."""
    root = tmp_path_factory.mktemp("client")
    schema = SchemaGenerator().get_schema(request=None, public=True)
    (root / "schema.json").write_text(json.dumps(schema, default=str))
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bin_dir / "openapi-python-client"), "generate", "--path", str(root / "schema.json"),
         "--meta", "none", "--output-path", str(root / PACKAGE)],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [
        line for line in result.stdout.splitlines() if line.startswith("Cannot parse response")
    ]
    assert all(any(t in line for t in BINARY_ONLY) for line in warnings), result.stdout
    assert "Unable to" not in result.stdout and "Skipping" not in result.stdout.replace(
        "Skipping Integration", ""
    ), result.stdout
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _op(name: str) -> Any:
    for tag in ("v1", "webhooks"):
        try:
            return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")
        except ModuleNotFoundError:
            continue
    raise AssertionError(f"the generated client has no operation {name}")


def _models() -> Any:
    return importlib.import_module(f"{PACKAGE}.models")


def _cursor(next_link: Any) -> str | None:
    if not isinstance(next_link, str):
        return None
    return parse_qs(urlsplit(next_link).query)["cursor"][0]


def _all_pages(operation: str, client: Any, **kwargs: Any) -> list[Any]:
    rows: list[Any] = []
    cursor = None
    while True:
        page = _op(operation).sync(
            client=client, limit=2, **({"cursor": cursor} if cursor else {}), **kwargs
        )
        assert type(page).__name__.startswith("Paginated"), page
        rows.extend(page.results)
        cursor = _cursor(page.next_)
        if cursor is None:
            return rows


def test_a_generated_client_submits_replays_pages_batches_edits_hooks_and_reads_usage(
    bunch_client: ModuleType,
    live_server: Any,
    inline_worker: GeminiEmulator,
    owner: Actor,
    webhook_receiver: WebhookReceiver,
) -> None:
    m = _models()
    client = bunch_client.AuthenticatedClient(base_url=live_server.url, token=owner.key)

    # Webhook endpoint: create, read, change, list, rotate.
    created = _op("v1_webhook_endpoints_create").sync(
        client=client, body=m.WebhookEndpointCreateInRequest(url=webhook_receiver.url)
    )
    assert isinstance(created, m.WebhookEndpointWithSecretOut), created
    endpoint_id = created.id
    changed = _op("v1_webhook_endpoints_partial_update").sync(
        endpoint_id, client=client,
        body=m.PatchedWebhookEndpointUpdateInRequest(description="integration"),
    )  # fmt: skip
    assert changed.description == "integration"
    assert _op("v1_webhook_endpoints_retrieve").sync(endpoint_id, client=client).id == endpoint_id
    assert [e.id for e in _all_pages("v1_webhook_endpoints_list", client)] == [endpoint_id]
    rotated = _op("v1_webhook_endpoints_rotate_secret_create").sync(endpoint_id, client=client)
    assert rotated.secret != created.secret

    # Submit with an idempotency key and wait; replay.
    body = m.GenerationInRequest(
        prompt="a smiling astronaut", kind=m.KindEnum.AVATAR,
        metadata=m.GenerationInRequestMetadata.from_dict({"user": "42"}),
    )  # fmt: skip
    submit = _op("v1_generations_create")
    first = submit.sync_detailed(
        client=client, body=body, idempotency_key="day-1", prefer="wait=30"
    )
    assert first.status_code == 200, first.content
    job = first.parsed
    assert isinstance(job, m.JobOut) and job.status == m.WorkStatusEnum.SUCCEEDED
    assert job.metadata["user"] == "42" and job.model == m.ModelEnum.LITE
    replay = submit.sync_detailed(client=client, body=body, idempotency_key="day-1")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.parsed.id == job.id
    assert [i.id for i in replay.parsed.images] == [i.id for i in job.images]

    # Pages: two more jobs, then every job once through cursor pages of two.
    for n in range(2):
        extra = submit.sync(client=client, body=m.GenerationInRequest(prompt=f"asset {n}"))
        assert isinstance(extra, m.JobOut), extra

    # Edit an image.
    edit = _op("v1_images_edits_create").sync(
        str(job.images[0].id), client=client,
        body=m.EditInRequest(instruction="make the helmet gold"), prefer="wait=30",
    )  # fmt: skip
    assert isinstance(edit, m.JobOut) and edit.status == m.WorkStatusEnum.SUCCEEDED
    assert edit.parent_image_id == job.images[0].id
    listed = _all_pages("v1_generations_list", client)
    assert len(listed) == 4 and len({j.id for j in listed}) == 4

    # A template × locales batch, its items and its results.
    template = _op("v1_templates_create").sync(
        client=client,
        body=m.TemplateInRequest(
            name="sale", text="A banner with the headline {headline}", kind=m.KindEnum.BANNER
        ),
    )
    assert isinstance(template, m.TemplateOut), template
    assert template.variables == ["headline"] and template.aspect_ratio is None
    locales = [
        m.BatchInRequestLocalesItem.from_dict({"locale": code, "headline": text})
        for code, text in [("de-DE", "Sommerschlussverkauf"), ("fr-FR", "Soldes d'été")]
    ]
    batch = _op("v1_batches_create").sync(
        client=client,
        body=m.BatchInRequest(template=template.id, locales=locales, mode=m.BatchModeEnum.REALTIME),
    )
    assert isinstance(batch, m.BatchDetailOut), batch
    for _ in range(100):
        batch = _op("v1_batches_retrieve").sync(str(batch.id), client=client)
        if batch.status != m.WorkStatusEnum.RUNNING and batch.status != m.WorkStatusEnum.QUEUED:
            break
        dispatch.poll()
    assert batch.status == m.WorkStatusEnum.SUCCEEDED, batch
    items = _all_pages("v1_batches_items_list", client, batch_id=str(batch.id))
    assert [(i.index, i.label) for i in items] == [(0, "de-DE"), (1, "fr-FR")]
    archive = _op("v1_batches_results_zip_retrieve").sync_detailed(str(batch.id), client=client)
    assert archive.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert "manifest.csv" in names and len(names) == 3

    # Deliveries: read through the client, each signed with the endpoint's secret.
    deliveries = _all_pages("v1_webhook_endpoints_deliveries_list", client, endpoint_id=endpoint_id)
    assert {"job.succeeded", "batch.completed"} <= {d.event_type for d in deliveries}
    sent = webhook_receiver.wait_for("batch.completed")
    assert Webhook(rotated.secret).verify(sent.body, sent.headers)["type"] == "batch.completed"

    # Usage, and an error parsed as the one envelope.
    usage = _op("v1_usage_retrieve").sync(client=client)
    assert isinstance(usage, m.UsageOut), usage
    assert usage.total.images == 6  # 3 jobs, 1 edit, 2 batch items
    missing = _op("v1_generations_retrieve").sync(
        "00000000-0000-0000-0000-000000000000", client=client
    )
    assert isinstance(missing, m.ErrorOut) and missing.error.code == "not_found"
    assert missing.error.request_id.startswith("req_")

    # Delete the endpoint.
    gone = _op("v1_webhook_endpoints_destroy").sync_detailed(endpoint_id, client=client)
    assert gone.status_code == 204
