from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants import roles

MODEL_TIERS = ("lite", "flash", "pro")


def default_tiers() -> list[str]:
    return ["lite"]


def default_scopes() -> list[str]:
    return list(roles.DEFAULT_SCOPES)


class Plan(models.Model):
    name = models.CharField(max_length=80)
    slug = models.SlugField(unique=True)
    monthly_image_quota = models.PositiveIntegerField(help_text="Images per billing period.")
    monthly_spend_cap = models.DecimalField(
        max_digits=12, decimal_places=2, help_text="USD billed per period, at most."
    )
    requests_per_minute = models.PositiveIntegerField(default=120)
    max_concurrent_jobs = models.PositiveIntegerField(default=4)
    # The scheduler (generation/scheduler.py): a tenant's share of the provider's capacity
    # is proportional to its weight while it has work queued, and `reserved_concurrency`
    # calls in flight are its own while it has work (lent to others while it has none).
    weight = models.PositiveIntegerField(
        default=1, help_text="Share of the provider's capacity, relative to other plans."
    )
    reserved_concurrency = models.PositiveIntegerField(
        default=0,
        help_text="Provider calls in flight kept for each tenant on this plan while it has work.",
    )
    markup_per_image = models.DecimalField(
        max_digits=10, decimal_places=6, default=Decimal("0.01"), help_text="USD per image."
    )
    allowed_tiers = models.JSONField(default=default_tiers, help_text='e.g. ["lite", "flash"]')
    batch_allowed = models.BooleanField(default=False)
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))

    class Meta:
        ordering = ["monthly_price", "name"]

    def __str__(self) -> str:
        return self.name

    def allows_tier(self, tier: str) -> bool:
        return tier in self.allowed_tiers


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        PAST_DUE = "past_due"
        SUSPENDED = "suspended"
        CANCELED = "canceled"

    name = models.CharField(max_length=120)
    slug = models.SlugField(unique=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    stripe_customer_id = models.CharField(max_length=64, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=64, blank=True)
    require_two_factor = models.BooleanField(
        default=False, help_text="Every member must sign in with a second factor (set by owners)."
    )
    created_at = models.DateTimeField(default=timezone.now)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="tenants"
    )
    # Opt-in: another model when the requested one is throttled (generation/fallback.py).
    # {"models": ["flash"], "max_price_per_image": "0.08", "after_s": 20}; null = never.
    fallback_policy = models.JSONField(null=True, blank=True, default=None)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def can_submit(self) -> bool:
        return self.status == self.Status.ACTIVE


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"

    @property
    def actions(self) -> frozenset[roles.Action]:
        """What this member may do (`tenants.roles`); templates test `"x" in …actions`."""
        return roles.ROLE_ACTIONS.get(self.role, frozenset())

    def allows(self, action: roles.Action) -> bool:
        return roles.role_allows(self.role, action)


class Invitation(models.Model):
    """An invitation to join a tenant, sent by email; nobody joins until they accept it.

    Only a hash of the token is stored: the link in the email is the only copy.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=8, choices=Membership.Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "email"], name="invitation_tenant_email")]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant} ({self.role})"

    def is_open(self, now: dt.datetime) -> bool:
        return self.accepted_at is None and self.expires_at > now


class ApiKey(models.Model):
    """A tenant's API key. Only a hash of the secret is stored; the key is shown once."""

    # `keys:manage` (create, list and revoke keys through the API) is never a default:
    # a key gets it only when asked for by name (tenants/roles.py).
    SCOPES = roles.SCOPES

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=32, unique=True, help_text="Public part of the key.")
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=default_scopes)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class QuotaPeriod(models.Model):
    """Images and spend used and reserved by one tenant in one billing period.

    Money is held in integer nano-dollars so that the conditional UPDATE that reserves
    quota compares exactly on every database (SQLite stores decimals as floats).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="quota_periods")
    period_start = models.DateField()
    images_used = models.PositiveIntegerField(default=0)
    images_reserved = models.PositiveIntegerField(default=0)
    spend_used_nanos = models.BigIntegerField(default=0)
    spend_reserved_nanos = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "period_start"], name="quota_period_unique"),
            models.CheckConstraint(
                condition=models.Q(images_reserved__gte=0, spend_reserved_nanos__gte=0),
                name="quota_reserved_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.period_start:%Y-%m}"


class RateLimitWindow(models.Model):
    """A fixed-window request counter shared by every web process (database backend)."""

    key = models.CharField(max_length=120)
    window_start = models.BigIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "window_start"], name="ratelimit_unique_window")
        ]

    def __str__(self) -> str:
        return f"{self.key}@{self.window_start}: {self.count}"
