from __future__ import annotations

from typing import Any, NoReturn

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.request import Request

from core import logcontext
from tenants import lockout
from tenants.models import ApiKey, Membership, Tenant
from tenants.selectors import current_membership
from tenants.services import api_key_check, api_key_touch


class InvalidApiKey(exceptions.AuthenticationFailed):
    bunch_code = "invalid_api_key"


class TooManyKeyFailures(exceptions.Throttled):
    bunch_code = "too_many_failed_authentications"
    default_detail = (
        "Too many requests with an invalid API key came from your address; try again in a minute."
    )

    def __init__(self) -> None:
        super().__init__(wait=60)


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer bk_live_…` → the key's tenant.

    Sets `request.tenant`; `request.auth` is the `ApiKey`.
    """

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        # An address that sent too many bad keys is refused before any key is looked at,
        # so a right guess among them cannot be told from a wrong one.
        if lockout.api_key_failures_exceeded(request._request):
            raise TooManyKeyFailures()
        keyword, _, token = header.partition(" ")
        if keyword.lower() != self.keyword or not token.strip():
            self._failed(request, "Send the API key as `Authorization: Bearer <key>`.")
        api_key = api_key_check(token.strip())
        if api_key is None:
            self._failed(request, "The API key is not valid.")
        now = timezone.now()
        if api_key.revoked_at is not None:
            self._failed(request, "The API key has been revoked.")
        if api_key.expires_at is not None and api_key.expires_at <= now:
            self._failed(request, "The API key has expired.")
        api_key_touch(api_key=api_key, now=now)
        request._request.tenant = api_key.tenant  # type: ignore[attr-defined]
        logcontext.bind(tenant=api_key.tenant.slug)
        return (None, api_key)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'

    def _failed(self, request: Request, message: str) -> NoReturn:
        lockout.api_key_failure_record(request._request)
        raise InvalidApiKey(message)


class DashboardSessionAuthentication(SessionAuthentication):
    """A signed-in dashboard user acts for the tenant chosen in the dashboard.

    Lets the dashboard's own JavaScript read images and jobs of the current tenant.
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        membership: Membership | None = current_membership(request._request)
        if membership is None:
            return None
        request._request.tenant = membership.tenant  # type: ignore[attr-defined]
        logcontext.bind(tenant=membership.tenant.slug)
        return (result[0], membership)


def request_tenant(request: Request) -> Tenant:
    """The tenant an authenticated API request acts for (set by the authenticators above)."""
    return request._request.tenant  # type: ignore[attr-defined, no-any-return]


def request_actor(request: Request) -> dict[str, Any]:
    """Who is acting, as the keyword arguments services take: an API key or a user."""
    if isinstance(request.auth, ApiKey):
        return {"api_key": request.auth}
    user = request.user if request.user and request.user.is_authenticated else None
    return {"user": user}
