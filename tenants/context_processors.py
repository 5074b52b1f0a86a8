from __future__ import annotations

from django.http import HttpRequest

from tenants.selectors import current_membership, memberships_for_user


def current_tenant(request: HttpRequest) -> dict[str, object]:
    membership = current_membership(request)
    if membership is None:
        return {}
    return {
        "membership": membership,
        "current_tenant": membership.tenant,
        "all_memberships": memberships_for_user(membership.user),
    }
