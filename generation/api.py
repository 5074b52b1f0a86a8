"""The generation REST API: translate HTTP to services and back, nothing more."""

from __future__ import annotations

import re
import time
from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import BunchError
from config.limits import StrictLimit
from config.schema import CURSOR, limit_parameter, page_of
from generation import idempotency, images, selectors, services
from generation.links import signature_allows
from generation.models import Job
from generation.serializers import (
    EditIn,
    GenerationIn,
    ImageOut,
    JobOut,
    ProvenanceDetailOut,
    UploadIn,
    job_accepted_data,
)
from tenants.authentication import request_actor, request_tenant
from tenants.models import Tenant
from tenants.roles import Action

PREFER_WAIT = re.compile(r"\bwait\s*=\s*(\d+)")
MAX_WAIT_S = 60


def _job_body(tenant: Tenant, job_id: Any) -> dict[str, Any]:
    return JobOut(selectors.job_get_for_tenant(tenant, job_id)).data  # type: ignore[return-value]


def _accepted_body(job: Job) -> dict[str, Any]:
    """The body of a job just created: no images or usage yet, so nothing to read back."""
    return job_accepted_data(job)


def _wait_for(
    tenant: Tenant, job: Job, request: Request, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """`Prefer: wait=N`: hold the answer up to N s (≤ 60) for the job to finish."""
    match = PREFER_WAIT.search(request.headers.get("Prefer", ""))
    wait = min(int(match.group(1)), MAX_WAIT_S) if match else 0
    if not wait:
        return status.HTTP_202_ACCEPTED, body
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline:
        if Job.objects.filter(pk=job.pk, status__in=Job.FINISHED).exists():
            return status.HTTP_200_OK, _job_body(tenant, job.pk)
        time.sleep(0.1)
    body = _job_body(tenant, job.pk)
    finished = body["status"] in Job.FINISHED
    return (status.HTTP_200_OK if finished and wait else status.HTTP_202_ACCEPTED), body


def _submit(request: Request, submit: Any) -> Response:
    """Run `submit()` under the request's Idempotency-Key, if any, and answer."""
    tenant = request_tenant(request)
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > 255:
        raise BunchError("Idempotency-Key is longer than 255 characters.", code="invalid_request")
    record = None
    if key:
        fingerprint = idempotency.request_fingerprint(
            {"path": request.path, "body": request.data if isinstance(request.data, dict) else {}}
        )
        record = idempotency.idempotency_begin(tenant=tenant, key=key, fingerprint=fingerprint)
        if getattr(record, "replayed", False):
            return Response(
                record.response_body,
                status=record.response_status,
                headers={"Idempotent-Replayed": "true"},
            )
    try:
        job = submit()
    except Exception:
        if record is not None:
            idempotency.idempotency_abandon(record=record)
        raise
    body = _accepted_body(job)
    if record is not None:
        idempotency.idempotency_finish(record=record, status=202, body=body)
    code, body = _wait_for(tenant, job, request, body)
    return Response(body, status=code, headers={"Location": body["links"]["self"]})


class JobPagination(StrictLimit, CursorPagination):
    page_size = 50
    max_page_size = 200
    page_size_query_param = "limit"
    ordering = "-created_at"


class GenerationListView(APIView):
    @extend_schema(
        request=GenerationIn,
        responses={200: JobOut, 202: JobOut},
        summary="Submit a generation job",
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER),
            OpenApiParameter("Prefer", str, OpenApiParameter.HEADER, description="wait=N (≤ 60)"),
        ],
    )
    def post(self, request: Request) -> Response:
        data = GenerationIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        params = services.JobParams(
            prompt=v["prompt"],
            kind=v["kind"],
            aspect_ratio=v.get("aspect_ratio"),
            count=v["count"],
            tier=v["model"],
            image_size=v["image_size"],
            input_image_ids=tuple(v["input_images"]),
            metadata=v["metadata"],
            mode=services.route_mode(
                tenant=request_tenant(request),
                priority=v.get("priority"),
                deadline=v.get("deadline"),
            ),
        )
        return _submit(
            request,
            lambda: services.job_submit(
                tenant=request_tenant(request), params=params, **request_actor(request)
            ),
        )

    @extend_schema(
        responses=page_of(JobOut),
        operation_id="v1_generations_list",
        summary="List jobs, newest first",
        parameters=[
            OpenApiParameter("status", str),
            OpenApiParameter("kind", str),
            OpenApiParameter("created_after", OpenApiTypes.DATETIME),
            OpenApiParameter("created_before", OpenApiTypes.DATETIME),
            OpenApiParameter("metadata", str, description="key:value, repeatable"),
            CURSOR,
            limit_parameter(JobPagination.page_size, JobPagination.max_page_size),
        ],
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        metadata = dict(item.split(":", 1) for item in query.getlist("metadata") if ":" in item)
        jobs = selectors.job_list(
            request_tenant(request),
            status=query.get("status"),
            kind=query.get("kind"),
            created_after=_datetime(query.get("created_after"), "created_after"),
            created_before=_datetime(query.get("created_before"), "created_before"),
            metadata=metadata,
        )
        paginator = JobPagination()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(JobOut(page, many=True).data)


def _datetime(value: str | None, name: str) -> Any:
    if value is None:  # `created_after=` (empty) is refused below, not read as absent
        return None
    from django.utils.dateparse import parse_date, parse_datetime

    parsed = parse_datetime(value) or parse_date(value)
    if parsed is None:
        raise BunchError(
            f"{name} must be an ISO 8601 date or time.",
            code="validation_error",
            fields={name: ["Not an ISO 8601 date or time."]},
        )
    return parsed


class GenerationDetailView(APIView):
    @extend_schema(responses=JobOut, summary="A job, its images, usage and cost")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(_job_body(request_tenant(request), job_id))


class GenerationCancelView(APIView):
    required_action = Action.GENERATE

    @extend_schema(request=None, responses=JobOut, summary="Cancel images not yet started")
    def post(self, request: Request, job_id: str) -> Response:
        tenant = request_tenant(request)
        job = selectors.job_get_for_tenant(tenant, job_id)
        services.job_cancel(job=job)
        return Response(_job_body(tenant, job.pk))


class ImageUploadView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": UploadIn},
        responses={201: ImageOut},
        summary="Upload an input image (PNG, JPEG or WebP; ≤ 7 MB; ≤ 4096 px a side)",
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise BunchError(
                "Send the image as multipart/form-data in a field named `file`.",
                code="validation_error",
                fields={"file": ["This field is required."]},
            )
        images.image_size_check(upload.size or 0)
        image = images.image_upload(tenant=request_tenant(request), data=upload.read())
        return Response(ImageOut(image).data, status=status.HTTP_201_CREATED)


class ImageDetailView(APIView):
    @extend_schema(responses=ImageOut, summary="An image's metadata and links")
    def get(self, request: Request, image_id: str) -> Response:
        image = selectors.image_get_for_tenant(request_tenant(request), image_id)
        body = ImageOut(image).data
        body["versions"] = [str(i.pk) for i in selectors.image_versions(image)]
        return Response(body)


class ImageProvenanceView(APIView):
    @extend_schema(
        responses=ProvenanceDetailOut,
        summary="An image's C2PA Content Credentials: state, signer, actions and the manifest",
    )
    def get(self, request: Request, image_id: str) -> Response:
        image = selectors.image_get_for_tenant(request_tenant(request), image_id)
        provenance = selectors.image_provenance(image) or images.provenance_check(image=image)
        return Response(ProvenanceDetailOut(provenance).data)


class _ImageFileView(APIView):
    """Served to the owning tenant, or to anyone holding a valid signed link."""

    variant = "content"

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self._signed = signature_allows(
            request.query_params.get("sig", ""), kwargs.get("image_id"), self.variant
        )
        if self._signed:
            self.permission_classes = []
            self.throttle_classes = []
        super().initial(request, *args, **kwargs)

    def get(self, request: Request, image_id: str) -> FileResponse:
        if self._signed:
            image = selectors.image_get_signed(image_id)
        else:
            image = selectors.image_get_for_tenant(request_tenant(request), image_id)
        if self.variant == "thumbnail":
            response = FileResponse(images.image_thumbnail(image), content_type="image/webp")
        else:
            response = FileResponse(image.file.open("rb"), content_type=image.mime_type)
            suffix = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
            filename = f"bunch-{image.pk}.{suffix.get(image.mime_type, 'bin')}"
            if request.query_params.get("download"):
                response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "private, max-age=3600"
        return response


class ImageContentView(_ImageFileView):
    variant = "content"

    @extend_schema(
        responses={(200, mime): OpenApiTypes.BINARY for mime in images.UPLOAD_FORMATS.values()},
        summary="Image bytes, as the model or the upload made them (PNG, JPEG or WebP)",
    )
    def get(self, request: Request, image_id: str) -> FileResponse:
        return super().get(request, image_id)


class ImageThumbnailView(_ImageFileView):
    variant = "thumbnail"

    @extend_schema(responses={(200, "image/webp"): OpenApiTypes.BINARY}, summary="WebP thumbnail")
    def get(self, request: Request, image_id: str) -> FileResponse:
        return super().get(request, image_id)


class ImageEditView(APIView):
    required_action = Action.GENERATE

    @extend_schema(
        request=EditIn,
        responses={200: JobOut, 202: JobOut},
        summary="Edit an image: a new job whose input is this image",
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER),
            OpenApiParameter("Prefer", str, OpenApiParameter.HEADER),
        ],
    )
    def post(self, request: Request, image_id: str) -> Response:
        tenant = request_tenant(request)
        image = selectors.image_get_for_tenant(tenant, image_id)
        data = EditIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        return _submit(
            request,
            lambda: services.image_edit_submit(
                tenant=tenant,
                image=image,
                instruction=v["instruction"],
                extra_input_ids=tuple(v["input_images"]),
                count=v["count"],
                tier=v["model"],
                **request_actor(request),
            ),
        )
