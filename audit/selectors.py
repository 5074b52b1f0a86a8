"""Reads of the audit log, scoped to one tenant."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, QuerySet

from audit.models import AuditEvent

SIGN_IN_ACTIONS = (
    AuditEvent.Action.LOGIN_SUCCEEDED,
    AuditEvent.Action.LOGIN_FAILED,
    AuditEvent.Action.LOGIN_LOCKED_OUT,
)


def events_for_tenant(
    tenant_id: int, *, member_names: Iterable[str], limit: int = 200
) -> QuerySet[AuditEvent]:
    """The tenant's entries, and sign-ins (failed ones too) to its members' accounts
    (`member_names`: their sign-in names), newest first."""
    names = [name.lower() for name in member_names if name]
    mine = Q(tenant_id=tenant_id) | Q(action__in=SIGN_IN_ACTIONS, username__in=names)
    return AuditEvent.objects.filter(mine).order_by("-created_at", "-id")[:limit]
