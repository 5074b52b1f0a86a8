"""The generation REST API: translate HTTP to services and back, nothing more."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import BunchError
from config.pagination import StrictCursorPagination
from config.schema import ErrorOut
from generation import idempotency, images, selectors, services
from generation.links import signature_check
from generation.models import Job, Kind, WorkStatus
from generation.serializers import (
    EditIn,
    GenerationIn,
    ImageOut,
    JobOut,
    ProvenanceDetailOut,
    UploadIn,
    fallback_param,
    job_accepted_data,
    job_rows,
)
from generation.streams import (
    JobCursor,
    PendingWait,
    StreamStart,
    event_schema,
    job_answer,
    job_body,
)
from tenants.authentication import request_actor, request_tenant
from tenants.roles import Action

PREFER_WAIT = re.compile(r"\bwait\s*=\s*(\d+)")
MAX_WAIT_S = 60


def _accepted_body(job: Job) -> dict[str, Any]:
    """The body of a job just created: no images or usage yet, so nothing to read back."""
    return job_accepted_data(job)


def _prefer_wait(request: Request) -> int:
    match = PREFER_WAIT.search(request.headers.get("Prefer", ""))
    return min(int(match.group(1)), MAX_WAIT_S) if match else 0


def _job_answer(
    request: Request,
    job_id: Any,
    *,
    accepted: dict[str, Any] | None = None,
    replayed: bool = False,
) -> Response:
    """The job as it is now: 202 while it is unfinished, 200 once it has finished.

    `Prefer: wait=N` holds the answer up to N s (≤ 60) for the job to finish (the async
    view around this one does the waiting). `accepted` is the body of a job just created,
    which needs no reading back.
    """
    tenant = request_tenant(request)
    wait = _prefer_wait(request)
    body = accepted if accepted is not None else job_body(tenant, job_id)
    response = job_answer(body, waited=bool(wait))
    if wait and response.status_code == status.HTTP_202_ACCEPTED:
        # Answered by the async view around this one (generation/streams.py) when the job
        # finishes or the wait runs out, without holding a thread meanwhile.
        pending = PendingWait(tenant=tenant, job_id=job_id, seconds=wait)
        request._request.bunch_wait = pending  # type: ignore[attr-defined]
        response.bunch_wait = pending  # type: ignore[attr-defined]  # (config.asgi_front)
    if wait:
        response["Preference-Applied"] = f"wait={wait}"
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def idempotent_create(
    request: Request,
    validated: dict[str, Any],
    *,
    create: Callable[[], Any],
    answer: Callable[[Any], tuple[dict[str, Any], Response]],
    replay: Callable[[str], Response],
) -> Response:
    """Run `create()` under the request's Idempotency-Key, if any, and answer.

    `answer(created)` gives the body to remember (its `id` names what was created) and the
    response; a replay (same key, same validated input) is answered by `replay(id)`: what
    the first request created, as it is now, by the same rules as the first answer.
    """
    tenant = request_tenant(request)
    key = idempotency.key_check(request.headers.get("Idempotency-Key", ""))
    if not key:
        return answer(create())[1]
    fingerprint = idempotency.request_fingerprint(
        operation=f"{request.method} {request.path}", validated=validated
    )
    # The key's record, what it creates and the remembered answer commit together: a web process
    # that dies anywhere in between leaves none of them, so the client's retry with the
    # same key makes the job once (a record left half-done answered 409 for 24 hours while
    # its job ran unseen: `make chaos`, scenario web_kills). A concurrent duplicate waits
    # on the key's unique index until this commits, then replays.
    with transaction.atomic():
        record = idempotency.idempotency_begin(tenant=tenant, key=key, fingerprint=fingerprint)
        if idempotency.is_replay(record):
            first = idempotency.resource_id(record)
        else:
            body, response = answer(create())
            idempotency.idempotency_finish(record=record, status=response.status_code, body=body)
    if idempotency.is_replay(record):
        return replay(first)
    return response


def _submit(request: Request, validated: dict[str, Any], submit: Callable[[], Job]) -> Response:
    """Submit a job under the request's Idempotency-Key, if any (`idempotent_create`)."""

    def answer(job: Job) -> tuple[dict[str, Any], Response]:
        body = _accepted_body(job)
        return body, _job_answer(request, job.pk, accepted=body)

    return idempotent_create(
        request,
        validated,
        create=submit,
        answer=answer,
        replay=lambda job_id: _job_answer(request, job_id, replayed=True),
    )


class JobPagination(StrictCursorPagination):
    # Ties broken by id: rows created in the same microsecond came back in any order, so
    # a cursor's offset among them skipped one job and repeated another.
    ordering = ("-created_at", "-id")  # type: ignore[assignment]


