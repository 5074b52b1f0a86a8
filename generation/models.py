from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.catalog import Mode
from tenants.models import ApiKey, Tenant


class Kind(models.TextChoices):
    AVATAR = "avatar"
    MOCKUP = "mockup"
    BANNER = "banner"
    IMAGE = "image"


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
        "batches.Batch", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
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


class WorkerHeartbeat(models.Model):
    """A django-q2 worker process that is alive: it writes its row every
    `BUNCH_HEARTBEAT_S` (generation/heartbeat.py). Operators see a missing one on the status
    page and in /readyz."""

    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["host", "pid", "started_at"], name="heartbeat_unique")
        ]

    def __str__(self) -> str:
        return f"worker {self.host}:{self.pid}"
