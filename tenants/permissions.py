from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from tenants.models import ApiKey, Membership, Tenant
from tenants.roles import Action, refusal_for_role, refusal_for_scopes, scopes_allow


class TenantInactive(exceptions.PermissionDenied):
    bunch_code = "tenant_suspended"


class MissingScope(exceptions.PermissionDenied):
    bunch_code = "insufficient_scope"


class MissingRole(exceptions.PermissionDenied):
    bunch_code = "insufficient_role"


def view_action(view: Any, method: str) -> Action:
    """The action a request to `view` performs: its `required_action` (one action, or a
    dict by HTTP method), else read for safe methods and generate for writes."""
    declared = getattr(view, "required_action", None)
    if isinstance(declared, dict):
        declared = declared.get(method.upper())
    if declared is not None:
        return Action(declared)
    return Action.READ if method in SAFE_METHODS else Action.GENERATE


class HasActiveTenant(BasePermission):
    """An authenticated tenant that is not suspended or canceled, and an actor allowed the
    view's action (`view_action`): an API key by its scopes, a dashboard session by the
    member's role (`tenants.roles`, the map the dashboard's pages use too)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        tenant: Tenant | None = getattr(request._request, "tenant", None)
        if tenant is None or request.auth is None:
            raise exceptions.NotAuthenticated(
                "Authenticate with `Authorization: Bearer <API key>`."
            )
        if tenant.status in (Tenant.Status.SUSPENDED, Tenant.Status.CANCELED):
            error = TenantInactive(
                f"The account {tenant.slug!r} is {tenant.status}; contact support or update "
                "billing to restore access."
            )
            error.bunch_code = f"tenant_{tenant.status}"
            raise error
        action = view_action(view, request.method or "GET")
        if isinstance(request.auth, ApiKey):
            if not scopes_allow(request.auth.scopes, action):
                raise MissingScope(refusal_for_scopes(action))
        elif isinstance(request.auth, Membership) and not request.auth.allows(action):
            raise MissingRole(refusal_for_role(action))
        return True
