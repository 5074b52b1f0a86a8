"""A series moves on: the next frame's job when it may run, the series' end when none is left.

Called at submit, on every frame job's finish (`generation.signals.job_finished`), on cancel
and regenerate, and by the scheduled pass (`series_advance_open`) that picks up a finish
whose news was lost. Every call locks the series row first, so two frames finishing at once
(`references` mode) cannot both start the same next job.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from config.errors import BunchError
from generation import live
from generation.models import Image, Job
from generation.services import SERIES_LABEL, JobParams, job_submit
from series.events import series_event_emit
from series.inputs import frame_inputs
from series.models import Frame, FrameVersion, Series

logger = logging.getLogger(__name__)


def _latest(series: Series) -> dict[int, FrameVersion]:
    """Each frame's newest version, with its job, by frame id."""
    latest: dict[int, FrameVersion] = {}
    for version in (
        FrameVersion.objects.filter(frame__series=series)
        .select_related("job")
        .order_by("frame_id", "number")
    ):
        latest[version.frame_id] = version
    return latest


def frame_image(version: FrameVersion | None) -> Image | None:
    if version is None or version.job.status != Job.Status.SUCCEEDED:
        return None
    return Image.objects.filter(job_id=version.job_id).order_by("index").first()


def series_advance(*, series_id: Any, raise_errors: bool = False) -> Series:
    """Start what may start, settle frames whose run ended, finish the series when done.

    `raise_errors`: a frame's job that cannot be submitted (over quota, account paused)
    raises, for the request that asked (submit, regenerate); otherwise it fails the series.
    """
    with transaction.atomic():
        series = (
            Series.objects.select_for_update(no_key=True, of=("self",))
            .select_related("tenant__plan", "api_key", "created_by")
            .get(pk=series_id)
        )
        if series.is_finished:
            return series
        frames = list(series.frames.order_by("index"))
        latest = _latest(series)
        _settle_frames(frames, latest)
        active = [f for f in frames if f.pk in latest and not latest[f.pk].job.is_finished]
        if series.cancel_requested:
            if not active:
                _finish(series, Series.Status.CANCELED)
            return series
        spent = next((f for f in frames if _run_failed(f, latest) and _exhausted(series, f)), None)
        if spent is not None:
            if not active:
                job = latest[spent.pk].job
                _finish(
                    series,
                    Series.Status.FAILED,
                    code=job.error_code or "frame_failed",
                    message=f"Frame {spent.index} failed after {spent.attempts} "
                    f"attempt(s): {job.error_message or job.status}",
                )
            return series
        startable = _startable(series, frames, latest, active)
        if not startable and not active:
            _finish(series, Series.Status.SUCCEEDED)
            return series
        for frame in startable:
            previous = frames[frame.index - 1] if frame.index else None
            image = frame_image(latest.get(previous.pk)) if previous is not None else None
            try:
                _start(series, frame, image)
            except BunchError as error:
                if raise_errors:
                    raise
                _finish(
                    series,
                    Series.Status.FAILED,
                    code=error.code,
                    message=f"Frame {frame.index} could not start: {error.message}",
                )
                return series
        live.keys_changed(keys=[f"series:{series.pk}"])
    return series


def _run_failed(frame: Frame, latest: dict[int, FrameVersion]) -> bool:
    version = latest.get(frame.pk)
    return (
        frame.needs_run
        and frame.attempts > 0
        and version is not None
        and version.job.status in (Job.Status.FAILED, Job.Status.CANCELED)
    )


def _exhausted(series: Series, frame: Frame) -> bool:
    return frame.attempts >= series.frame_attempts


def _settle_frames(frames: list[Frame], latest: dict[int, FrameVersion]) -> None:
    """A frame whose current run made its image needs no more runs."""
    done = [
        f
        for f in frames
        if f.needs_run
        and f.attempts > 0
        and f.pk in latest
        and latest[f.pk].job.status == Job.Status.SUCCEEDED
    ]
    for frame in done:
        frame.needs_run = False
    if done:
        Frame.objects.filter(pk__in=[f.pk for f in done]).update(needs_run=False)


