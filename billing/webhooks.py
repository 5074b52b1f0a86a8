"""Stripe webhooks in: verify, record the event id once, dispatch on type.

A replayed event id answers 200 and changes nothing. A handler that fails rolls its event
record back and answers 500, so Stripe delivers it again. Stripe-driven status changes never
lift an operator's suspension: `suspended` belongs to operators, not to Stripe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.gateway_factory import stripe_gateway
from billing.models import StripeWebhookEvent
from billing.services import tenant_stripe_ids_set, usage_mark_failed
from billing.setup import checkout_reference_plan
from billing.stripe_gateway import StripeSignatureError
from billing.sync import usage_id_from_identifier
from tenants.models import Plan, Tenant
from tenants.services import tenant_set_plan, tenant_set_status

logger = logging.getLogger(__name__)

Status = Tenant.Status
SUBSCRIPTION_STATUS = {
    "active": Status.ACTIVE,
    "trialing": Status.ACTIVE,
    "past_due": Status.PAST_DUE,
    "unpaid": Status.PAST_DUE,
    "canceled": Status.CANCELED,
    "incomplete_expired": Status.CANCELED,
}


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = stripe_gateway().construct_event(
            payload=request.body,
            signature=request.headers.get("Stripe-Signature", ""),
            secret=settings.STRIPE_WEBHOOK_SECRET,
        )
    except StripeSignatureError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=400)
    processed = stripe_event_process(event=event)
    return JsonResponse({"received": True, "replay": not processed})


def stripe_event_process(*, event: dict[str, Any]) -> bool:
    """Apply a verified event once; False when its id was seen before."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                StripeWebhookEvent.objects.create(
                    event_id=str(event.get("id", "")), event_type=event["type"], payload=event
                )
        except IntegrityError:
            return False
        handler = HANDLERS.get(event["type"])
        if handler is not None:
            handler(event)
    return True


# -- handlers -------------------------------------------------------------------------------


def _object(event: dict[str, Any]) -> dict[str, Any]:
    return dict(event.get("data", {}).get("object") or {})


def _tenant_for_customer(customer_id: str | None) -> Tenant | None:
    tenant = Tenant.objects.filter(stripe_customer_id=customer_id).first() if customer_id else None
    if tenant is None:
        logger.info("Stripe event for unknown customer %s ignored", customer_id)
    return tenant


def _set_status(tenant: Tenant, status: str) -> None:
    if tenant.status == Status.SUSPENDED or tenant.status == status:
        return
    tenant_set_status(tenant=tenant, status=status)


def on_subscription(event: dict[str, Any]) -> None:
    subscription = _object(event)
    tenant = _tenant_for_customer(subscription.get("customer"))
    if tenant is None:
        return
    current = tenant.stripe_subscription_id
    deleted = event["type"] == "customer.subscription.deleted"
    if current and current != subscription.get("id") and deleted:
        return  # an old subscription ending does not end the current one
    stripe_status = str(subscription.get("status", ""))
    status = Status.CANCELED if deleted else SUBSCRIPTION_STATUS.get(stripe_status)
    if status is None:
        return
    if not deleted and status != Status.CANCELED:
        tenant_stripe_ids_set(tenant=tenant, subscription_id=subscription["id"])
    _set_status(tenant, status)


def on_invoice_paid(event: dict[str, Any]) -> None:
    tenant = _tenant_for_customer(_object(event).get("customer"))
    if tenant is not None and tenant.status == Status.PAST_DUE:
        _set_status(tenant, Status.ACTIVE)


def on_invoice_payment_failed(event: dict[str, Any]) -> None:
    tenant = _tenant_for_customer(_object(event).get("customer"))
    if tenant is not None and tenant.status == Status.ACTIVE:
        _set_status(tenant, Status.PAST_DUE)


def on_checkout_completed(event: dict[str, Any]) -> None:
    session = _object(event)
    tenant = _tenant_for_customer(session.get("customer"))
    if tenant is None:
        return
    slug = (session.get("metadata") or {}).get("plan") or checkout_reference_plan(
        session.get("client_reference_id") or "", tenant=tenant
    )
    plan = Plan.objects.filter(slug=slug).first() if slug else None
    if plan is not None and plan.pk != tenant.plan_id:
        tenant_set_plan(tenant=tenant, plan=plan)
    if session.get("subscription"):
        tenant_stripe_ids_set(tenant=tenant, subscription_id=session["subscription"])
    _set_status(tenant, Status.ACTIVE)


def on_meter_error_report(event: dict[str, Any]) -> None:
    """A thin event: its details (which events, which error) are fetched from Stripe."""
    report = stripe_gateway().meter_error_report(event_id=event["id"])
    error = f"rejected by Stripe after delivery: {', '.join(report.codes) or 'unknown error'}"
    by_customer: dict[str, set[int]] = {}
    for identifier in report.identifiers:
        usage_id = usage_id_from_identifier(identifier)
        if usage_id is not None:
            customer_id = identifier.removeprefix("bunch-").split(".", 1)[0]
            by_customer.setdefault(customer_id, set()).add(usage_id)
    for customer_id, usage_ids in by_customer.items():
        tenant = _tenant_for_customer(customer_id)
        if tenant is not None:
            usage_mark_failed(tenant=tenant, usage_ids=usage_ids, error=error)


HANDLERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "customer.subscription.created": on_subscription,
    "customer.subscription.updated": on_subscription,
    "customer.subscription.deleted": on_subscription,
    "invoice.paid": on_invoice_paid,
    "invoice.payment_failed": on_invoice_payment_failed,
    "checkout.session.completed": on_checkout_completed,
    "v1.billing.meter.error_report_triggered": on_meter_error_report,
}
