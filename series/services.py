"""Named writes of series: submit, cancel, regenerate a frame.

A series makes no images itself: each frame is an ordinary generation job, created by
`series.progress.series_advance` when the frame may run (at once in `references` mode; once
the frame before it has succeeded when chained), so the scheduler's fair share applies to
it like to any job, and a series waiting for its next frame holds no slot.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from billing.pricing import estimate_image_cost, estimate_tokens
from config.errors import BunchError, Conflict, NotFound
from core.catalog import get_model
from core.money import from_nanos, to_nanos
from generation.models import Image, Job, Kind
from generation.presets import model_prompt
from generation.services import (
    InvalidRequest,
    JobParams,
    NotCancelable,
    job_cancel,
    job_params_check,
    require_active,
)
from series.inputs import input_count
from series.models import MAX_FRAME_ATTEMPTS, MAX_FRAMES, Consistency, Frame, Series
from series.progress import series_advance
from tenants.models import ApiKey, Tenant

# The model's limits per call (DESIGN.md): 14 input images, 65,536 input tokens.
MAX_INPUT_TOKENS = 65_536


@dataclass(frozen=True)
class FrameSpec:
    prompt: str
    aspect_ratio: str | None = None


@dataclass(frozen=True)
class SeriesSpec:
    frames: tuple[FrameSpec, ...]
    references: tuple[uuid.UUID, ...] = ()
    consistency: str = Consistency.BOTH
    kind: str = Kind.IMAGE
    tier: str = "lite"
    aspect_ratio: str | None = None
    name: str = ""
    frame_attempts: int = 2
    metadata: dict[str, Any] | None = None


def _frame_error(index: int, error: BunchError) -> InvalidRequest:
    where = f"frames[{index}]"
    message = f"Frame {index} ({where}): {error.message}"
    fields = {f"{where}.{name}": messages for name, messages in (error.fields or {}).items()}
    return InvalidRequest(message, code=error.code, fields=fields or {where: [error.message]})


def frame_check(
    *, tenant: Tenant, spec: SeriesSpec, index: int, frame: FrameSpec
) -> tuple[JobParams, Decimal]:
    """The frame's job parameters, checked as a job's are and against the model's input
    limits (a 400 naming the frame); returns them with the frame's per-image estimate."""
    inputs = input_count(consistency=spec.consistency, references=len(spec.references), index=index)
    params = JobParams(
        prompt=frame.prompt,
        kind=spec.kind,
        aspect_ratio=frame.aspect_ratio or spec.aspect_ratio,
        tier=spec.tier,
        # Stand-ins of the right number: the previous frame's image does not exist yet.
        input_image_ids=tuple(uuid.uuid4() for _ in range(inputs)),
    )
    model = get_model(spec.tier)
    prompt = model_prompt(spec.kind, frame.prompt)
    if inputs > model.max_input_images:
        raise _limit(
            index,
            f"it would send {inputs} input images; {model.display_name} takes at most "
            f"{model.max_input_images} per call (use fewer references, or consistency "
            "'references' or 'chain').",
            "too_many_input_images",
        )
    tokens = estimate_tokens(prompt=prompt, input_images=0) + inputs * model.input_image_tokens
    if tokens > MAX_INPUT_TOKENS:
        raise _limit(
            index,
            f"its input could reach {tokens:,} tokens ({inputs} input image(s) at "
            f"{model.input_image_tokens:,} and the prompt); the model takes at most "
            f"{MAX_INPUT_TOKENS:,}.",
            "input_tokens_exceeded",
        )
    try:
        job_params_check(tenant, params)
    except BunchError as error:
        raise _frame_error(index, error) from None
    cost = estimate_image_cost(
        tier=spec.tier,
        mode="standard",
        image_size=params.image_size,
        prompt=prompt,
        input_images=inputs,
        markup=tenant.plan.markup_per_image,
    )
    return params, cost.billed


def _limit(index: int, reason: str, code: str) -> InvalidRequest:
    message = f"Frame {index} (frames[{index}]) is over the model's input limits: {reason}"
    return InvalidRequest(message, code=code, fields={f"frames[{index}]": [message]})


def _references(tenant: Tenant, ids: Sequence[uuid.UUID]) -> list[str]:
    found = set(Image.objects.filter(tenant=tenant, pk__in=ids).values_list("pk", flat=True))
    missing = [str(i) for i in ids if i not in found]
    if missing:
        message = f"No such image(s) in your account: {', '.join(missing)}."
        raise InvalidRequest(
            message, code="input_image_not_found", fields={"references": [message]}
        )
    return [str(i) for i in ids]


def series_estimate(*, tenant: Tenant, spec: SeriesSpec) -> Decimal:
    """Frames × each frame's per-image estimate (its input images at the input price)."""
    nanos = sum(
        to_nanos(frame_check(tenant=tenant, spec=spec, index=i, frame=f)[1])
        for i, f in enumerate(spec.frames)
    )
    return from_nanos(nanos)


