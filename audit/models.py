"""The audit log: who did what to which object, from where, when. Append-only."""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnly(Exception):
    """An audit entry was about to be changed or deleted."""


class AuditQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnly("Audit entries are never changed.")

    def delete(self) -> NoReturn:  # type: ignore[override]
        raise AppendOnly("Audit entries are never deleted.")


class AuditEvent(models.Model):
    """One entry. References are kept without database constraints (`db_constraint=False`,
    `DO_NOTHING`), so deleting a user, key or tenant never rewrites its history; the
    labels keep what they were called at the time."""

    class Action(models.TextChoices):
        API_KEY_CREATED = "api_key.created"
        API_KEY_REVOKED = "api_key.revoked"
        MEMBER_INVITED = "member.invited"
        MEMBER_ROLE_CHANGED = "member.role_changed"
        MEMBER_REMOVED = "member.removed"
        WEBHOOK_CREATED = "webhook.created"
        WEBHOOK_CHANGED = "webhook.changed"
        WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
        WEBHOOK_DELETED = "webhook.deleted"
        PLAN_CHANGED = "plan.changed"
        LOGIN_SUCCEEDED = "login.succeeded"
        LOGIN_FAILED = "login.failed"
        LOGIN_LOCKED_OUT = "login.locked_out"
        API_KEY_AUTH_FAILED = "api_key.auth_failed"
        TWO_FACTOR_ENABLED = "two_factor.enabled"
        TWO_FACTOR_DISABLED = "two_factor.disabled"
        TWO_FACTOR_REQUIRED = "two_factor.required"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    tenant = models.ForeignKey(
        "tenants.Tenant",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    action = models.CharField(max_length=64, choices=Action.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=254, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_label = models.CharField(max_length=254, blank=True)
    # The account name a sign-in tried (login.* entries); matched for lock-outs.
    username = models.CharField(max_length=254, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="audit_tenant_recent"),
            models.Index(fields=["action", "username", "ip", "created_at"], name="audit_login"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.object_label}".strip()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly("Audit entries are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnly("Audit entries are never deleted.")
