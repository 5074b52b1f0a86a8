from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.pricing import estimate_image_cost
from config.serializers import StrictSerializer
from core.catalog import ALL_RATIOS, MODELS
from core.money import usd
from generation import scheduler
from generation.fallback import candidates, job_policy
from generation.links import signed_image_url
from generation.models import Image, Job, Kind, Provenance
from generation.presets import PRESETS

METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_CHARS = 40
METADATA_MAX_VALUE_CHARS = 500
IMAGE_SIZES = ["512", "1K", "2K", "4K"]


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": METADATA_MAX_VALUE_CHARS},
        "maxProperties": METADATA_MAX_KEYS,
        "description": (
            f"Your own labels, echoed back: up to {METADATA_MAX_KEYS} keys of at most "
            f"{METADATA_MAX_KEY_CHARS} characters, string values of at most "
            f"{METADATA_MAX_VALUE_CHARS} (4 KB of JSON in all)."
        ),
    }
)
class MetadataField(serializers.DictField):
    """String → string, with Stripe's limits (and 4 KB in all, checked by the service)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "child",
            serializers.CharField(
                max_length=METADATA_MAX_VALUE_CHARS, allow_blank=True, trim_whitespace=False
            ),
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        value: dict[str, str] = super().to_internal_value(data)
        if len(value) > METADATA_MAX_KEYS:
            raise serializers.ValidationError(f"At most {METADATA_MAX_KEYS} keys.")
        bad = [k for k in value if not k or len(k) > METADATA_MAX_KEY_CHARS]
        if bad:
            raise serializers.ValidationError(
                f"Keys must be 1–{METADATA_MAX_KEY_CHARS} characters: {', '.join(bad[:5])}."
            )
        return value


class GenerationIn(StrictSerializer):
    prompt = serializers.CharField(max_length=8000, trim_whitespace=True)
    kind = serializers.ChoiceField(choices=Kind.choices, default=Kind.IMAGE)
    aspect_ratio = serializers.ChoiceField(choices=ALL_RATIOS, required=False)
    count = serializers.IntegerField(min_value=1, max_value=8, default=1)
    model = serializers.ChoiceField(choices=list(MODELS), default="lite")
    image_size = serializers.ChoiceField(choices=IMAGE_SIZES, default="1K")
    input_images = serializers.ListField(
        child=serializers.UUIDField(), max_length=14, required=False, default=list
    )
    metadata = MetadataField(required=False, default=dict)
    # economy (or a deadline ≥ 24 h away) → batch mode at half price when the plan allows
    priority = serializers.ChoiceField(choices=["standard", "economy"], required=False)
    deadline = serializers.DateTimeField(required=False)
    # false: never fall back; an object: this job's own policy instead of the tenant's.
    fallback = serializers.JSONField(required=False)

    def validate_fallback(self, value: Any) -> Any:
        if value is not False and not isinstance(value, dict):
            raise serializers.ValidationError("fallback must be false or a policy object.")
        return value


def fallback_param(value: Any) -> dict[str, Any] | None:
    """The request's `fallback` as `JobParams.fallback`."""
    if value is None:
        return None
    return {"enabled": False} if value is False else dict(value)


def price_data(job: Job) -> dict[str, Any]:
    """The unit price of the job's images on the model that serves it."""
    return unit_price_data(
        tenant=job.tenant,
        tier=job.tier,
        mode=job.mode,
        image_size=job.image_size,
        prompt=job.model_prompt,
        input_images=len(job.input_image_ids),
    )


def unit_price_data(
    *, tenant: Any, tier: str, mode: str, image_size: str, prompt: str, input_images: int
) -> dict[str, Any]:
    cost = estimate_image_cost(
        tier=tier,
        mode=mode,
        image_size=image_size,
        prompt=prompt,
        input_images=input_images,
        markup=tenant.plan.markup_per_image,
    )
    standard = estimate_image_cost(
        tier=tier,
        mode="standard",
        image_size=image_size,
        prompt=prompt,
        input_images=input_images,
        markup=Decimal(0),
    )
    return {
        "model": tier,
        "mode": mode,
        "provider_per_image": usd(cost.provider_cost),
        "markup_per_image": usd(cost.markup),
        "per_image": usd(cost.billed),
        # What batch mode takes off the provider's standard price (0 in standard mode).
        "discount": usd(standard.provider_cost - cost.provider_cost),
    }


def fallback_price_data(job: Job) -> dict[str, Any] | None:
    """The first fallback's unit price while the job could still move (null otherwise)."""
    if job.requested_tier or job.is_finished or job.mode != "standard":
        return None
    policy = job_policy(job)
    if policy is None:
        return None
    found = candidates(job=job, policy=policy)
    if not found:
        return None
    return {**price_data_for(job, found[0][0]), "after_s": policy.after_s}


def price_data_for(job: Job, tier: str) -> dict[str, Any]:
    return unit_price_data(
        tenant=job.tenant,
        tier=tier,
        mode=job.mode,
        image_size=job.image_size,
        prompt=job.model_prompt,
        input_images=len(job.input_image_ids),
    )


