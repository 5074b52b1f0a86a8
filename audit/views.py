"""The audit log page of the dashboard (owners and admins)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from audit.selectors import events_for_tenant
from tenants.models import Membership
from tenants.views import tenant_page


@tenant_page(manage=True)
def audit_log(request: HttpRequest, membership: Membership) -> HttpResponse:
    events = events_for_tenant(membership.tenant)
    return render(request, "dashboard/audit.html", {"events": events})
