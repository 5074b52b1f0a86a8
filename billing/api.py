"""The tenant-facing billing API: usage, the current invoice, Checkout and the portal."""

from __future__ import annotations

from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, setup
from billing.gateway_factory import stripe_gateway
from billing.serializers import CheckoutIn, InvoiceOut, UrlOut, UsageOut, UsageQueryIn
from tenants.authentication import request_tenant
from tenants.models import Membership
from tenants.permissions import HasActiveTenant
from tenants.selectors import quota_snapshot

DASHBOARD_FALLBACK = "/billing/"


def _dashboard_url(request: Request, query: str = "") -> str:
    """The dashboard's usage & billing page, absolute, for Stripe to send people back to."""
    try:
        path = reverse("dashboard:usage")
    except NoReverseMatch:
        path = DASHBOARD_FALLBACK
    return request.build_absolute_uri(path) + query


class CanManageBilling(BasePermission):
    """Dashboard members see usage but only owners and admins change billing."""

    message = "Only the account's owners and admins can manage billing."

    def has_permission(self, request: Request, view: Any) -> bool:
        membership = request.auth
        return not isinstance(membership, Membership) or membership.can_manage


class UsageView(APIView):
    required_scope = "read"

    @extend_schema(
        parameters=[UsageQueryIn],
        responses=UsageOut,
        summary="Images, tokens by modality and money over a period, grouped",
    )
    def get(self, request: Request) -> Response:
        # A plain dict: a QueryDict reads as a form, where `to=` would mean "not sent".
        query = UsageQueryIn(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = query.validated_data
        tenant = request_tenant(request)
        summary = selectors.usage_summary(
            tenant, start=params["start"], end=params["end"], group_by=params["group_by"]
        )
        body = {**params, **summary, "quota": quota_snapshot(tenant)}
        return Response(UsageOut(body).data)


class InvoiceView(APIView):
    required_scope = "read"

    @extend_schema(responses=InvoiceOut, summary="The current period's estimated invoice")
    def get(self, request: Request) -> Response:
        estimate = selectors.invoice_estimate(
            request_tenant(request), gateway=stripe_gateway(), now=timezone.now()
        )
        return Response(InvoiceOut(InvoiceOut.from_estimate(estimate)).data)


class CheckoutView(APIView):
    required_scope = "generate"
    permission_classes = [HasActiveTenant, CanManageBilling]

    @extend_schema(
        request=CheckoutIn, responses=UrlOut, summary="A Stripe Checkout page for a plan"
    )
    def post(self, request: Request) -> Response:
        data = CheckoutIn(data=request.data)
        data.is_valid(raise_exception=True)
        url = setup.checkout_session_create(
            tenant=request_tenant(request),
            plan=data.validated_data["plan"],
            success_url=_dashboard_url(
                request, "?checkout=success&session_id={CHECKOUT_SESSION_ID}"
            ),
            cancel_url=_dashboard_url(request, "?checkout=canceled"),
            gateway=stripe_gateway(),
        )
        return Response(UrlOut({"url": url}).data)


class PortalView(APIView):
    required_scope = "generate"
    permission_classes = [HasActiveTenant, CanManageBilling]

    @extend_schema(request=None, responses=UrlOut, summary="A Stripe customer portal page")
    def post(self, request: Request) -> Response:
        url = setup.portal_session_create(
            tenant=request_tenant(request),
            return_url=_dashboard_url(request),
            gateway=stripe_gateway(),
        )
        return Response(UrlOut({"url": url}).data)
