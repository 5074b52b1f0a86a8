"""The batches and prompt-templates REST API: translate HTTP to services and back."""

from __future__ import annotations

import io
import tempfile
from typing import Any

from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from batches import results, selectors, services, templates
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
from config.errors import BunchError
from config.limits import StrictLimit
from config.schema import CURSOR, limit_parameter, page_of
from generation import idempotency
from generation.models import IdempotencyRecord
from generation.services import JobParams
from tenants.authentication import request_actor, request_tenant
from tenants.models import Tenant
from tenants.roles import Action


def _batch_body(tenant: Tenant, batch_id: Any) -> dict[str, Any]:
    return BatchOut(selectors.batch_get_for_tenant(tenant, batch_id)).data  # type: ignore[return-value]


class BatchPagination(StrictLimit, CursorPagination):
    page_size = 50
    max_page_size = 200
    page_size_query_param = "limit"
    ordering = "-created_at"


class ItemPagination(BatchPagination):
    page_size = 100
    max_page_size = 1000
    ordering = "index"


def _idempotency_begin(request: Request, tenant: Tenant) -> IdempotencyRecord | None:
    """Same key + same body → the first response again (a client that lost the answer
    re-sends safely); same key + another body → 409."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return None
    if len(key) > 255:
        raise BunchError("Idempotency-Key is longer than 255 characters.", code="invalid_request")
    body = request.data if isinstance(request.data, dict) else {}
    fingerprint = idempotency.request_fingerprint({"path": request.path, "body": body})
    return idempotency.idempotency_begin(tenant=tenant, key=key, fingerprint=fingerprint)


def _items(tenant: Tenant, v: dict[str, Any]) -> tuple[list[services.ItemSpec], Any]:
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
    )
    return specs, template


class BatchListView(APIView):
    @extend_schema(
        request=BatchIn,
        responses={202: BatchOut},
        summary="Submit a batch",
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request) -> Response:
        tenant = request_tenant(request)
        record = _idempotency_begin(request, tenant)
        if getattr(record, "replayed", False):
            return Response(
                record.response_body,  # type: ignore[union-attr]
                status=record.response_status,  # type: ignore[union-attr]
                headers={"Idempotent-Replayed": "true"},
            )
        try:
            data = BatchIn(data=request.data)
            data.is_valid(raise_exception=True)
            v = data.validated_data
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
        except Exception:
            if record is not None:
                idempotency.idempotency_abandon(record=record)
            raise
        body = _batch_body(tenant, batch.pk)
        if record is not None:
            idempotency.idempotency_finish(record=record, status=202, body=body)
        return Response(
            body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["links"]["self"]}
        )

    @extend_schema(
        responses=page_of(BatchOut),
        operation_id="v1_batches_list",
        summary="List batches, newest first",
        parameters=[CURSOR, limit_parameter(50, 200)],
    )
    def get(self, request: Request) -> Response:
        paginator = BatchPagination()
        rows = selectors.batches_for_tenant(request_tenant(request))
        page = paginator.paginate_queryset(rows, request, view=self)
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
    @extend_schema(
        responses=page_of(BatchItemOut),
        operation_id="v1_batches_items_list",
        summary="A batch's items in order, each with its job and images",
        parameters=[CURSOR, limit_parameter(100, 1000)],
    )
    def get(self, request: Request, batch_id: str) -> Response:
        batch = selectors.batch_get_for_tenant(request_tenant(request), batch_id)
        paginator = ItemPagination()
        page = paginator.paginate_queryset(selectors.batch_items(batch), request, view=self)
        return paginator.get_paginated_response(BatchItemOut(page, many=True).data)


class BatchCancelView(APIView):
    required_action = Action.GENERATE

    @extend_schema(request=None, responses=BatchOut, summary="Cancel what is not yet made")
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
    required_action = {"POST": Action.TEMPLATES_MANAGE}

    @extend_schema(request=TemplateIn, responses={201: TemplateOut}, summary="Save a template")
    def post(self, request: Request) -> Response:
        data = TemplateIn(data=request.data)
        data.is_valid(raise_exception=True)
        template = templates.template_create(tenant=request_tenant(request), **data.validated_data)
        return Response(TemplateOut(template).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses=page_of(TemplateOut),
        operation_id="v1_templates_list",
        summary="List templates",
        parameters=[CURSOR, limit_parameter(50, 200)],
    )
    def get(self, request: Request) -> Response:
        paginator = BatchPagination()
        paginator.ordering = "-created_at"
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
