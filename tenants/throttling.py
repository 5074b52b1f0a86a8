from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from tenants import ratelimit
from tenants.models import ApiKey, Tenant


class TenantRateThrottle(BaseThrottle):
    """Per-key and per-tenant limits from the tenant's plan.

    The tighter of the two is published in `RateLimit-*` headers on every response
    (`tenants.middleware.RateLimitHeadersMiddleware`).
    """

    def allow_request(self, request: Request, view: Any) -> bool:
        tenant: Tenant | None = getattr(request._request, "tenant", None)
        if tenant is None:
            return True
        keys = [f"t:{tenant.pk}"]
        if isinstance(request.auth, ApiKey):
            keys.append(f"k:{request.auth.pk}")
        results = ratelimit.hit_many(keys, tenant.plan.requests_per_minute).values()
        tightest = min(results, key=lambda r: (r.remaining, -r.reset_seconds))
        request._request.ratelimit = tightest  # type: ignore[attr-defined]
        self._wait = tightest.reset_seconds
        return tightest.allowed

    def wait(self) -> float:
        return float(self._wait)
