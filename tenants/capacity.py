"""Reserved provider capacity adds up to no more than the provider budget.

A plan's `reserved_concurrency` is reserved for each tenant on it (generation/budget.py);
all of them together must fit in `GEMINI_MAX_IN_FLIGHT`, or a reservation could not be
kept. With no in-flight budget set there is nothing to oversubscribe.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, Q

from tenants.models import Plan, Tenant

# A canceled tenant submits nothing; its plan's reservation holds nothing for it.
COUNTED = ~Q(status=Tenant.Status.CANCELED)


def reservations_total(*, plan: Plan | None = None, tenant: Tenant | None = None) -> int:
    """Calls in flight reserved across all tenants, as if `plan` (unsaved changes) and
    `tenant` (a new plan) were saved."""
    tenants = Tenant.objects.filter(COUNTED)
    if tenant is not None and tenant.pk:
        tenants = tenants.exclude(pk=tenant.pk)
    per_plan = dict(
        tenants.values_list("plan_id").annotate(n=Count("pk")).values_list("plan_id", "n")
    )
    if tenant is not None and tenant.status != Tenant.Status.CANCELED:
        per_plan[tenant.plan_id] = per_plan.get(tenant.plan_id, 0) + 1
    reserved = dict(
        Plan.objects.filter(pk__in=list(per_plan)).values_list("pk", "reserved_concurrency")
    )
    if plan is not None and plan.pk:
        reserved[plan.pk] = plan.reserved_concurrency
    return sum(reserved.get(pk, 0) * n for pk, n in per_plan.items())


def reservations_check(*, plan: Plan | None = None, tenant: Tenant | None = None) -> None:
    """Refuse a plan or tenant change that would reserve more than the provider budget."""
    budget = int(settings.GEMINI_MAX_IN_FLIGHT)
    if not budget:
        return
    total = reservations_total(plan=plan, tenant=tenant)
    if total > budget:
        raise ValidationError(
            f"Reservations would add up to {total} calls in flight, more than the provider "
            f"budget of {budget} (GEMINI_MAX_IN_FLIGHT). Lower a plan's reserved concurrency, "
            "or raise the budget first.",
            code="reservations_oversubscribed",
        )
