from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from tenants.models import ApiKey, Tenant


class TenantInactive(exceptions.PermissionDenied):
    bunch_code = "tenant_suspended"


class MissingScope(exceptions.PermissionDenied):
    bunch_code = "insufficient_scope"


class HasActiveTenant(BasePermission):
    """An authenticated tenant that is not suspended or canceled, with the needed scope.

    Views may set `required_scope`; otherwise reads need `read` and writes `generate`.
    """

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
        if isinstance(request.auth, ApiKey):
            scope = getattr(view, "required_scope", None) or (
                "read" if request.method in SAFE_METHODS else "generate"
            )
            if scope not in request.auth.scopes:
                raise MissingScope(f"This API key lacks the {scope!r} scope.")
        return True
