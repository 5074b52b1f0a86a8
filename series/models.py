"""Series: frames made in order from reference images, each frame a generation job."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from generation.models import Job, Kind, WorkStatus
from tenants.models import ApiKey, Tenant

MAX_FRAMES = 50
MAX_FRAME_ATTEMPTS = 3


class Consistency(models.TextChoices):
    """What each frame's call receives besides its prompt."""

    REFERENCES = "references"  # every frame: the reference images
    CHAIN = "chain"  # frame 0: the references; every later frame: the frame before it
    BOTH = "both"  # every frame: the references, then (after frame 0) the frame before it


class Series(models.Model):
    Status = WorkStatus
    FINISHED = (WorkStatus.SUCCEEDED, WorkStatus.FAILED, WorkStatus.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="series")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.IMAGE)
    tier = models.CharField(max_length=8, default="lite")
    consistency = models.CharField(
        max_length=12, choices=Consistency.choices, default=Consistency.BOTH
    )
    aspect_ratio = models.CharField(max_length=8, blank=True, help_text="Frames' default.")
    reference_image_ids = models.JSONField(default=list, blank=True)
    frame_attempts = models.PositiveSmallIntegerField(
        default=2, help_text="Jobs a frame may take before the series fails."
    )
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    estimated_cost = models.DecimalField(max_digits=16, decimal_places=9, default=Decimal(0))
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "series"
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="series_tenant_created_id"),
            models.Index(fields=["status"], name="series_status"),
        ]

    def __str__(self) -> str:
        return f"series {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def chained(self) -> bool:
        return self.consistency != Consistency.REFERENCES


class Frame(models.Model):
    """One frame: its prompt, and whether it still needs a (new) version."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="frames")
    index = models.PositiveSmallIntegerField()
    prompt = models.TextField()
    aspect_ratio = models.CharField(max_length=8, blank=True)
    # Set at submit and by a regeneration; cleared when the run's version succeeds.
    needs_run = models.BooleanField(default=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Jobs of the current run.")
    run_cause = models.CharField(max_length=12, default="initial", help_text="Why it runs.")

    class Meta:
        ordering = ["series", "index"]
        constraints = [
            models.UniqueConstraint(fields=["series", "index"], name="frame_unique_index")
        ]

    def __str__(self) -> str:
        return f"frame {self.index} of {self.series_id}"


class FrameVersion(models.Model):
    """One job made for a frame. Versions are never deleted: a regeneration adds one."""

    class Cause(models.TextChoices):
        INITIAL = "initial"
        RETRY = "retry"  # the frame's job before it failed
        REGENERATE = "regenerate"  # asked for
        CASCADE = "cascade"  # an earlier frame was regenerated with cascade

    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveSmallIntegerField()
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="frame_version")
    cause = models.CharField(max_length=12, choices=Cause.choices, default=Cause.INITIAL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["frame", "number"]
        constraints = [
            models.UniqueConstraint(fields=["frame", "number"], name="frame_version_unique_number")
        ]

    def __str__(self) -> str:
        return f"version {self.number} of {self.frame}"
