"""Reads of the audit log, scoped to one tenant."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from audit.models import AuditEvent
from tenants.models import Membership, Tenant

SIGN_IN_ACTIONS = (
    AuditEvent.Action.LOGIN_SUCCEEDED,
    AuditEvent.Action.LOGIN_FAILED,
    AuditEvent.Action.LOGIN_LOCKED_OUT,
)


def events_for_tenant(tenant: Tenant, *, limit: int = 200) -> QuerySet[AuditEvent]:
    """The tenant's entries, and sign-ins (failed ones too) to its members' accounts,
    newest first."""
    emails = Membership.objects.filter(tenant=tenant).values_list("user__email", flat=True)
    names = [e.lower() for e in emails if e]
    mine = Q(tenant=tenant) | Q(action__in=SIGN_IN_ACTIONS, username__in=names)
    return AuditEvent.objects.filter(mine).order_by("-created_at", "-id")[:limit]