def _choice(request: Request, name: str, choices: list[str]) -> str | None:
    """A filter that must be one of `choices` when given: a typo is a 400, not an empty list."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if value not in choices:
        message = f"{name} must be one of: {', '.join(choices)}."
        raise BunchError(message, code="invalid_filter", fields={name: [message]})
    return value


class GenerationListView(APIView):
    pagination_class = JobPagination  # read by the schema: the list is a page envelope

    @extend_schema(
        request=GenerationIn,
        responses={200: JobOut, 202: JobOut, 402: ErrorOut},
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
            fallback=fallback_param(v.get("fallback")),
            interactive=_prefer_wait(request) > 0,
            mode=services.route_mode(
                tenant=request_tenant(request),
                priority=v.get("priority"),
                deadline=v.get("deadline"),
            ),
        )
        return _submit(
            request,
            v,
            lambda: services.job_submit(
                tenant=request_tenant(request), params=params, **request_actor(request)
            ),
        )

    @extend_schema(
        responses=JobOut(many=True),
        operation_id="v1_generations_list",
        summary="List jobs, newest first",
        parameters=[
            OpenApiParameter("status", str, enum=list(WorkStatus.values)),
            OpenApiParameter("kind", str, enum=list(Kind.values)),
            OpenApiParameter("created_after", OpenApiTypes.DATETIME),
            OpenApiParameter("created_before", OpenApiTypes.DATETIME),
            OpenApiParameter(
                "metadata", str, many=True, explode=True, description="key:value, repeatable"
            ),
            OpenApiParameter("batch", OpenApiTypes.UUID, description="Only this batch's items"),
            OpenApiParameter("q", str, description="text the prompt contains (any case, ≤ 200)"),
        ],
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        metadata = dict(item.split(":", 1) for item in query.getlist("metadata") if ":" in item)
        jobs = selectors.job_list(
            request_tenant(request),
            status=_choice(request, "status", list(WorkStatus.values)),
            kind=_choice(request, "kind", list(Kind.values)),
            created_after=_datetime(query.get("created_after"), "created_after"),
            created_before=_datetime(query.get("created_before"), "created_before"),
            metadata=metadata,
            batch_id=_uuid_filter(request, "batch"),
            q=_search(query.get("q", "")),
        )
        paginator = JobPagination()
        # The page first, then its images (`page_images`: one query, no queryset per job).
        page = paginator.paginate_queryset(jobs.prefetch_related(None), request, view=self)
        page = selectors.page_images(list(page or []))
        return paginator.get_paginated_response(job_rows(page))


def _uuid_filter(request: Request, name: str) -> uuid.UUID | None:
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        message = f"{name} must be an id (a UUID)."
        raise BunchError(message, code="invalid_filter", fields={name: [message]}) from None


MAX_SEARCH = 200


def _search(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_SEARCH:
        raise BunchError(
            f"q is longer than {MAX_SEARCH} characters.",
            code="validation_error",
            fields={"q": [f"At most {MAX_SEARCH} characters."]},
        )
    return value


def _datetime(value: str | None, name: str) -> Any:
    if value is None:  # `created_after=` (empty) is refused below, not read as absent
        return None
    from django.utils.dateparse import parse_date, parse_datetime

    try:
        parsed = parse_datetime(value) or parse_date(value)
        # In UTC before it reaches the database: PostgreSQL refuses an offset beyond ±15:59
        # (a 500 before), which ISO 8601 and Python allow up to ±23:59.
        if isinstance(parsed, dt.datetime) and parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):  # a date out of range, or out of range in UTC
        parsed = None
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
        return Response(job_body(request_tenant(request), job_id))


class GenerationEventsView(APIView):
    @extend_schema(
        responses={(200, "text/event-stream"): event_schema(["status", "image", "done"])},
        summary="A job's events as they happen (Server-Sent Events)",
        description="`status` per status change, `image` per stored image, then `done` "
        "with the job. Resume with `Last-Event-ID`; after `done` the answer is 204.",
        parameters=[OpenApiParameter("Last-Event-ID", str, OpenApiParameter.HEADER)],
    )
    def get(self, request: Request, job_id: str) -> Response:
        tenant = request_tenant(request)
        job = selectors.job_get_for_tenant(tenant, job_id)
        request._request.bunch_stream = StreamStart(  # type: ignore[attr-defined]
            key=f"job:{job.pk}", read=lambda: job_body(tenant, job.pk), cursor=JobCursor.from_id
        )
        return Response()


class GenerationCancelView(APIView):
    required_action = Action.GENERATE

    @extend_schema(
        request=None,
        responses={200: JobOut, 202: JobOut},
        summary="Cancel images not yet started",
        description=(
            "A queued job is canceled at once (200, `canceled`). A running job stops before "
            "its next image: 202 with `cancel_requested: true` and the images made so far, "
            "which are kept and billed; it ends `canceled` (or `succeeded`, if its last "
            "image was already being made)."
        ),
    )
    def post(self, request: Request, job_id: str) -> Response:
        tenant = request_tenant(request)
        job = selectors.job_get_for_tenant(tenant, job_id)
        services.job_cancel(job=job)
        return job_answer(job_body(tenant, job.pk), waited=False)


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
        token = request.query_params.get("sig", "")
        # A key, when sent, is the credential; otherwise a bad link says what is wrong.
        self._signed = bool(token) and "Authorization" not in request.headers
        if self._signed:
            signature_check(token, kwargs.get("image_id"), self.variant)
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
        responses={200: JobOut, 202: JobOut, 402: ErrorOut},
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
            v,
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
