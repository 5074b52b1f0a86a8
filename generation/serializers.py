from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from billing.pricing import estimate_image_cost, estimate_tokens
from config.serializers import StrictSerializer
from core.catalog import ALL_RATIOS, MODELS
from core.money import usd
from generation import scheduler
from generation.fallback import candidates, job_policy
from generation.links import IdPath, ImageLinks, id_path
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

    def to_representation(self, usage: Any) -> dict[str, Any]:
        if type(self) is not ImageUsageOut:  # a subclass's fields: DRF's own way
            return super().to_representation(usage)
        # What the fields above give, built directly (see `JobOut.to_representation`).
        return {
            "input_text_tokens": _nullable(usage.input_text_tokens, int),
            "input_image_tokens": _nullable(usage.input_image_tokens, int),
            "output_text_tokens": _nullable(usage.output_text_tokens, int),
            "output_image_tokens": _nullable(usage.output_image_tokens, int),
            "thoughts_tokens": _nullable(usage.thoughts_tokens, int),
            "provider_cost": usd(usage.provider_cost, 9),
            "billed": usd(usage.billed, 9),
        }


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

    def to_representation(self, p: Provenance) -> dict[str, Any]:
        if type(self) is not ProvenanceOut:  # a subclass's fields: DRF's own way
            return super().to_representation(p)
        # What the fields above give, built directly (see `JobOut.to_representation`).
        iso = self._iso
        return {
            "state": _choice(p.state),
            "ai_generated": _nullable(p.ai_generated, bool),
            "signer": _nullable(p.signer, str),
            "issuer": _nullable(p.issuer, str),
            "generator": _nullable(p.generator, str),
            "signed_at": iso(p.signed_at),
            "digital_source_type": _nullable(p.digital_source_type, str),
            "actions": p.actions,
            "validation_codes": p.validation_codes,
            "checked_at": iso(p.checked_at),
        }

    @functools.cached_property
    def _iso(self) -> Callable[[Any], str | None]:
        return _datetimes()  # once per answer (a page's provenances share this child)


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
        return self._links.detail(image.pk)

    def get_thumbnail_url(self, image: Image) -> str:
        return self._links.signed(image.pk, "thumbnail")

    def get_download_url(self, image: Image) -> str:
        return self._links.signed(image.pk, "content")

    @functools.cached_property
    def _links(self) -> ImageLinks:
        # A serializer is made per answer (a page's images share its child): paths and
        # signer once per answer.
        return ImageLinks()

    # The fast path's nested serializers, made directly: building `self.fields` (DRF
    # deep-copies every declared field) cost more than a 50-job page's images. A subclass,
    # whose fields may differ, takes DRF's own path and its own fields.
    @functools.cached_property
    def _usage_out(self) -> ImageUsageOut:
        return ImageUsageOut(allow_null=True, read_only=True)

    @functools.cached_property
    def _provenance_out(self) -> ProvenanceOut:
        return ProvenanceOut(allow_null=True, read_only=True)

    @functools.cached_property
    def _iso(self) -> Callable[[Any], str | None]:
        return _datetimes()

    def to_representation(self, image: Image) -> dict[str, Any]:
        """What the fields above give, built directly (see `JobOut.to_representation`)."""
        if type(self) is not ImageOut:  # a subclass's fields: DRF's own way
            return super().to_representation(image)
        links, iso = self._links, self._iso
        usage = getattr(image, "usage", None)  # None: no usage row (DRF's ObjectDoesNotExist)
        provenance = getattr(image, "provenance", None)
        return {
            "id": str(image.pk),
            "job_id": _nullable(image.job_id, str),
            "index": _nullable(image.index, int),
            "source": _choice(image.source),
            "parent_id": _nullable(image.parent_id, str),
            "mime_type": _nullable(image.mime_type, str),
            "width": _nullable(image.width, int),
            "height": _nullable(image.height, int),
            "size_bytes": _nullable(image.size_bytes, int),
            "sha256": _nullable(image.sha256, str),
            "created_at": iso(image.created_at),
            "url": links.detail(image.pk),
            "thumbnail_url": links.signed(image.pk, "thumbnail"),
            "download_url": links.signed(image.pk, "content"),
            "usage": None if usage is None else self._usage_out.to_representation(usage),
            "provenance": (
                None if provenance is None else self._provenance_out.to_representation(provenance)
            ),
            "requested_model": image.requested_tier or None,
            "served_model": image.served_tier or None,
            "fallback_reason": image.fallback_reason or None,
        }

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

    @functools.cached_property
    def _prices(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        return {}

    def _price(self, job: Job) -> dict[str, Any]:
        """`price_data(job)`, once per answer for jobs priced alike: the estimate reads the
        prompt only through `estimate_tokens` (a page of 200 jobs priced each twice was a
        tenth of its time)."""
        key = (
            job.tenant.plan.markup_per_image,
            job.tier,
            job.mode,
            job.image_size,
            estimate_tokens(prompt=job.model_prompt, input_images=0),
            len(job.input_image_ids),
        )
        price = self._prices.get(key)
        if price is None:
            price = self._prices[key] = price_data(job)
        return dict(price)

    @functools.cached_property
    def _job_path(self) -> IdPath:
        return IdPath("api:generation-detail", "job_id")  # once per answer (see ImageOut)

    def get_links(self, job: Job) -> dict[str, str]:
        url = self._job_path(job.pk)
        return {"self": url, "cancel": f"{url}/cancel"}

    @functools.cached_property
    def _image_out(self) -> ImageOut:
        return ImageOut(read_only=True)  # made directly, not from `self.fields` (see ImageOut)

    @functools.cached_property
    def _iso(self) -> Callable[[Any], str | None]:
        return _datetimes()

    def to_representation(self, job: Job) -> dict[str, Any]:
        """The fields above, built directly: what DRF's generic `to_representation` gives
        (the declared fields stay the contract and the schema), without its per-field
        machinery — lookups, `get_attribute`, a method call and a None check for each of
        a job's 30 fields and its images' 19, which was half of a page's time. A test
        (tests/generation/test_job_out_fast_path.py) holds the two to the same output for
        jobs in every state."""
        if type(self) is not JobOut:  # a subclass's fields: DRF's own way
            return super().to_representation(job)
        image_out, iso = self._image_out, self._iso
        images = job.__dict__.get("page_images")  # `selectors.page_images`, else the prefetch
        if images is None:
            images = job.images.all()
        return {
            "id": str(job.pk),
            "status": _choice(job.status),
            "kind": _choice(job.kind),
            "prompt": _nullable(job.prompt, str),
            "aspect_ratio": _choice(job.aspect_ratio),
            "image_size": _choice(job.image_size),
            "model": _choice(job.tier),
            "requested_model": job.requested_tier or job.tier,
            "served_model": _nullable(job.tier, str),
            "fallback_reason": job.fallback_reason or None,
            "mode": _choice(job.mode),
            "count": _nullable(job.count, int),
            "input_image_ids": _nullable(job.input_image_ids, _uuid_list),
            "parent_image_id": _nullable(job.parent_image_id, str),
            "metadata": _nullable(job.metadata, _str_dict),
            "batch_id": _nullable(job.batch_id, str),
            "item_index": self.get_item_index(job),
            "images": [image_out.to_representation(image) for image in images],
            "price": self._price(job),
            "fallback_price": fallback_price_data(job),
            "estimated_cost": usd(job.estimated_cost),
            "actual_cost": self.get_actual_cost(job),
            "attempts": _nullable(job.attempts, int),
            "cancel_requested": _nullable(job.cancel_requested, bool),
            "error": self.get_error(job),
            "queue": self.get_queue(job),
            "created_at": iso(job.created_at),
            "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at),
            "links": self.get_links(job),
        }


def job_rows(jobs: list[Job]) -> list[dict[str, Any]]:
    """A page of jobs as `JobOut(jobs, many=True).data` gives them, through one `JobOut`
    and not a `ListSerializer`: DRF's list serializer and its child refer to each other
    and the list keeps the page, so every job, image and usage row of the page stayed
    cyclic garbage after the answer, for the collector to walk (with `page_images`, which
    breaks the image–usage cycle, refcounting frees them as the answer is sent)."""
    out = JobOut()
    return [out.to_representation(job) for job in jobs]


# What DRF's fields do with a value, for the serializers' direct `to_representation`s: a
# None stays None (DRF skips the field's `to_representation` for it).


@functools.lru_cache(maxsize=16)
def _datetime_field(zone: Any) -> serializers.DateTimeField:
    return serializers.DateTimeField(default_timezone=zone)


def _datetimes() -> Callable[[Any], str | None]:
    """DateTimeField's output in the current time zone (looked up once, not per value).
    With DRF's ISO 8601 format, an aware datetime is converted and formatted here as the
    field does (`enforce_timezone`, `isoformat`, "+00:00" as "Z") without its lookups per
    value; anything else (a naive value, another format, an overflow) goes to the field."""
    zone = timezone.get_current_timezone() if settings.USE_TZ else None
    field = _datetime_field(zone)
    iso_8601 = str(getattr(field, "format", api_settings.DATETIME_FORMAT)).lower() == ISO_8601

    def slow(value: Any) -> str | None:
        # None (and any falsy value) → None; else ISO 8601 in that zone, as DRF does.
        return field.to_representation(value) if value else None

    if zone is None or not iso_8601:
        return slow

    def iso(value: Any) -> str | None:
        if not value or not isinstance(value, dt.datetime) or value.utcoffset() is None:
            return slow(value)
        try:
            text = value.astimezone(zone).isoformat()
        except OverflowError:
            return slow(value)
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return iso


def _nullable(value: Any, convert: Callable[[Any], Any]) -> Any:
    return None if value is None else convert(value)


def _choice(value: Any) -> Any:
    # ChoiceField: '' and None as they are; a choice as its (plain str) key.
    return value if value in ("", None) else str(value)


def _uuid_list(values: Any) -> list[str | None]:
    return [None if v is None else str(v) for v in values]


def _str_dict(values: Any) -> dict[str, str | None]:
    return {str(k): None if v is None else str(v) for k, v in values.items()}


_DATETIME = serializers.DateTimeField()


def job_accepted_data(job: Job) -> dict[str, Any]:
    """`JobOut(job).data` for a job just created (no images, no usage, no error), built
    directly: DRF builds a ModelSerializer's fields anew for every instance, which was a
    fifth of the submit path's CPU. A test holds the two to the same output."""
    url = id_path("api:generation-detail", "job_id", job.pk)
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
