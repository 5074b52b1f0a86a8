"""Input and output shapes of the batches and templates API."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from batches.models import BATCH, MAX_ITEMS, REALTIME, Batch, BatchItem, PromptTemplate
from config.serializers import StrictSerializer
from core.catalog import ALL_RATIOS, MODELS
from core.money import usd
from generation.links import IdPath
from generation.models import Kind
from generation.serializers import IMAGE_SIZES, GenerationIn, JobOut, MetadataField, price_data

MAX_LOCALES = 200


def _json_object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise serializers.ValidationError(f"{name} must be a JSON object.")
    return value


# Checked by batches/prompts.py, which names each bad row and locale; typed for clients.
@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "Template variables: name → value.",
    }
)
class VariablesField(serializers.JSONField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "properties": {"locale": {"type": "string", "example": "de-DE"}},
        "required": ["locale"],
        "additionalProperties": {"type": "string"},
        "description": "A locale variant: its `locale` (the item's label) and variables.",
    }
)
class LocaleField(serializers.JSONField):
    pass


class BatchItemIn(GenerationIn):
    input_images = None  # type: ignore[assignment]  # batch items are text prompts
    priority = None  # type: ignore[assignment]  # the batch's mode decides
    deadline = None  # type: ignore[assignment]
    label = serializers.CharField(  # type: ignore[assignment]  # a field, not Field.label
        max_length=200, required=False, default="", allow_blank=True
    )


class BatchIn(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    mode = serializers.ChoiceField(choices=[BATCH, REALTIME], default=BATCH)
    metadata = MetadataField(required=False, default=dict)
    items = BatchItemIn(  # type: ignore[call-arg]
        many=True,
        required=False,
        max_length=MAX_ITEMS,
        error_messages={
            "max_length": f"A batch holds at most {MAX_ITEMS:,} items; send the rest in "
            "another batch."
        },
    )
    template = serializers.UUIDField(required=False)
    rows = serializers.ListField(
        child=VariablesField(), required=False, default=list, max_length=MAX_ITEMS
    )
    locales = serializers.ListField(
        child=LocaleField(), required=False, default=list, max_length=MAX_LOCALES
    )
    # For template items: what each item is made with.
    kind = serializers.ChoiceField(choices=Kind.choices, required=False)
    aspect_ratio = serializers.ChoiceField(choices=ALL_RATIOS, required=False)
    count = serializers.IntegerField(min_value=1, max_value=8, default=1)
    model = serializers.ChoiceField(choices=list(MODELS), default="lite")
    image_size = serializers.ChoiceField(choices=IMAGE_SIZES, default="1K")
    # kind "tryon": the product and the model image of every row that does not name its own
    # (`product_image` / `model_image` columns of a row).
    product_image = serializers.UUIDField(required=False)
    model_image = serializers.UUIDField(required=False)
    # false: no item falls back; an object: the items' fallback policy instead of the tenant's.
    fallback = serializers.JSONField(required=False)

    def validate_fallback(self, value: Any) -> Any:
        return GenerationIn().validate_fallback(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_items, has_template = "items" in attrs, "template" in attrs
        if has_items == has_template:
            raise serializers.ValidationError(
                "Send either `items` or a `template` with `rows` and/or `locales`."
            )
        if has_template and not (attrs["rows"] or attrs["locales"]):
            raise serializers.ValidationError({"rows": ["Send rows and/or locales."]})
        if len(attrs["rows"] or [None]) * len(attrs["locales"] or [None]) > MAX_ITEMS:
            raise serializers.ValidationError(
                {"rows": [f"rows × locales makes more than {MAX_ITEMS:,} items."]}
            )
        return attrs


class ProgressOut(serializers.Serializer):
    queued = serializers.IntegerField(source="items_queued")
    running = serializers.IntegerField(source="items_running")
    succeeded = serializers.IntegerField(source="items_succeeded")
    failed = serializers.IntegerField(source="items_failed")
    canceled = serializers.IntegerField(source="items_canceled")
    images_made = serializers.SerializerMethodField()
    percent = serializers.SerializerMethodField()

    def get_images_made(self, batch: Batch) -> int:
        return getattr(batch, "images_made", None) or 0

    def get_percent(self, batch: Batch) -> int:
        return batch_percent(batch)


def batch_percent(batch: Batch) -> int:
    """Share of items finished (any outcome), for progress bars."""
    finished = sum(getattr(batch, f"items_{s}", 0) for s in ("succeeded", "failed", "canceled"))
    return int(100 * finished / batch.total_items) if batch.total_items else 100


class BatchOut(serializers.ModelSerializer):
    template_id = serializers.UUIDField(allow_null=True)
    progress = serializers.SerializerMethodField()
    estimated_cost = serializers.SerializerMethodField()
    actual_cost = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()
    mode = serializers.SerializerMethodField()
    metadata = MetadataField()
    status = serializers.SerializerMethodField()
    price = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = [
            "id",
            "name",
            "status",
            "mode",
            "template_id",
            "total_items",
            "total_images",
            "progress",
            "price",
            "estimated_cost",
            "actual_cost",
            "cancel_requested",
            "metadata",
            "created_at",
            "finished_at",
            "links",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=Batch.Status.choices))
    def get_status(self, batch: Batch) -> str:
        """`running` as soon as any item has started, even before the row says so."""
        started = sum(
            getattr(batch, f"items_{s}", 0) or 0
            for s in ("running", "succeeded", "failed", "canceled")
        )
        if batch.status == Batch.Status.QUEUED and started:
            return str(Batch.Status.RUNNING)
        return str(batch.status)

    @extend_schema_field(serializers.ChoiceField(choices=[BATCH, REALTIME]))
    def get_mode(self, batch: Batch) -> str:
        return BATCH if batch.mode == BATCH else REALTIME

    @functools.cached_property
    def _progress_out(self) -> ProgressOut:
        # One for the answer (a list's child serves every row): a serializer made per row
        # bound its seven fields each time, and left them as cyclic garbage.
        return ProgressOut()

    @extend_schema_field(ProgressOut)
    def get_progress(self, batch: Batch) -> dict[str, Any]:
        return self._progress_out.to_representation(batch)  # type: ignore[no-any-return]

    def get_price(self, batch: Batch) -> dict[str, Any] | None:
        """The unit price of its items (those of its first item; each item's job has its
        own `price`), null for a batch without items. A list's page has them already
        (`batches_with_progress`)."""
        if hasattr(batch, "first_job"):
            first = batch.first_job
        else:
            item = batch.items.select_related("job__tenant__plan").order_by("index").first()
            first = item.job if item is not None else None
        return price_data(first) if first is not None else None

    def get_estimated_cost(self, batch: Batch) -> str:
        return usd(batch.estimated_cost)

    def get_actual_cost(self, batch: Batch) -> str:
        return usd(getattr(batch, "actual_cost", None) or Decimal(0))

    @functools.cached_property
    def _batch_path(self) -> IdPath:
        return IdPath("api:batch-detail", "batch_id")  # once per answer (see ImageOut)

    def get_links(self, batch: Batch) -> dict[str, str]:
        url = self._batch_path(batch.pk)
        return {
            "self": url,
            "items": f"{url}/items",
            "cancel": f"{url}/cancel",
            "results_zip": f"{url}/results.zip",
            "results_csv": f"{url}/results.csv",
        }


class LocaleProgressOut(serializers.Serializer):
    locale = serializers.CharField()
    total = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    finished = serializers.IntegerField()
    failures = serializers.DictField(child=serializers.IntegerField())
    line = serializers.CharField()


class BatchDetailOut(BatchOut):
    """One batch, with its progress per locale (for template batches with locales)."""

    locales = serializers.SerializerMethodField()

    class Meta(BatchOut.Meta):
        fields = [*BatchOut.Meta.fields, "locales"]

    @extend_schema_field(LocaleProgressOut(many=True))
    def get_locales(self, batch: Batch) -> list[dict[str, Any]]:
        from batches.selectors import batch_locale_summary

        return batch_locale_summary(batch)


class BatchItemOut(serializers.ModelSerializer):
    job = JobOut()

    class Meta:
        model = BatchItem
        fields = ["index", "label", "locale", "job"]

    @functools.cached_property
    def _job_out(self) -> JobOut:
        return JobOut()  # made directly, not from `self.fields` (see ImageOut)

    def to_representation(self, item: BatchItem) -> dict[str, Any]:
        """The fields above, built directly (see `JobOut.to_representation`)."""
        if type(self) is not BatchItemOut:  # a subclass's fields: DRF's own way
            return super().to_representation(item)  # type: ignore[no-any-return]
        return {
            "index": item.index,
            "label": item.label,
            "locale": item.locale,
            "job": self._job_out.to_representation(item.job),
        }


class TemplateIn(StrictSerializer):
    name = serializers.CharField(max_length=120)
    text = serializers.CharField(max_length=8000)
    defaults = VariablesField(required=False, default=dict)
    kind = serializers.ChoiceField(choices=Kind.choices, default=Kind.IMAGE)
    # Absent or null: the kind's own ratio.
    aspect_ratio = serializers.ChoiceField(choices=ALL_RATIOS, required=False, allow_null=True)
    model = serializers.ChoiceField(choices=list(MODELS), default="lite")
    locales = serializers.ListField(
        child=LocaleField(), required=False, default=list, max_length=MAX_LOCALES
    )

    def validate_defaults(self, value: Any) -> dict[str, Any]:
        return _json_object(value, "defaults")

    def validate_aspect_ratio(self, value: str | None) -> str:
        return value or ""


class TemplateOut(serializers.ModelSerializer):
    variables = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()
    defaults = VariablesField()
    aspect_ratio = serializers.SerializerMethodField()

    class Meta:
        model = PromptTemplate
        fields = [
            "id",
            "name",
            "text",
            "variables",
            "defaults",
            "kind",
            "aspect_ratio",
            "model",
            "locales",
            "created_at",
            "updated_at",
            "links",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=ALL_RATIOS, allow_null=True))
    def get_aspect_ratio(self, template: PromptTemplate) -> str | None:
        return template.aspect_ratio or None

    def get_variables(self, template: PromptTemplate) -> list[str]:
        from batches.prompts import variables

        return variables(template.text)

    def get_links(self, template: PromptTemplate) -> dict[str, str]:
        url = reverse("api:template-detail", kwargs={"template_id": template.pk})
        return {"self": url, "preview": f"{url}/preview"}


class PreviewIn(StrictSerializer):
    rows = serializers.ListField(
        child=VariablesField(), required=False, default=list, max_length=MAX_ITEMS
    )
    locales = serializers.ListField(
        child=LocaleField(), required=False, default=list, max_length=MAX_LOCALES
    )


class RenderedOut(serializers.Serializer):
    index = serializers.IntegerField()
    row = serializers.IntegerField()
    locale = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    prompt = serializers.CharField()


class PreviewOut(serializers.Serializer):
    prompts = RenderedOut(many=True)