class EditIn(StrictSerializer):
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
    requested_model = serializers.SerializerMethodField()
    served_model = serializers.SerializerMethodField()
    fallback_reason = serializers.SerializerMethodField()

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
            "requested_model",
            "served_model",
            "fallback_reason",
        ]

    def get_url(self, image: Image) -> str:
        return reverse("api:image-detail", kwargs={"image_id": image.pk})

    def get_thumbnail_url(self, image: Image) -> str:
        return signed_image_url(image.pk, "thumbnail")

    def get_download_url(self, image: Image) -> str:
        return signed_image_url(image.pk, "content")

    def get_requested_model(self, image: Image) -> str | None:
        return image.requested_tier or None

    def get_served_model(self, image: Image) -> str | None:
        return image.served_tier or None

    def get_fallback_reason(self, image: Image) -> str | None:
        return image.fallback_reason or None


class JobErrorOut(serializers.Serializer):
    """Why a job failed (not an API error: the request that read it succeeded)."""

    code = serializers.CharField()
    message = serializers.CharField()


class QueueOut(serializers.Serializer):
    position = serializers.IntegerField(help_text="The tenant's own jobs that start before it.")
    estimated_start_at = serializers.DateTimeField()


class JobOut(serializers.ModelSerializer):
    model = serializers.ChoiceField(choices=list(MODELS), source="tier")
    requested_model = serializers.SerializerMethodField()
    served_model = serializers.CharField(source="tier")
    fallback_reason = serializers.SerializerMethodField()
    price = serializers.SerializerMethodField()
    fallback_price = serializers.SerializerMethodField()
    queue = serializers.SerializerMethodField()
    aspect_ratio = serializers.ChoiceField(choices=ALL_RATIOS)
    image_size = serializers.ChoiceField(choices=IMAGE_SIZES)
    input_image_ids = serializers.ListField(child=serializers.UUIDField())
    metadata = MetadataField()
    batch_id = serializers.UUIDField(
        allow_null=True, help_text="The batch this job is an item of; null for a single job."
    )
    item_index = serializers.SerializerMethodField(
        help_text="Its place in the batch (as in `GET /batches/{id}/items`); null outside one."
    )
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
            "requested_model",
            "served_model",
            "fallback_reason",
            "mode",
            "count",
            "input_image_ids",
            "parent_image_id",
            "metadata",
            "batch_id",
            "item_index",
            "images",
            "price",
            "fallback_price",
            "estimated_cost",
            "actual_cost",
            "attempts",
            "cancel_requested",
            "error",
            "queue",
            "created_at",
            "started_at",
            "finished_at",
            "links",
        ]

    def get_item_index(self, job: Job) -> int | None:
        if job.batch_id is None:
            return None
        item = getattr(job, "batch_item", None)  # selected with the job by the selectors
        return item.index if item is not None else None

    def get_requested_model(self, job: Job) -> str:
        return job.requested_tier or job.tier

    def get_fallback_reason(self, job: Job) -> str | None:
        return job.fallback_reason or None

    def get_price(self, job: Job) -> dict[str, Any]:
        return price_data(job)

    def get_fallback_price(self, job: Job) -> dict[str, Any] | None:
        return fallback_price_data(job)

    def get_estimated_cost(self, job: Job) -> str:
        return usd(job.estimated_cost)

    def get_actual_cost(self, job: Job) -> str:
        # Annotated by the selectors; a job with no images yet has cost nothing.
        return usd(getattr(job, "actual_cost", None) or Decimal(0))

    @extend_schema_field(JobErrorOut(allow_null=True))
    def get_error(self, job: Job) -> dict[str, str] | None:
        if not job.error_code:
            return None
        return {"code": job.error_code, "message": job.error_message}

    @functools.cached_property
    def _paces(self) -> dict[int, scheduler.TenantPace]:
        # One serializer for a page of jobs (many=True hands its child to each): each
        # tenant's pace is read once per page.
        return {}

    @extend_schema_field(QueueOut(allow_null=True))
    def get_queue(self, job: Job) -> dict[str, Any] | None:
        """Where a queued job stands (null once it runs, and for batch-mode jobs)."""
        if job.status != Job.Status.QUEUED:
            return None
        # A page of jobs reads each tenant's pace once.
        paces: dict[int, scheduler.TenantPace] = self._paces
        if job.tenant_id not in paces:
            paces[job.tenant_id] = scheduler.tenant_pace(job.tenant)
        estimate = scheduler.queue_estimate(job, pace=paces[job.tenant_id])
        return QueueOut(estimate).data if estimate else None  # type: ignore[return-value]

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
        "requested_model": job.requested_tier or job.tier,
        "served_model": job.tier,
        "fallback_reason": job.fallback_reason or None,
        "mode": job.mode,
        "count": job.count,
        "input_image_ids": job.input_image_ids,
        "parent_image_id": str(job.parent_image_id) if job.parent_image_id else None,
        "metadata": job.metadata,
        "batch_id": None,  # batch items are made by the batch, never answered one by one
        "item_index": None,
        "images": [],
        "price": price_data(job),
        "fallback_price": fallback_price_data(job),
        "estimated_cost": usd(job.estimated_cost),
        "actual_cost": usd(Decimal(0)),
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "error": None,
        # Where it stands is known once it is queued behind others: GET the job to see.
        "queue": None,
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
