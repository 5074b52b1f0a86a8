"""Batches of jobs, the provider batches that carry batch-mode jobs, and prompt templates."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.catalog import Mode
from generation.models import Job, Kind, WorkStatus
from tenants.models import ApiKey, Tenant

MAX_ITEMS = 10_000
# How the API names a batch's mode: "batch" (the Batch API, half price) or "realtime"
# (ordinary jobs).
BATCH = "batch"
REALTIME = "realtime"


class Batch(models.Model):
    """Many generation items submitted together (see the batches issue)."""

    Status = WorkStatus
    FINISHED = (WorkStatus.SUCCEEDED, WorkStatus.FAILED, WorkStatus.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="batches")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.BATCH)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    name = models.CharField(max_length=200, blank=True)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    template = models.ForeignKey(
        "PromptTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="batches"
    )
    total_items = models.PositiveIntegerField(default=0)
    total_images = models.PositiveIntegerField(default=0)
    estimated_cost = models.DecimalField(max_digits=16, decimal_places=9, default=Decimal(0))
    cancel_requested = models.BooleanField(default=False)
    # Its items per status, images made and cost, written as it finishes (they cannot
    # change after: `batches.progress`); null while it runs, and for a batch finished
    # before the column, until `final_progress_fill` has run.
    final_progress = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["tenant", "-created_at"], name="batch_tenant_created")]

    def __str__(self) -> str:
        return f"batch {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class BatchItem(models.Model):
    """One item of a batch: its place, its label (a locale for locale variants) and its job."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField()
    label = models.CharField(max_length=200, blank=True)
    locale = models.CharField(max_length=35, blank=True)
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="batch_item")

    class Meta:
        ordering = ["batch", "index"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "index"], name="batch_item_unique_index")
        ]
        indexes = [
            # The gallery's locale choices: the localised items of a tenant's recent batches.
            models.Index(
                fields=["batch", "locale"],
                name="batch_item_locale",
                condition=models.Q(locale__gt=""),
            )
        ]

    def __str__(self) -> str:
        return f"item {self.index} of {self.batch_id}"


class ProviderBatch(models.Model):
    """One Gemini Batch API job carrying the images of some batch-mode jobs of one tenant."""

    class State(models.TextChoices):
        CREATING = "creating"  # claimed jobs, provider call not yet answered
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        EXPIRED = "expired"

    ACTIVE = (State.CREATING, State.PENDING, State.RUNNING)

    class InputMode(models.TextChoices):
        INLINE = "inline"
        FILE = "file"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="provider_batches")
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="provider_batches"
    )
    tier = models.CharField(max_length=8)
    name = models.CharField(max_length=100, blank=True, help_text="batches/<id> at Google.")
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.CREATING, db_index=True
    )
    input_mode = models.CharField(max_length=6, choices=InputMode.choices, blank=True)
    job_ids = models.JSONField(default=list)
    request_count = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    polled_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ingested_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "provider batches"

    def __str__(self) -> str:
        return f"{self.name or 'unsent provider batch'} ({self.state})"


class PromptTemplate(models.Model):
    """A tenant's prompt with `{variables}` and their defaults."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="prompt_templates")
    name = models.CharField(max_length=120)
    text = models.TextField()
    defaults = models.JSONField(default=dict, blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.IMAGE)
    aspect_ratio = models.CharField(max_length=8, blank=True)
    model = models.CharField(max_length=16, default="lite", help_text="The default model tier.")
    locales = models.JSONField(
        default=list,
        blank=True,
        help_text='Locale variants: [{"locale": "de", "headline": "Sommerschlussverkauf"}, …]; '
        "a variant's values override the row's.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def locale_codes(self) -> list[str]:
        return [str(entry.get("locale", "")) for entry in self.locales]


class BatchDraft(models.Model):
    """A batch being put together in the dashboard (source → check → submit).

    It holds the rows as they are being fixed, so the check page survives a reload; it is
    submitted at most once (`batch` is set in the transaction that creates the batch), which
    makes a double-clicked Submit one batch.
    """

    class Source(models.TextChoices):
        TEMPLATE = "template", "Template × rows"
        PROMPTS = "prompts", "One prompt per row"
        IMAGES = "images", "Reference images per row"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="batch_drafts")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    template = models.ForeignKey(PromptTemplate, null=True, blank=True, on_delete=models.SET_NULL)
    locales = models.JSONField(default=list, blank=True, help_text="The chosen locale codes.")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.IMAGE)
    model = models.CharField(max_length=16, default="lite")
    aspect_ratio = models.CharField(max_length=8, blank=True)
    columns = models.JSONField(default=list)
    rows = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    batch = models.OneToOneField(
        Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="draft"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"draft {self.id}"