def _startable(
    series: Series, frames: list[Frame], latest: dict[int, FrameVersion], active: list[Frame]
) -> list[Frame]:
    """Chained: the first frame still to run, once nothing runs (its previous frame has
    its image by then). References: every frame still to run that is not running."""
    waiting = [f for f in frames if f.needs_run and f not in active]
    if not series.chained:
        return waiting
    if active or not waiting:
        return []
    first = waiting[0]
    if first.index > 0 and frames[first.index - 1].needs_run:
        return []
    return [first]


def frame_params(
    *, series: Series, frame: Frame, input_ids: Sequence[uuid.UUID | str]
) -> JobParams:
    """A frame's job: the series' kind and model, labelled with the series and frame."""
    return JobParams(
        prompt=frame.prompt,
        kind=series.kind,
        aspect_ratio=frame.aspect_ratio or series.aspect_ratio or None,
        tier=series.tier,
        input_image_ids=tuple(uuid.UUID(str(i)) for i in input_ids),
        metadata={SERIES_LABEL: str(series.pk), "frame": str(frame.index)},
    )


def _start(series: Series, frame: Frame, previous_image: Image | None) -> None:
    inputs = frame_inputs(
        consistency=series.consistency,
        references=series.reference_image_ids,
        previous=str(previous_image.pk) if previous_image is not None else None,
    )
    job = job_submit(
        tenant=series.tenant,
        params=frame_params(series=series, frame=frame, input_ids=inputs),
        api_key=series.api_key,
        user=series.created_by,
    )
    cause = FrameVersion.Cause.RETRY if frame.attempts else frame.run_cause
    number = FrameVersion.objects.filter(frame=frame).count() + 1
    FrameVersion.objects.create(frame=frame, number=number, job=job, cause=cause)
    frame.attempts += 1
    Frame.objects.filter(pk=frame.pk).update(attempts=frame.attempts)


def _finish(series: Series, status: str, *, code: str = "", message: str = "") -> None:
    series.status = status
    series.error_code = code
    series.error_message = message
    series.finished_at = timezone.now()
    series.save(update_fields=["status", "error_code", "error_message", "finished_at"])
    series_event_emit(series=series)
    live.keys_changed(keys=[f"series:{series.pk}"])


_advancing = threading.local()


def on_job_finished(sender: Any, *, job_id: Any = None, **kwargs: Any) -> None:
    """`generation.signals.job_finished`: a frame's job ended, so the series may move on.

    When jobs run inline (django-q2's sync mode: tests, `make run` without a cluster), the
    next frame's job runs inside the advance that created it, and its finish would advance
    again one level deeper: fifty frames passed Python's recursion limit. So a finish heard
    while this thread is already advancing is queued, and the outermost call works through
    the queue in a loop."""
    series_id = (
        FrameVersion.objects.filter(job_id=job_id)
        .values_list("frame__series_id", flat=True)
        .first()
    )
    if series_id is None:
        return
    pending: list[Any] | None = getattr(_advancing, "pending", None)
    if pending is not None:
        pending.append(series_id)
        return
    _advancing.pending = pending = [series_id]
    try:
        while pending:
            series_advance(series_id=pending.pop(0))
    finally:
        _advancing.pending = None


def series_advance_open() -> int:
    """Advance every unfinished series (the safety net for a finish whose news was lost)."""
    ids: list[uuid.UUID] = list(
        Series.objects.filter(status__in=[Series.Status.QUEUED, Series.Status.RUNNING])
        .values_list("pk", flat=True)
        .iterator()
    )
    finished = 0
    for pk in ids:
        try:
            finished += series_advance(series_id=pk).is_finished
        except Exception:  # one series' trouble must not stop the pass
            logger.exception("series %s could not advance", pk)
    return finished
