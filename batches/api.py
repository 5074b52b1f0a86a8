"""The batches and prompt-templates REST API: translate HTTP to services and back."""

from __future__ import annotations

import io
import tempfile
from dataclasses import replace
from typing import Any

from django.db import transaction
from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from batches import results, selectors, services, templates
from batches.models import Batch
from batches.serializers import (
    BatchDetailOut,
    BatchIn,
    BatchItemOut,
    BatchOut,
    PreviewIn,
    PreviewOut,
    TemplateIn,
    TemplateOut,
)
from config.pagination import StrictCursorPagination
from config.schema import ErrorOut
from generation import idempotency
from generation.models import IdempotencyRecord
from generation.selectors import page_images, release_items
from generation.serializers import fallback_param
from generation.services import JobParams
from generation.streams import ProgressCursor, StreamStart, event_schema
from tenants.authentication import request_actor, request_tenant
from tenants.models import Tenant
from tenants.roles import Action


def _batch_body(tenant: Tenant, batch_id: Any) -> dict[str, Any]:
    """The batch as `GET /batches/{id}` shows it: what creates, replays and cancels answer."""
    batch = selectors.batch_get_for_tenant(tenant, batch_id)
    return BatchDetailOut(batch).data  # type: ignore[return-value]


def _batch_detail_body(tenant: Tenant, batch_id: Any) -> dict[str, Any]:
    """What `GET /batches/{id}` answers (with the per-locale progress)."""
    return BatchDetailOut(selectors.batch_get_for_tenant(tenant, batch_id)).data  # type: ignore[return-value]


class BatchPagination(StrictCursorPagination):
    pass


class ItemPagination(BatchPagination):
    page_size = 100
    max_page_size = 1000
    ordering = "index"


class TemplatePagination(BatchPagination):
    pass


def _idempotency_begin(
    request: Request, tenant: Tenant, validated: dict[str, Any]
) -> IdempotencyRecord | None:
    """Same key + same validated input → the batch the first request made, as it is now (a
    client that lost the answer re-sends safely); same key + another input → 409."""
    key = idempotency.key_check(request.headers.get("Idempotency-Key", ""))
    if not key:
        return None
    fingerprint = idempotency.request_fingerprint(
        operation=f"{request.method} {request.path}", validated=validated
    )
    return idempotency.idempotency_begin(tenant=tenant, key=key, fingerprint=fingerprint)


def _batch_answer(tenant: Tenant, batch_id: Any, *, replayed: bool = False) -> Response:
    """The batch as it is now. A new batch is 202 (accepted); a replay is 202 while the
    batch is unfinished and 200 once it has finished, like a job's."""
    body = _batch_body(tenant, batch_id)
    finished = replayed and body["status"] in Batch.FINISHED
    code = status.HTTP_200_OK if finished else status.HTTP_202_ACCEPTED
    headers = {"Location": body["links"]["self"]}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(body, status=code, headers=headers)


def _items(tenant: Tenant, v: dict[str, Any]) -> tuple[list[services.ItemSpec], Any]:
    specs, template = _specs(tenant, v)
    fallback = fallback_param(v.get("fallback"))
    if fallback is not None:  # the batch's own policy, or false, for every item
        specs = [replace(s, params=replace(s.params, fallback=fallback)) for s in specs]
    return specs, template


def _specs(tenant: Tenant, v: dict[str, Any]) -> tuple[list[services.ItemSpec], Any]:
    if "template" not in v:
        specs = [
            services.ItemSpec(
                params=JobParams(
                    prompt=item["prompt"],
                    kind=item["kind"],
                    aspect_ratio=item.get("aspect_ratio"),
                    count=item["count"],
                    tier=item["model"],
                    image_size=item["image_size"],
                    metadata=item["metadata"],
                ),
                label=item["label"],
            )
            for item in v["items"]
        ]
        return specs, None
    template = selectors.template_get_for_tenant(tenant, v["template"])
    specs = services.items_from_template(
        template=template,
        rows=v["rows"],
        locales=v["locales"],
        kind=v.get("kind"),
        aspect_ratio=v.get("aspect_ratio"),
        count=v["count"],
        tier=v["model"],
        image_size=v["image_size"],
        product_image=v.get("product_image"),
        model_image=v.get("model_image"),
    )
    return specs, template


