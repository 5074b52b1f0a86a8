"""Tenant-scoped reads."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from core.money import from_nanos, usd
from tenants.models import ApiKey, Membership, QuotaPeriod, Tenant
from tenants.services import period_end, quota_period_for

SESSION_TENANT_KEY = "bunch_tenant_id"


def memberships_for_user(user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user).select_related("tenant__plan").order_by("tenant__name")
    )


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership the signed-in user is acting through (chosen tenant, else first)."""
    if hasattr(request, "_bunch_membership"):
        return request._bunch_membership  # type: ignore[no-any-return]
    membership = None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        memberships = memberships_for_user(user)
        chosen = request.session.get(SESSION_TENANT_KEY)
        membership = (memberships.filter(tenant_id=chosen).first() if chosen else None) or (
            memberships.first()
        )
    request._bunch_membership = membership  # type: ignore[attr-defined]
    return membership


def api_keys_for_tenant(tenant: Tenant) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(tenant=tenant).select_related("created_by")


def api_key_get_for_tenant(tenant: Tenant, key_id: object) -> ApiKey:
    from config.errors import NotFound

    try:
        return api_keys_for_tenant(tenant).get(pk=int(str(key_id)))
    except (ValueError, ApiKey.DoesNotExist):
        raise NotFound("No such API key.") from None


def quota_snapshot(tenant: Tenant) -> dict[str, object]:
    period: QuotaPeriod = quota_period_for(tenant=tenant)
    plan = tenant.plan
    used_spend = from_nanos(period.spend_used_nanos)
    reserved_spend = from_nanos(period.spend_reserved_nanos)
    return {
        "period_start": period.period_start.isoformat(),
        "period_end": period_end(period.period_start).isoformat(),
        "images": {
            "quota": plan.monthly_image_quota,
            "used": period.images_used,
            "reserved": period.images_reserved,
            "remaining": max(
                plan.monthly_image_quota - period.images_used - period.images_reserved, 0
            ),
        },
        "spend": {
            "cap": usd(plan.monthly_spend_cap, 2),
            "used": usd(used_spend),
            "reserved": usd(reserved_spend),
            "remaining": usd(max(plan.monthly_spend_cap - used_spend - reserved_spend, Decimal(0))),
        },
    }
