from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.models import ApiKey, Tenant


class Kind(models.TextChoices):
    AVATAR = "avatar"
    MOCKUP = "mockup"
    BANNER = "banner"
    IMAGE = "image"


class Mode(models.TextChoices):
    STANDARD = "standard"
    BATCH = "batch"


class WorkStatus(models.TextChoices):
    """The life of a job, and of a batch of jobs."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Job(models.Model):
    Status = WorkStatus
    FINISHED = (WorkStatus.SUCCEEDED, WorkStatus.FAILED, WorkStatus.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="jobs")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.IMAGE)
    prompt = models.TextField(help_text="What the tenant asked for.")
    model_prompt = models.TextField(help_text="What the model was sent (kind preset applied).")
    aspect_ratio = models.CharField(max_length=8)
    image_size = models.CharField(max_length=8, default="1K")
    tier = models.CharField(max_length=8, default="lite")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.STANDARD)
    count = models.PositiveSmallIntegerField(default=1)
    input_image_ids = models.JSONField(default=list, blank=True)
    parent_image = models.ForeignKey(
        "Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="edit_jobs"
    )
    metadata = models.JSONField(default=dict, blank=True)

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    cancel_requested = models.BooleanField(default=False)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Provider calls made.")
    estimated_cost = models.DecimalField(max_digits=16, decimal_places=9, default=Decimal(0))

    # The part of the quota reservation not yet turned into usage or released.
    quota_period_id = models.BigIntegerField(null=True, blank=True)
    reserved_images = models.PositiveIntegerField(default=0)
    reserved_nanos = models.BigIntegerField(default=0)

    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    batch = models.ForeignKey(
        "Batch", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="job_tenant_created"),
            models.Index(fields=["status", "lease_expires_at"], name="job_status_lease"),
            models.Index(fields=["tenant", "status"], name="job_tenant_status"),
            # The runner's claim: the oldest queued standard-mode jobs.
            models.Index(fields=["status", "mode", "created_at"], name="job_claim_order"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


def image_upload_to(image: Image, filename: str) -> str:
    return f"t/{image.tenant_id}/{image.created_at:%Y/%m}/{image.id}{_suffix(image.mime_type)}"


def thumbnail_upload_to(image: Image, filename: str) -> str:
    return f"t/{image.tenant_id}/{image.created_at:%Y/%m}/{image.id}.thumb.webp"


def _suffix(mime_type: str) -> str:
    return {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}.get(mime_type, "")


class Image(models.Model):
    class Source(models.TextChoices):
        GENERATED = "generated"
        UPLOAD = "upload"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="images")
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.CASCADE, related_name="images"
    )
    index = models.PositiveSmallIntegerField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.GENERATED)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    file = models.FileField(upload_to=image_upload_to, max_length=200)
    thumbnail = models.FileField(upload_to=thumbnail_upload_to, max_length=200, blank=True)
    mime_type = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="image_unique_job_index")
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="image_tenant_created")]

    def __str__(self) -> str:
        return f"image {self.id} ({self.width}×{self.height})"


class IdempotencyRecord(models.Model):
    """The first response to an `Idempotency-Key`, kept 24 h per tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.key}"


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
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-created_at"]

    def __str__(self) -> str:
        return self.name


class WebhookEndpoint(models.Model):
    EVENT_TYPES = ("job.succeeded", "job.failed", "job.canceled", "batch.completed", "batch.failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    # Needed in clear to sign each delivery (Standard Webhooks, whsec_<base64>); shown to
    # the tenant once, at creation or rotation.
    secret = models.CharField(max_length=100)
    event_types = models.JSONField(default=list, blank=True, help_text="Empty means all events.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return self.enabled and (not self.event_types or event_type in self.event_types)


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.CharField(max_length=64, db_index=True, help_text="webhook-id")
    event_type = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"