class BatchListView(APIView):
    pagination_class = BatchPagination  # read by the schema: the list is a page envelope

    @extend_schema(
        request=BatchIn,
        responses={200: BatchDetailOut, 202: BatchDetailOut, 402: ErrorOut},
        summary="Submit a batch",
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request) -> Response:
        tenant = request_tenant(request)
        data = BatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        # Record, batch and answer commit together (generation/api.py `_submit` says why).
        with transaction.atomic():
            record = _idempotency_begin(request, tenant, v)
            if idempotency.is_replay(record):
                return _batch_answer(tenant, idempotency.resource_id(record), replayed=True)
            items, template = _items(tenant, v)
            batch = services.batch_submit(
                tenant=tenant,
                items=items,
                mode=v["mode"],
                name=v["name"],
                template=template,
                metadata=v["metadata"],
                **request_actor(request),
            )
            if record is not None:
                # A replay reads only the id back; the answer is rendered after the commit,
                # once the batch has been sent on (its status is then `running`).
                idempotency.idempotency_finish(
                    record=record, status=202, body={"id": str(batch.pk)}
                )
        return _batch_answer(tenant, batch.pk)

    @extend_schema(
        responses=BatchOut(many=True),
        operation_id="v1_batches_list",
        summary="List batches, newest first",
    )
    def get(self, request: Request) -> Response:
        paginator = BatchPagination()
        rows = selectors.batches_page_for_tenant(request_tenant(request))
        page = selectors.batches_with_progress(
            paginator.paginate_queryset(rows, request, view=self) or []
        )
        return paginator.get_paginated_response(BatchOut(page, many=True).data)


class BatchDetailView(APIView):
    @extend_schema(
        responses=BatchDetailOut,
        summary="A batch: progress (also per locale), estimated and actual cost",
    )
    def get(self, request: Request, batch_id: str) -> Response:
        batch = selectors.batch_get_for_tenant(request_tenant(request), batch_id)
        return Response(BatchDetailOut(batch).data)


class BatchItemsView(APIView):
    pagination_class = ItemPagination

    @extend_schema(
        responses=BatchItemOut(many=True),
        operation_id="v1_batches_items_list",
        summary="A batch's items in order, each with its job and images",
    )
    def get(self, request: Request, batch_id: str) -> Response:
        batch = selectors.batch_get_for_tenant(request_tenant(request), batch_id, progress=False)
        paginator = ItemPagination()
        items = selectors.batch_items(batch, request_tenant(request), with_images=False)
        page = list(paginator.paginate_queryset(items, request, view=self) or [])
        page_images([item.job for item in page], items_read=True)
        out = BatchItemOut()  # not a ListSerializer, which keeps the page (see job_rows)
        rows = [out.to_representation(item) for item in page]
        release_items(page)
        return paginator.get_paginated_response(rows)


class BatchEventsView(APIView):
    @extend_schema(
        responses={(200, "text/event-stream"): event_schema(["status", "progress", "done"])},
        summary="A batch's progress as it happens (Server-Sent Events)",
        description="`status` per status change, `progress` whenever an item or image is "
        "done, then `done` with the batch. Resume with `Last-Event-ID`; after `done` the "
        "answer is 204.",
        parameters=[OpenApiParameter("Last-Event-ID", str, OpenApiParameter.HEADER)],
    )
    def get(self, request: Request, batch_id: str) -> Response:
        tenant = request_tenant(request)
        batch = selectors.batch_get_for_tenant(tenant, batch_id)
        request._request.bunch_stream = StreamStart(  # type: ignore[attr-defined]
            key=f"batch:{batch.pk}",
            read=lambda: _batch_detail_body(tenant, batch.pk),
            cursor=ProgressCursor.from_id,
        )
        return Response()


