"""The OpenAPI schema describes what the API does, so that generated clients work."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.plugins.actors import Actor, assert_error

ERROR_REF = "#/components/schemas/ErrorOut"


@pytest.fixture
def schema(client: Client) -> dict[str, Any]:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return dict(response.json())


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_every_operation_documents_its_errors_in_the_one_envelope(schema: dict) -> None:
    envelope = schema["components"]["schemas"]["ErrorOut"]
    assert envelope["required"] == ["error"]
    detail = schema["components"]["schemas"]["ApiErrorOut"]
    assert set(detail["required"]) == {"code", "message", "status", "request_id"}
    for path, method, op in _operations(schema):
        for code in ("400", "401", "403", "404", "429"):
            content = op["responses"][code]["content"]
            assert content == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (
                path,
                method,
                code,
            )
        if "requestBody" in op:
            assert {"413", "415"} <= set(op["responses"]), (path, method)


def test_json_operations_take_json_only_and_the_upload_multipart_only(schema: dict) -> None:
    bodies = {
        (p, m): set(op["requestBody"]["content"])
        for p, m, op in _operations(schema)
        if "requestBody" in op
    }
    assert bodies.pop(("/api/v1/images", "post")) == {"multipart/form-data"}
    assert bodies and all(types == {"application/json"} for types in bodies.values()), bodies


@pytest.mark.parametrize(
    ("path", "item"),
    [
        ("/api/v1/generations", "JobOut"),
        ("/api/v1/batches", "BatchOut"),
        ("/api/v1/batches/{batch_id}/items", "BatchItemOut"),
        ("/api/v1/templates", "TemplateOut"),
        ("/api/v1/webhook-endpoints", "WebhookEndpointOut"),
    ],
)
def test_lists_are_declared_as_page_envelopes_of_their_item(
    schema: dict, path: str, item: str
) -> None:
    ref = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    name = ref["schema"]["$ref"].rsplit("/", 1)[1]
    page = schema["components"]["schemas"][name]
    assert set(page["properties"]) == {"next", "previous", "results"}
    assert page["properties"]["results"]["items"] == {"$ref": f"#/components/schemas/{item}"}


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_no_default_lies_outside_its_enum(schema: dict) -> None:
    components = schema["components"]["schemas"]
    for node in _walk(schema):
        if "default" not in node:
            continue
        enum = node.get("enum")
        if enum is None and "$ref" in node:
            enum = components[node["$ref"].rsplit("/", 1)[1]].get("enum")
        for option in node.get("allOf", []) + node.get("oneOf", []):
            if "$ref" in option:
                enum = (enum or []) + components[option["$ref"].rsplit("/", 1)[1]].get("enum", [])
        if enum is not None:
            assert node["default"] in enum, node


def test_metadata_and_id_lists_are_typed_and_choices_are_enums(schema: dict) -> None:
    components = schema["components"]["schemas"]
    job = components["JobOut"]["properties"]
    assert job["metadata"]["additionalProperties"]["type"] == "string"
    assert job["input_image_ids"]["items"] == {"type": "string", "format": "uuid"}
    for name in ("status", "kind", "model", "aspect_ratio", "mode"):
        assert "$ref" in job[name], name
    request = components["GenerationInRequest"]["properties"]
    assert request["metadata"]["maxProperties"] == 50
    assert request["input_images"]["items"] == {"type": "string", "format": "uuid"}


def test_a_json_operation_refuses_multipart_with_415(owner: Actor) -> None:
    response = owner.api().post("/api/v1/generations", {"prompt": "x"}, format="multipart")
    assert_error(response, 415, "unsupported_media_type")


def test_the_upload_refuses_json_with_415(owner: Actor) -> None:
    response = owner.api().post("/api/v1/images", {"file": "x"}, format="json")
    assert_error(response, 415, "unsupported_media_type")
