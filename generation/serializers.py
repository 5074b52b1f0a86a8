from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.limits import metadata_problem
from core.catalog import ALL_RATIOS, MODELS
from core.money import usd
from generation.links import signed_image_url
from generation.models import Image, Job, Kind, Provenance
from generation.presets import PRESETS


class GenerationIn(serializers.Serializer):
    prompt = serializers.CharField(max_length=8000, trim_whitespace=True)
    kind = serializers.ChoiceField(choices=Kind.choices, default=Kind.IMAGE)
    aspect_ratio = serializers.ChoiceField(choices=ALL_RATIOS, required=False)
    count = serializers.IntegerField(min_value=1, max_value=8, default=1)
    model = serializers.ChoiceField(choices=list(MODELS), default="lite")
    image_size = serializers.ChoiceField(choices=["512", "1K", "2K", "4K"], default="1K")
    input_images = serializers.ListField(
        child=serializers.UUIDField(), max_length=14, required=False, default=list
    )
    metadata = serializers.DictField(required=False, default=dict)
    # economy (or a deadline ≥ 24 h away) → batch mode at half price when the plan allows
    priority = serializers.ChoiceField(choices=["standard", "economy"], required=False)
    deadline = serializers.DateTimeField(required=False)

    def validate_metadata(self, value: Any) -> dict[str, Any]:
        problem = metadata_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return dict(value)


class EditIn(serializers.Serializer):
    instruction = serializers.CharField(max_length=8000)
    input_images = serializers.ListField(
        child=serializers.UUIDField(), max_length=13, required=False, default=list
    )
    count = serializers.IntegerField(min_value=1, max_value=8, default=1)
    model = serializers.ChoiceField(choices=list(MODELS), default="lite")


class UploadIn(serializers.Serializer):
    file = serializers.FileField()


class ImageUsageOut(serializers.Serializer):
    input_text_tokens = serializers.IntegerField()
    input_image_tokens = serializers.IntegerField()
    output_text_tokens = serializers.IntegerField()
    output_image_tokens = serializers.IntegerField()
    thoughts_tokens = serializers.IntegerField()
    provider_cost = serializers.SerializerMethodField()
    billed = serializers.SerializerMethodField()

    def get_provider_cost(self, usage: Any) -> str:
        return usd(usage.provider_cost, 9)

    def get_billed(self, usage: Any) -> str:
        return usd(usage.billed, 9)


class ProvenanceOut(serializers.ModelSerializer):
    """An image's Content Credentials as Bunch read them (docs/provenance.md)."""

    class Meta:
        model = Provenance
        fields = [
            "state",
            "ai_generated",
            "signer",
            "issuer",
            "generator",
            "signed_at",
            "digital_source_type",
            "actions",
            "validation_codes",
            "checked_at",
        ]


class ProvenanceDetailOut(ProvenanceOut):
    image_id = serializers.UUIDField()

    class Meta(ProvenanceOut.Meta):
        fields = ["image_id", *ProvenanceOut.Meta.fields, "manifest"]


class ImageOut(serializers.ModelSerializer):
    job_id = serializers.UUIDField(allow_null=True)
    parent_id = serializers.UUIDField(allow_null=True)
    url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    # Nested serializers are built once per list, not once per row as a method field's
    # inner serializer was: that rebuilding was most of a 50-job page's time.
    usage = ImageUsageOut(allow_null=True, read_only=True)
    # None until the image's credentials have been read.
    provenance = ProvenanceOut(allow_null=True, read_only=True)

    class Meta:
        model = Image
        fields = [
            "id",
            "job_id",
            "index",
            "source",
            "parent_id",
            "mime_type",
            "width",
            "height",
            "size_bytes",
            "sha256",
            "created_at",
            "url",
            "thumbnail_url",
            "download_url",
            "usage",
            "provenance",
        ]

    def get_url(self, image: Image) -> str:
        return reverse("api:image-detail", kwargs={"image_id": image.pk})

    def get_thumbnail_url(self, image: Image) -> str:
        return signed_image_url(image.pk, "thumbnail")

    def get_download_url(self, image: Image) -> str:
        return signed_image_url(image.pk, "content")


class ErrorOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class JobOut(serializers.ModelSerializer):
    model = serializers.CharField(source="tier")
    images = ImageOut(many=True, read_only=True)
    estimated_cost = serializers.SerializerMethodField()
    actual_cost = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()
    parent_image_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "status",
            "kind",
            "prompt",
            "aspect_ratio",
            "image_size",
            "model",
            "mode",
            "count",
            "input_image_ids",
            "parent_image_id",
            "metadata",
            "images",
            "estimated_cost",
            "actual_cost",
            "attempts",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "links",
        ]

    def get_estimated_cost(self, job: Job) -> str:
        return usd(job.estimated_cost)

    def get_actual_cost(self, job: Job) -> str:
        # Annotated by the selectors; a job with no images yet has cost nothing.
        return usd(getattr(job, "actual_cost", None) or Decimal(0))

    @extend_schema_field(ErrorOut(allow_null=True))
    def get_error(self, job: Job) -> dict[str, str] | None:
        if not job.error_code:
            return None
        return {"code": job.error_code, "message": job.error_message}

    def get_links(self, job: Job) -> dict[str, str]:
        url = reverse("api:generation-detail", kwargs={"job_id": job.pk})
        return {"self": url, "cancel": f"{url}/cancel"}


_DATETIME = serializers.DateTimeField()


def job_accepted_data(job: Job) -> dict[str, Any]:
    """`JobOut(job).data` for a job just created (no images, no usage, no error), built
    directly: DRF builds a ModelSerializer's fields anew for every instance, which was a
    fifth of the submit path's CPU. A test holds the two to the same output."""
    url = reverse("api:generation-detail", kwargs={"job_id": job.pk})
    return {
        "id": str(job.pk),
        "status": job.status,
        "kind": job.kind,
        "prompt": job.prompt,
        "aspect_ratio": job.aspect_ratio,
        "image_size": job.image_size,
        "model": job.tier,
        "mode": job.mode,
        "count": job.count,
        "input_image_ids": job.input_image_ids,
        "parent_image_id": str(job.parent_image_id) if job.parent_image_id else None,
        "metadata": job.metadata,
        "images": [],
        "estimated_cost": usd(job.estimated_cost),
        "actual_cost": usd(Decimal(0)),
        "attempts": job.attempts,
        "error": None,
        "created_at": _DATETIME.to_representation(job.created_at),
        "started_at": None,
        "finished_at": None,
        "links": {"self": url, "cancel": f"{url}/cancel"},
    }


class PresetOut(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField(source="label")
    default_ratio = serializers.CharField()
    examples = serializers.ListField(child=serializers.CharField())


def preset_list() -> list[dict[str, Any]]:
    return [PresetOut(p).data for p in PRESETS.values()]  # type: ignore[misc]