class BatchCancelView(APIView):
    required_action = Action.GENERATE

    @extend_schema(request=None, responses=BatchDetailOut, summary="Cancel what is not yet made")
    def post(self, request: Request, batch_id: str) -> Response:
        tenant = request_tenant(request)
        batch = selectors.batch_get_for_tenant(tenant, batch_id)
        services.batch_cancel(batch=batch)
        return Response(_batch_body(tenant, batch.pk))


class BatchResultsCsvView(APIView):
    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR}, summary="Results manifest")
    def get(self, request: Request, batch_id: str) -> HttpResponse:
        batch = selectors.batch_get_for_tenant(request_tenant(request), batch_id)
        out = io.StringIO()
        results.write_csv(batch, out)
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}.csv"'
        return response


class BatchResultsZipView(APIView):
    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
        summary="Images and manifest.csv",
    )
    def get(self, request: Request, batch_id: str) -> FileResponse:
        batch = selectors.batch_get_for_tenant(request_tenant(request), batch_id)
        archive = tempfile.TemporaryFile()  # noqa: SIM115  # the response closes it once sent
        results.write_zip(batch, archive)
        archive.seek(0)
        return FileResponse(
            archive,
            as_attachment=True,
            filename=f"batch-{batch.pk}.zip",
            content_type="application/zip",
        )


# Templates -------------------------------------------------------------------------------


class TemplateListView(APIView):
    pagination_class = TemplatePagination
    required_action = {"POST": Action.TEMPLATES_MANAGE}

    @extend_schema(request=TemplateIn, responses={201: TemplateOut}, summary="Save a template")
    def post(self, request: Request) -> Response:
        data = TemplateIn(data=request.data)
        data.is_valid(raise_exception=True)
        template = templates.template_create(tenant=request_tenant(request), **data.validated_data)
        return Response(TemplateOut(template).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses=TemplateOut(many=True),
        operation_id="v1_templates_list",
        summary="List templates",
    )
    def get(self, request: Request) -> Response:
        paginator = TemplatePagination()
        rows = selectors.templates_for_tenant(request_tenant(request))
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(TemplateOut(page, many=True).data)


class TemplateDetailView(APIView):
    required_action = {"PATCH": Action.TEMPLATES_MANAGE, "DELETE": Action.TEMPLATES_MANAGE}

    @extend_schema(responses=TemplateOut, summary="A template")
    def get(self, request: Request, template_id: str) -> Response:
        template = selectors.template_get_for_tenant(request_tenant(request), template_id)
        return Response(TemplateOut(template).data)

    @extend_schema(request=TemplateIn(partial=True), responses=TemplateOut, summary="Change")
    def patch(self, request: Request, template_id: str) -> Response:
        template = selectors.template_get_for_tenant(request_tenant(request), template_id)
        data = TemplateIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = {k: v for k, v in data.validated_data.items() if k in request.data}
        template = templates.template_update(template=template, **changes)
        return Response(TemplateOut(template).data)

    @extend_schema(request=None, responses={204: None}, summary="Delete a template")
    def delete(self, request: Request, template_id: str) -> Response:
        template = selectors.template_get_for_tenant(request_tenant(request), template_id)
        templates.template_delete(template=template)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplatePreviewView(APIView):
    required_action = Action.READ

    @extend_schema(request=PreviewIn, responses=PreviewOut, summary="Render the prompts")
    def post(self, request: Request, template_id: str) -> Response:
        template = selectors.template_get_for_tenant(request_tenant(request), template_id)
        data = PreviewIn(data=request.data)
        data.is_valid(raise_exception=True)
        prompts = templates.template_render(template=template, **data.validated_data)
        return Response(PreviewOut({"prompts": prompts}).data)
