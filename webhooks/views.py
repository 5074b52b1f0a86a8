"""Dashboard pages of webhook endpoints (owners and admins)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from config.errors import BunchError
from tenants.models import Membership
from tenants.roles import Action
from tenants.views import tenant_page
from webhooks import selectors, services
from webhooks.forms import WebhookEndpointForm

WEBHOOK_SECRET_SESSION_KEY = "bunch_new_webhook_secret"


@tenant_page(action=Action.WEBHOOKS_MANAGE)
def webhook_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = WebhookEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = services.endpoint_create(
                tenant=membership.tenant, **form.cleaned_data
            )
        except BunchError as exc:
            form.add_error("url", exc.message)
        else:
            request.session[WEBHOOK_SECRET_SESSION_KEY] = {"id": str(endpoint.pk), "secret": secret}
            messages.success(request, "Endpoint added. Copy its signing secret now.")
            return redirect("dashboard:webhook", endpoint_id=endpoint.pk)
    context = {
        "form": form,
        "endpoints": selectors.endpoints_for_tenant(membership.tenant),
    }
    return render(request, "dashboard/webhooks.html", context)


@tenant_page(action=Action.WEBHOOKS_MANAGE)
def webhook_detail(request: HttpRequest, membership: Membership, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.endpoint_get_for_tenant(membership.tenant, endpoint_id)
    new_secret = request.session.pop(WEBHOOK_SECRET_SESSION_KEY, None)
    if new_secret and new_secret["id"] != str(endpoint.pk):
        new_secret = None
    context = {
        "endpoint": endpoint,
        "deliveries": selectors.deliveries_for_endpoint(endpoint).order_by("-created_at")[:50],
        "new_secret": new_secret,
    }
    return render(request, "dashboard/webhook.html", context)


@tenant_page(action=Action.WEBHOOKS_MANAGE)
@require_POST
def webhook_rotate(request: HttpRequest, membership: Membership, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.endpoint_get_for_tenant(membership.tenant, endpoint_id)
    secret = services.endpoint_rotate_secret(endpoint=endpoint)
    request.session[WEBHOOK_SECRET_SESSION_KEY] = {"id": str(endpoint.pk), "secret": secret}
    messages.success(request, "New secret issued; the old one no longer verifies.")
    return redirect("dashboard:webhook", endpoint_id=endpoint.pk)


@tenant_page(action=Action.WEBHOOKS_MANAGE)
@require_POST
def webhook_toggle(request: HttpRequest, membership: Membership, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.endpoint_get_for_tenant(membership.tenant, endpoint_id)
    services.endpoint_update(endpoint=endpoint, enabled=not endpoint.enabled)
    messages.success(request, f"Endpoint {'enabled' if endpoint.enabled else 'paused'}.")
    return redirect("dashboard:webhook", endpoint_id=endpoint.pk)


@tenant_page(action=Action.WEBHOOKS_MANAGE)
@require_POST
def webhook_delete(request: HttpRequest, membership: Membership, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.endpoint_get_for_tenant(membership.tenant, endpoint_id)
    services.endpoint_delete(endpoint=endpoint)
    messages.success(request, f"Deleted the endpoint {endpoint.url}.")
    return redirect("dashboard:webhooks")


@tenant_page(action=Action.WEBHOOKS_MANAGE)
@require_POST
def webhook_redeliver(
    request: HttpRequest, membership: Membership, endpoint_id: str, delivery_id: str
) -> HttpResponse:
    endpoint = selectors.endpoint_get_for_tenant(membership.tenant, endpoint_id)
    delivery = selectors.delivery_get_for_endpoint(endpoint, delivery_id)
    services.delivery_redeliver(delivery=delivery)
    messages.success(request, f"{delivery.event_type} queued for delivery again.")
    return redirect("dashboard:webhook", endpoint_id=endpoint.pk)
