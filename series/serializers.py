"""Series in and out of the API."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.serializers import StrictSerializer
from core.catalog import ALL_RATIOS, MODELS
from core.money import usd
from generation.models import Job, Kind
from generation.presets import model_prompt
from generation.serializers import ImageOut, MetadataField, unit_price_data
from series.inputs import input_count
from series.models import MAX_FRAME_ATTEMPTS, MAX_FRAMES, Consistency, Frame, FrameVersion, Series
from series.selectors import series_billed

FRAME_STATUSES = ["waiting", "queued", "running", "succeeded", "failed", "canceled", "skipped"]


class FrameIn(StrictSerializer):
    prompt = serializers.CharField(max_length=8000)
    aspect_ratio = serializers.ChoiceField(choices=ALL_RATIOS, required=False)


class SeriesIn(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    kind = serializers.ChoiceField(choices=Kind.choices, default=Kind.IMAGE)
    model = serializers.ChoiceField(choices=list(MODELS), default="lite")
    consistency = serializers.ChoiceField(choices=Consistency.choices, default=Consistency.BOTH)
    references = serializers.ListField(
        child=serializers.UUIDField(), max_length=14, required=False, default=list
    )
    aspect_ratio = serializers.ChoiceField(choices=ALL_RATIOS, required=False)
    frames = serializers.ListField(child=FrameIn(), min_length=1, max_length=MAX_FRAMES)
    frame_attempts = serializers.IntegerField(min_value=1, max_value=MAX_FRAME_ATTEMPTS, default=2)
    metadata = MetadataField(required=False, default=dict)


class RegenerateIn(StrictSerializer):
    prompt = serializers.CharField(max_length=8000, required=False)
    cascade = serializers.BooleanField(default=False)


def frame_status(series: Series, frame: Frame, versions: list[FrameVersion]) -> str:
    latest = versions[-1] if versions else None
    if latest is not None and not latest.job.is_finished:
        return str(latest.job.status)
    if frame.needs_run and frame.attempts and latest is not None:
        if latest.job.status == Job.Status.SUCCEEDED:
            return "succeeded"  # the series has yet to take note
        # Another attempt is on its way unless the series has ended.
        return str(latest.job.status) if series.is_finished else "queued"
    if frame.needs_run:
        if series.status == Series.Status.FAILED:
            return "skipped"
        if series.status == Series.Status.CANCELED:
            return "canceled"
        return "waiting"
    return str(latest.job.status) if latest is not None else "waiting"


def _current(versions: list[FrameVersion]) -> tuple[FrameVersion | None, Any]:
    """The newest version that made an image, and that image."""
    for version in reversed(versions):
        images = list(version.job.images.all())
        if version.job.status == Job.Status.SUCCEEDED and images:
            return version, images[0]
    return None, None


class SeriesFrameVersionOut(serializers.Serializer):
    number = serializers.IntegerField()
    cause = serializers.ChoiceField(choices=FrameVersion.Cause.choices)
    job_id = serializers.UUIDField()
    status = serializers.CharField(source="job.status")
    prompt = serializers.CharField(source="job.prompt")
    input_image_ids = serializers.ListField(
        child=serializers.UUIDField(), source="job.input_image_ids"
    )
    image_id = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_image_id(self, version: FrameVersion) -> str | None:
        images = list(version.job.images.all())
        return str(images[0].pk) if images else None


class SeriesFrameOut(serializers.Serializer):
    index = serializers.IntegerField()
    prompt = serializers.CharField()
    aspect_ratio = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=FRAME_STATUSES)
    version = serializers.IntegerField(allow_null=True, help_text="The version shown (its image).")
    image = ImageOut(allow_null=True)
    versions = SeriesFrameVersionOut(many=True)
    links = serializers.DictField(child=serializers.CharField())


class SeriesProgressOut(serializers.Serializer):
    total = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    running = serializers.IntegerField()
    waiting = serializers.IntegerField()
    frames = serializers.ListField(child=serializers.ChoiceField(choices=FRAME_STATUSES))


class SeriesErrorOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class SeriesPriceOut(serializers.Serializer):
    model = serializers.CharField()
    mode = serializers.CharField()
    provider_per_image = serializers.CharField()
    markup_per_image = serializers.CharField()
    per_image = serializers.CharField()
    discount = serializers.CharField()


class SeriesOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Series.Status.choices)
    kind = serializers.CharField()
    model = serializers.CharField(source="tier")
    consistency = serializers.ChoiceField(choices=Consistency.choices)
    aspect_ratio = serializers.SerializerMethodField()
    references = serializers.ListField(child=serializers.UUIDField(), source="reference_image_ids")
    frame_attempts = serializers.IntegerField()
    metadata = MetadataField()
    price = serializers.SerializerMethodField()
    estimated_cost = serializers.SerializerMethodField()
    billed = serializers.SerializerMethodField()
    cancel_requested = serializers.BooleanField()
    error = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    frames = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    links = serializers.SerializerMethodField()

    def get_aspect_ratio(self, series: Series) -> str | None:
        return series.aspect_ratio or None

    @extend_schema_field(SeriesPriceOut)
    def get_price(self, series: Series) -> dict[str, Any]:
        """The unit price of its dearest frame (the one with the most input images)."""
        frames = list(series.frames.all())
        refs = len(series.reference_image_ids)
        counts = [
            input_count(consistency=series.consistency, references=refs, index=f.index)
            for f in frames
        ]
        widest = max(range(len(frames)), key=lambda i: counts[i]) if frames else 0
        prompt = frames[widest].prompt if frames else ""
        return unit_price_data(
            tenant=series.tenant,
            tier=series.tier,
            mode="standard",
            image_size="1K",
            prompt=model_prompt(series.kind, prompt),
            input_images=counts[widest] if counts else refs,
        )

    def get_estimated_cost(self, series: Series) -> str:
        return usd(series.estimated_cost)

    def get_billed(self, series: Series) -> str:
        return usd(series_billed(series), 9)

    @extend_schema_field(SeriesErrorOut(allow_null=True))
    def get_error(self, series: Series) -> dict[str, str] | None:
        if not series.error_code:
            return None
        return {"code": series.error_code, "message": series.error_message}

    def _frames(self, series: Series) -> list[dict[str, Any]]:
        cache: dict[Any, list[dict[str, Any]]] = self.__dict__.setdefault("_frames_cache", {})
        if series.pk not in cache:
            cache[series.pk] = [self._frame(series, f) for f in series.frames.all()]
        return cache[series.pk]

    def _frame(self, series: Series, frame: Frame) -> dict[str, Any]:
        versions = list(frame.versions.all())
        shown, image = _current(versions)
        url = reverse("api:series-detail", kwargs={"series_id": series.pk})
        return {
            "index": frame.index,
            "prompt": frame.prompt,
            "aspect_ratio": frame.aspect_ratio or series.aspect_ratio or None,
            "status": frame_status(series, frame, versions),
            "version": shown.number if shown else None,
            "image": ImageOut(image).data if image is not None else None,
            "versions": SeriesFrameVersionOut(versions, many=True).data,
            "links": {"regenerate": f"{url}/frames/{frame.index}/regenerate"},
        }

    @extend_schema_field(SeriesProgressOut)
    def get_progress(self, series: Series) -> dict[str, Any]:
        statuses = [f["status"] for f in self._frames(series)]
        return {
            "total": len(statuses),
            "succeeded": statuses.count("succeeded"),
            "failed": statuses.count("failed"),
            "running": statuses.count("running") + statuses.count("queued"),
            "waiting": statuses.count("waiting"),
            "frames": statuses,
        }

    @extend_schema_field(SeriesFrameOut(many=True))
    def get_frames(self, series: Series) -> list[dict[str, Any]]:
        return self._frames(series)

    def get_links(self, series: Series) -> dict[str, str]:
        url = reverse("api:series-detail", kwargs={"series_id": series.pk})
        return {
            "self": url,
            "events": f"{url}/events",
            "cancel": f"{url}/cancel",
            "results_zip": f"{url}/results.zip",
        }
