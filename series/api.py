"""The series REST API: translate HTTP to services and back, nothing more."""

from __future__ import annotations

import tempfile
import uuid
from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import BunchError
from config.pagination import StrictCursorPagination
from config.schema import ErrorOut
from generation.api import idempotent_create
from generation.streams import ProgressCursor, StreamStart
from series import results, selectors, services
from series.models import Series
from series.serializers import RegenerateIn, SeriesIn, SeriesOut
from tenants.authentication import request_actor, request_tenant
from tenants.models import Tenant
from tenants.roles import Action


def series_body(tenant: Tenant, series_id: Any) -> dict[str, Any]:
    """The series as `GET /series/{id}` shows it: what creates, replays and cancels answer."""
    return SeriesOut(selectors.series_get_for_tenant(tenant, series_id)).data  # type: ignore[return-value]


def _answer(
    tenant: Tenant, series_id: Any, *, replayed: bool = False, created: bool = False
) -> Response:
    """A new series is 202 (accepted); otherwise 202 while it is unfinished and 200 once it
    has finished, like a batch's."""
    body = series_body(tenant, series_id)
    finished = body["status"] in Series.FINISHED and not created
    headers = {"Location": body["links"]["self"]}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    code = status.HTTP_200_OK if finished else status.HTTP_202_ACCEPTED
    return Response(body, status=code, headers=headers)


class SeriesPagination(StrictCursorPagination):
    ordering = ("-created_at", "-id")  # type: ignore[assignment]


def _spec(v: dict[str, Any]) -> services.SeriesSpec:
    return services.SeriesSpec(
        frames=tuple(
            services.FrameSpec(prompt=f["prompt"], aspect_ratio=f.get("aspect_ratio"))
            for f in v["frames"]
        ),
        references=tuple(v["references"]),
        consistency=v["consistency"],
        kind=v["kind"],
        tier=v["model"],
        aspect_ratio=v.get("aspect_ratio"),
        name=v["name"],
        frame_attempts=v["frame_attempts"],
        metadata=v["metadata"],
    )


class SeriesListView(APIView):
    pagination_class = SeriesPagination  # read by the schema: the list is a page envelope

    @extend_schema(
        request=SeriesIn,
        responses={202: SeriesOut, 200: SeriesOut, 400: ErrorOut, 402: ErrorOut},
        summary="Submit a series: frames made in order from reference images",
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request) -> Response:
        tenant = request_tenant(request)
        data = SeriesIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data

        def answer(series: Series) -> tuple[dict[str, Any], Response]:
            return {"id": str(series.pk)}, _answer(tenant, series.pk, created=True)

        # One Idempotency-Key path with jobs: key, series and answer commit together.
        return idempotent_create(
            request,
            v,
            create=lambda: services.series_submit(
                tenant=tenant, spec=_spec(v), **request_actor(request)
            ),
            answer=answer,
            replay=lambda series_id: _answer(tenant, series_id, replayed=True),
        )

    @extend_schema(
        responses=SeriesOut(many=True),
        operation_id="v1_series_list",
        summary="List series, newest first",
        parameters=[OpenApiParameter("status", str, enum=list(Series.Status.values))],
    )
    def get(self, request: Request) -> Response:
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in Series.Status.values:
            message = f"status must be one of: {', '.join(Series.Status.values)}."
            raise BunchError(message, code="invalid_filter", fields={"status": [message]})
        rows = selectors.series_list(request_tenant(request), status=wanted)
        paginator = SeriesPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(SeriesOut(page, many=True).data)


class SeriesDetailView(APIView):
    @extend_schema(responses=SeriesOut, summary="A series, its frames and their versions")
    def get(self, request: Request, series_id: str) -> Response:
        return Response(series_body(request_tenant(request), series_id))


class SeriesEventsView(APIView):
    @extend_schema(
        responses={(200, "text/event-stream"): OpenApiTypes.STR},
        summary="A series' progress as it happens (Server-Sent Events)",
        description="`status` per status change, `progress` whenever a frame's status "
        "changes (with every frame's status), then `done` with the series. Resume with "
        "`Last-Event-ID`; after `done` the answer is 204.",
        parameters=[OpenApiParameter("Last-Event-ID", str, OpenApiParameter.HEADER)],
    )
    def get(self, request: Request, series_id: str) -> Response:
        tenant = request_tenant(request)
        series = selectors.series_get_for_tenant(tenant, series_id)
        request._request.bunch_stream = StreamStart(  # type: ignore[attr-defined]
            key=f"series:{series.pk}",
            read=lambda: series_body(tenant, series.pk),
            cursor=ProgressCursor.from_id,
        )
        return Response()


class SeriesCancelView(APIView):
    required_action = Action.GENERATE

    @extend_schema(
        request=None,
        responses={200: SeriesOut, 202: SeriesOut, 409: ErrorOut},
        summary="Cancel the frames not yet made (those made are kept and billed)",
    )
    def post(self, request: Request, series_id: str) -> Response:
        tenant = request_tenant(request)
        series = selectors.series_get_for_tenant(tenant, series_id)
        services.series_cancel(series=series)
        return _answer(tenant, series.pk)


class FrameRegenerateView(APIView):
    required_action = Action.GENERATE

    @extend_schema(
        request=RegenerateIn,
        responses={202: SeriesOut, 404: ErrorOut, 409: ErrorOut},
        summary="Make a new version of one frame; with cascade, of every frame after it too",
    )
    def post(self, request: Request, series_id: str, index: int) -> Response:
        tenant = request_tenant(request)
        series = selectors.series_get_for_tenant(tenant, series_id)
        data = RegenerateIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        services.frame_regenerate(
            series=series, index=index, prompt=v.get("prompt"), cascade=v["cascade"]
        )
        return _answer(tenant, series.pk)


class SeriesResultsZipView(APIView):
    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
        summary="Every frame's current image in frame order, with manifest.csv",
    )
    def get(self, request: Request, series_id: str) -> FileResponse:
        series = selectors.series_get_for_tenant(request_tenant(request), series_id)
        out = tempfile.TemporaryFile()  # noqa: SIM115  # FileResponse closes it
        results.write_zip(series, out)
        out.seek(0)
        name = f"series-{uuid.UUID(str(series.pk)).hex[:8]}.zip"
        return FileResponse(out, as_attachment=True, filename=name, content_type="application/zip")