def _spec_check(tenant: Tenant, spec: SeriesSpec) -> None:
    if not 1 <= len(spec.frames) <= MAX_FRAMES:
        message = f"A series has 1 to {MAX_FRAMES} frames."
        raise InvalidRequest(message, code="invalid_request", fields={"frames": [message]})
    if spec.consistency not in Consistency.values:
        message = f"consistency must be one of {', '.join(Consistency.values)}."
        raise InvalidRequest(message, code="invalid_request", fields={"consistency": [message]})
    if not 1 <= spec.frame_attempts <= MAX_FRAME_ATTEMPTS:
        message = f"frame_attempts must be between 1 and {MAX_FRAME_ATTEMPTS}."
        raise InvalidRequest(message, code="invalid_request", fields={"frame_attempts": [message]})


def series_submit(
    *,
    tenant: Tenant,
    spec: SeriesSpec,
    api_key: ApiKey | None = None,
    user: User | None = None,
) -> Series:
    """Check every frame, then create the series and its first job(s) in one transaction:
    a frame the model could not take, or a first job over quota, creates nothing."""
    require_active(tenant)
    _spec_check(tenant, spec)
    estimate = series_estimate(tenant=tenant, spec=spec)
    with transaction.atomic():
        series = Series.objects.create(
            tenant=tenant,
            api_key=api_key,
            created_by=user,
            name=spec.name,
            kind=spec.kind,
            tier=spec.tier,
            consistency=spec.consistency,
            aspect_ratio=spec.aspect_ratio or "",
            reference_image_ids=_references(tenant, spec.references),
            frame_attempts=spec.frame_attempts,
            metadata=spec.metadata or {},
            estimated_cost=estimate,
            status=Series.Status.RUNNING,
        )
        Frame.objects.bulk_create(
            Frame(series=series, index=i, prompt=f.prompt, aspect_ratio=f.aspect_ratio or "")
            for i, f in enumerate(spec.frames)
        )
        series_advance(series_id=series.pk, raise_errors=True)
    series.refresh_from_db()
    return series


def series_cancel(*, series: Series) -> Series:
    """Stop the frames not yet made; the frames made are kept and billed."""
    updated = Series.objects.filter(
        pk=series.pk, status__in=[Series.Status.QUEUED, Series.Status.RUNNING]
    ).update(cancel_requested=True)
    if not updated:
        series.refresh_from_db()
        raise Conflict(f"The series is already {series.status}.", code="series_not_cancelable")
    open_jobs = Job.objects.filter(frame_version__frame__series=series).exclude(
        status__in=Job.FINISHED
    )
    for job in open_jobs:
        with contextlib.suppress(NotCancelable):  # finished meanwhile: its frame is made
            job_cancel(job=job)
    series_advance(series_id=series.pk)
    series.refresh_from_db()
    return series


def frame_regenerate(
    *, series: Series, index: int, prompt: str | None = None, cascade: bool = False
) -> Series:
    """A new version of frame `index` (with a new prompt, if given); with `cascade`, new
    versions of every frame after it too, each chained from the new one before it.
    Earlier versions are kept."""
    with transaction.atomic():
        series = Series.objects.select_for_update().select_related("tenant__plan").get(pk=series.pk)
        if not series.is_finished:
            raise Conflict(
                "The series is still running; wait for it to finish or cancel it first.",
                code="series_running",
            )
        frames = list(series.frames.order_by("index"))
        if not 0 <= index < len(frames):
            raise NotFound(f"The series has no frame {index} (frames 0–{len(frames) - 1}).")
        frame = frames[index]
        chained_from = frames[index - 1] if series.chained and index > 0 else None
        if chained_from is not None and chained_from.needs_run:
            raise Conflict(
                f"Frame {index - 1} has no image yet: regenerate from frame {index - 1}.",
                code="previous_frame_missing",
            )
        spec = _series_spec(series, frames)
        if prompt is not None:
            spec = replace(
                spec,
                frames=tuple(
                    replace(f, prompt=prompt) if i == index else f
                    for i, f in enumerate(spec.frames)
                ),
            )
            frame.prompt = prompt
        rerun = frames[index:] if cascade else [frame]
        extra = sum(
            to_nanos(frame_check(tenant=series.tenant, spec=spec, index=f.index, frame=s)[1])
            for f, s in ((f, spec.frames[f.index]) for f in rerun)
        )
        for f in rerun:
            f.needs_run, f.attempts = True, 0
            f.run_cause = "regenerate" if f.index == index else "cascade"
        Frame.objects.bulk_update(rerun, ["needs_run", "attempts", "run_cause"])
        if prompt is not None:
            Frame.objects.filter(pk=frame.pk).update(prompt=prompt)
        series.status = Series.Status.RUNNING
        series.cancel_requested = False
        series.error_code = series.error_message = ""
        series.finished_at = None
        series.estimated_cost += from_nanos(extra)
        series.save(
            update_fields=[
                "status",
                "cancel_requested",
                "error_code",
                "error_message",
                "finished_at",
                "estimated_cost",
            ]
        )
        series_advance(series_id=series.pk, raise_errors=True)
    series.refresh_from_db()
    return series


def _series_spec(series: Series, frames: list[Frame]) -> SeriesSpec:
    return SeriesSpec(
        frames=tuple(
            FrameSpec(prompt=f.prompt, aspect_ratio=f.aspect_ratio or None) for f in frames
        ),
        references=tuple(uuid.UUID(i) for i in series.reference_image_ids),
        consistency=series.consistency,
        kind=series.kind,
        tier=series.tier,
        aspect_ratio=series.aspect_ratio or None,
    )
