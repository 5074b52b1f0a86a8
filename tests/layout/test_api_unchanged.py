"""Moving code between apps changes no URL: every API operation of the schema from before
the move is still there, at the same path with the same operation id."""

from __future__ import annotations

import json
from pathlib import Path

from django.test import Client
from django.urls import reverse

BEFORE = json.loads((Path(__file__).parent / "api_operations_before_the_move.json").read_text())


def _operations(schema: dict) -> set[tuple[str, str, str]]:
    return {
        (path, method, operation["operationId"])
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "operationId" in operation
    }


def test_every_operation_from_before_the_move_keeps_its_path_and_id(client: Client) -> None:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    before = {tuple(op) for op in BEFORE["operations"]}
    assert len(before) == 35
    assert before - _operations(response.json()) == set()


def test_dashboard_and_admin_urls_of_moved_pages() -> None:
    assert reverse("batches:list") == "/batches/"
    assert reverse("dashboard:webhooks") == "/webhooks/"
    assert reverse("admin:batches_batch_changelist") == "/admin/batches/batch/"
    assert reverse("admin:webhooks_webhookendpoint_changelist") == (
        "/admin/webhooks/webhookendpoint/"
    )
