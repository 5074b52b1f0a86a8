from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.catalog import Mode
from tenants.models import ApiKey, Tenant

if TYPE_CHECKING:
    from generation.provenance import Credentials


class Kind(models.TextChoices):
    AVATAR = "avatar"
    MOCKUP = "mockup"
    BANNER = "banner"
    IMAGE = "image"
    TRYON = "tryon"  # a product (first input image) on a person (second), product kept exact


class WorkStatus(models.TextChoices):
    """The life of a job, and of a batch of jobs."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Job(models.Model):
    Status = WorkStatus

    class Priority(models.IntegerChoices):
        """Order within one tenant's queue (the scheduler takes the lowest first)."""

        INTERACTIVE = 0  # the dashboard, or an API call that waits (`Prefer: wait`)
        API = 1
        BATCH_ITEM = 2  # one item of a realtime batch

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
    tier = models.CharField(
        max_length=8, default="lite", help_text="The model that serves (and bills) the job."
    )
    # Fallback (generation/fallback.py): the model asked for, set when the job moved to
    # another one, and why; `fallback` is the job's own policy (null: the tenant's,
    # {"enabled": false}: never).
    requested_tier = models.CharField(max_length=8, blank=True)
    fallback_reason = models.CharField(max_length=20, blank=True)
    fallback = models.JSONField(null=True, blank=True, default=None)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.STANDARD)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.API)
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
    deferrals = models.PositiveIntegerField(
        default=0, help_text="Times a 429 sent it back to its queue (not counted as attempts)."
    )
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
            # The list's order, ties broken by id so that a cursor's page is always the same.
            models.Index(fields=["tenant", "-created_at", "-id"], name="job_tenant_created_id"),
            models.Index(fields=["status", "lease_expires_at"], name="job_status_lease"),
            # A status filter on the list, newest first, without sorting the tenant's rows.
            models.Index(
                fields=["tenant", "status", "-created_at", "-id"], name="job_tenant_status_created"
            ),
            # Queued standard-mode jobs, oldest first (the backlog count, the sweeper).
            models.Index(fields=["status", "mode", "created_at"], name="job_claim_order"),
            # The scheduler: which tenants have work queued (a skip scan over tenant_id),
            # and each one's head jobs. Only queued rows, so it stays small.
            models.Index(
                fields=["tenant", "priority", "created_at"],
                name="job_queued_head",
                condition=models.Q(status="queued", mode="standard"),
            ),
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
    # Generated images: the model asked for, the one that made it, and why they differ
    # (`primary_throttled` or `deadline`; empty when they do not).
    requested_tier = models.CharField(max_length=8, blank=True)
    served_tier = models.CharField(max_length=8, blank=True)
    fallback_reason = models.CharField(max_length=20, blank=True)

    # Not a column: the Content Credentials `images.image_build` read from the bytes, saved
    # as the image's `Provenance` row with the image.
    read_credentials: Credentials | None = None

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="image_unique_job_index")
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="image_tenant_created_id")
        ]

    def __str__(self) -> str:
        return f"image {self.id} ({self.width}×{self.height})"


class Provenance(models.Model):
    """What an image's C2PA Content Credentials say, read once when it was stored
    (`generation.provenance`). An image without a row has not been checked yet."""

    class State(models.TextChoices):
        TRUSTED = "trusted"  # intact, signer on the trust list
        VALID = "valid"  # intact, signer not on the trust list
        INVALID = "invalid"  # does not match the bytes, or unreadable
        NONE = "none"  # no Content Credentials

    image = models.OneToOneField(
        Image, primary_key=True, on_delete=models.CASCADE, related_name="provenance"
    )
    state = models.CharField(max_length=8, choices=State.choices)
    ai_generated = models.BooleanField(default=False)
    signer = models.CharField(max_length=200, blank=True, help_text="Certificate common name.")
    issuer = models.CharField(max_length=200, blank=True, help_text="Certificate organisation.")
    generator = models.CharField(max_length=200, blank=True, help_text="App or device used.")
    signed_at = models.DateTimeField(null=True, blank=True, help_text="Trusted timestamp.")
    digital_source_type = models.CharField(max_length=200, blank=True)
    actions = models.JSONField(default=list, blank=True)
    validation_codes = models.JSONField(default=list, blank=True)
    manifest = models.JSONField(null=True, blank=True, help_text="The manifest store, as read.")
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["state"], name="provenance_state")]

    def __str__(self) -> str:
        return f"provenance of {self.image_id}: {self.state}"


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


class TenantShare(models.Model):
    """The scheduler's state for one tenant (generation/scheduler.py): start-time fair
    queueing tags in virtual time, advanced by a job's images divided by the plan weight,
    and the tenant's queued and running jobs (its "runnable" state)."""

    tenant = models.OneToOneField(
        Tenant, primary_key=True, on_delete=models.CASCADE, related_name="share"
    )
    start = models.FloatField(
        default=0.0, db_default=0.0, db_index=True, help_text="Tag of its last claim."
    )
    finish = models.FloatField(
        default=0.0, db_default=0.0, help_text="Where its next claim starts from."
    )
    # Kept by database triggers on the job table, in the transaction that changes a job
    # (migration 0011): so the claim reads only tenants that can run something, here, and
    # never the job table to find them.
    queued = models.IntegerField(
        default=0, db_default=0, help_text="Standard-mode jobs queued (kept by triggers)."
    )
    running = models.IntegerField(
        default=0, db_default=0, help_text="Jobs running, any mode (kept by triggers)."
    )

    class Meta:
        indexes = [
            models.Index(
                fields=["tenant"], name="share_with_work", condition=models.Q(queued__gt=0)
            )
        ]

    def __str__(self) -> str:
        return f"share of tenant {self.tenant_id}: {self.start:g}–{self.finish:g}"


class ProviderModel(models.Model):
    """One provider model's shared state: the cooldown every worker honours after a 429.

    Its row is also what serialises taking budget slots for the model (generation/budget.py).
    """

    model = models.CharField(primary_key=True, max_length=64)
    cooldown_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.model


class BudgetLease(models.Model):
    """One provider call's slot in the shared budget: in flight until released or expired;
    kept for the RPM and spend windows, then pruned."""

    model = models.CharField(max_length=64)
    holder = models.CharField(max_length=64, help_text="The worker process that took it.")
    tenant_id = models.BigIntegerField(null=True, blank=True)
    reserved = models.BooleanField(default=False, help_text="Taken from the tenant's reservation.")
    cost_nanos = models.BigIntegerField(default=0)
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["model", "expires_at"],
                name="lease_in_flight",
                condition=models.Q(released_at__isnull=True),
            ),
            models.Index(fields=["model", "started_at"], name="lease_window"),
        ]

    def __str__(self) -> str:
        return f"{self.model} slot of {self.holder}"


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


class Conversation(models.Model):
    """A multi-turn edit of one image (generation/conversations/): the model's history,
    kept as the model sent it (thought signatures verbatim) and sent back whole with each
    turn, as Google's chats do. Image bytes in the history are stored once, as `Image`
    rows, and named here by id (`conversations.history`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="conversations")
    source_image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="conversations")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    tier = models.CharField(max_length=8, default="lite")
    aspect_ratio = models.CharField(max_length=8)
    # Gemini `Content` dicts of the succeeded turns, user and model, in order.
    history = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="convo_tenant_created_id")
        ]

    def __str__(self) -> str:
        return f"conversation {self.id} on image {self.source_image_id}"


class ConversationTurn(models.Model):
    """One prompt of a conversation and the job that answers it (billed as its own)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField()
    prompt = models.TextField()
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="conversation_turn")
    # What the estimate counted as the turn's input: the history before it and the prompt.
    history_text_tokens = models.PositiveIntegerField(default=0)
    history_images = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["index"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "index"], name="turn_unique_index")
        ]

    def __str__(self) -> str:
        return f"turn {self.index} of {self.conversation_id}"
