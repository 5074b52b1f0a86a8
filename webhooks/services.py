"""Webhooks out: tenants' endpoints, signed deliveries, retries.

Deliveries follow the Standard Webhooks spec (https://www.standardwebhooks.com): every
request carries `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64
HMAC-SHA256>` over `"{id}.{timestamp}.{body}"`, keyed with the endpoint's `whsec_` secret.

A delivery row is the truth about what is owed; the django-q2 task is only a doorbell.
`delivery_attempt` claims the row with a conditional update before sending, so a task
delivered twice, or raced by the sweeper that re-enqueues `deliveries_due`, sends once.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from audit.models import AuditEvent
from audit.services import audit_record
from config.errors import BunchError
from core import metrics
from tenants.models import Tenant
from webhooks import doorbell, safe_http
from webhooks.models import WebhookDelivery, WebhookEndpoint

SECRET_PREFIX = "whsec_"
# Longer than a send can take, so a claimed delivery is not claimed again mid-flight;
# short enough that one lost to a dead worker is picked up by the sweeper soon after.
CLAIM_LEASE = dt.timedelta(seconds=60)
# Waits after the 1st, 2nd, … failed attempt; a delivery fails after the last one.
RETRY_SCHEDULE: tuple[dt.timedelta, ...] = (
    dt.timedelta(seconds=5),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=5),
    dt.timedelta(hours=10),
)
ERROR_EXCERPT_BYTES = 500
EDITABLE_FIELDS = frozenset({"url", "description", "event_types", "enabled"})


class WebhookUrlNotAllowed(BunchError):
    status = 400
    code = "webhook_url_not_allowed"


class UnknownEventType(BunchError):
    status = 400
    code = "unknown_event_type"


@dataclass(frozen=True)
class SendResult:
    """What came back from one POST: a status code, or an error before any response."""

    status_code: int | None
    error: str = ""


Sender = Callable[[str, bytes, dict[str, str]], SendResult]


# Destinations ---------------------------------------------------------------------------


def url_problem(url: str, *, when_sending: bool = False) -> str | None:
    """Why deliveries may not go to `url`, or None (see `webhooks.safe_http`).

    With the development setting `WEBHOOKS_ALLOW_LOOPBACK` loopback is allowed, and a
    host name is not resolved when the endpoint is saved, only when sending.
    """
    allow_loopback = settings.WEBHOOKS_ALLOW_LOOPBACK
    return safe_http.url_problem(
        url, allow_loopback=allow_loopback, resolve=when_sending or not allow_loopback
    )


def _check_url(url: str) -> None:
    problem = url_problem(url)
    if problem:
        raise WebhookUrlNotAllowed(
            "Webhook URLs must be http(s) and resolve to public internet addresses; "
            f"loopback, private, link-local, multicast and reserved addresses are refused. "
            f"{problem}",
            fields={"url": [f"This destination is not allowed: {problem}"]},
        )


def _clean_event_types(event_types: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(event_types))
    unknown = [name for name in chosen if name not in WebhookEndpoint.EVENT_TYPES]
    if unknown:
        message = (
            f"Unknown event types: {', '.join(unknown)}. "
            f"Known: {', '.join(WebhookEndpoint.EVENT_TYPES)}."
        )
        raise UnknownEventType(message, fields={"event_types": [message]})
    return chosen


# Endpoints ------------------------------------------------------------------------------


def _new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


@transaction.atomic
def endpoint_create(
    *, tenant: Tenant, url: str, event_types: Iterable[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret, which the caller shows the tenant once."""
    _check_url(url)
    secret = _new_secret()
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant,
        url=url,
        description=description,
        event_types=_clean_event_types(event_types),
        secret=secret,
    )
    _audit(AuditEvent.Action.WEBHOOK_CREATED, endpoint, {"url": url})
    return endpoint, secret


@transaction.atomic
def endpoint_update(*, endpoint: WebhookEndpoint, **changes: Any) -> WebhookEndpoint:
    """Change any of `url`, `description`, `event_types`, `enabled`."""
    unexpected = set(changes) - EDITABLE_FIELDS
    if unexpected:
        raise TypeError(f"Not editable: {', '.join(sorted(unexpected))}")
    if "url" in changes:
        _check_url(changes["url"])
    if "event_types" in changes:
        changes["event_types"] = _clean_event_types(changes["event_types"])
    before = {name: getattr(endpoint, name) for name in changes}
    for name, value in changes.items():
        setattr(endpoint, name, value)
    if changes:
        endpoint.save(update_fields=list(changes))
        changed = {k: {"from": before[k], "to": v} for k, v in changes.items() if before[k] != v}
        if changed:
            _audit(AuditEvent.Action.WEBHOOK_CHANGED, endpoint, changed)
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    _audit(AuditEvent.Action.WEBHOOK_DELETED, endpoint)
    endpoint.delete()


@transaction.atomic
def endpoint_rotate_secret(
    *,
    endpoint: WebhookEndpoint,
    overlap: dt.timedelta | None = None,
    now: dt.datetime | None = None,
) -> str:
    """A new secret. For `overlap` (default `BUNCH_WEBHOOK_SECRET_OVERLAP_S`, 24 h) every
    delivery carries a signature with the old secret too; `overlap=0` ends it at once."""
    if overlap is None:
        overlap = dt.timedelta(seconds=settings.BUNCH_WEBHOOK_SECRET_OVERLAP_S)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = (now or timezone.now()) + overlap
    endpoint.secret = _new_secret()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    _audit(AuditEvent.Action.WEBHOOK_SECRET_ROTATED, endpoint)
    return endpoint.secret


def _audit(action: str, endpoint: WebhookEndpoint, detail: dict[str, Any] | None = None) -> None:
    audit_record(
        action=action, tenant=endpoint.tenant, obj=endpoint, object_label=endpoint.url,
        detail=detail,
    )  # fmt: skip


# Events and deliveries ------------------------------------------------------------------


def _enqueue(delivery_id: str) -> None:
    # robust: a broker hiccup must not fail the committed request; the delivery is due
    # already, so the sweeper sends it anyway.
    transaction.on_commit(
        functools.partial(async_task, "webhooks.tasks.deliver", delivery_id),
        robust=True,
    )


@transaction.atomic
def event_emit(
    *, tenant: Tenant, event_type: str, data: dict[str, Any], now: dt.datetime | None = None
) -> list[WebhookDelivery]:
    """One delivery of the event to each of the tenant's enabled endpoints that wants it."""
    if event_type not in WebhookEndpoint.EVENT_TYPES:
        raise ValueError(f"Unknown webhook event type {event_type!r}")
    now = now or timezone.now()
    timestamp = now.isoformat().replace("+00:00", "Z")
    payload = {"type": event_type, "timestamp": timestamp, "data": data}
    event_id = f"evt_{uuid.uuid4().hex}"
    endpoints = WebhookEndpoint.objects.filter(tenant=tenant, enabled=True)
    deliveries = [
        WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_id=event_id,
            event_type=event_type,
            payload=payload,
            # Due at once, so the sweeper delivers it even if the enqueue is lost.
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint in endpoints
        if endpoint.wants(event_type)
    ]
    for delivery in deliveries:
        _enqueue(str(delivery.id))
    return deliveries


def deliveries_due_soon(
    now: dt.datetime, *, within: dt.timedelta, limit: int = 500
) -> list[tuple[str, dt.datetime]]:
    """Pending deliveries whose next attempt falls after `now` and within `within`, with
    their due times (the sweep arms their doorbells)."""
    rows = (
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at__gt=now,
            next_attempt_at__lte=now + within,
        )
        .order_by("next_attempt_at")
        .values_list("id", "next_attempt_at")[:limit]
    )
    return [(str(delivery_id), due) for delivery_id, due in rows if due is not None]


def deliveries_due(now: dt.datetime | None = None, *, limit: int = 500) -> list[str]:
    """Ids of pending deliveries whose next attempt is due, oldest first (for the sweeper)."""
    now = now or timezone.now()
    ids = (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
        .filter(Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True))
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    return [str(delivery_id) for delivery_id in ids]


@transaction.atomic
def delivery_redeliver(
    *, delivery: WebhookDelivery, now: dt.datetime | None = None
) -> WebhookDelivery:
    """Send again now, whatever became of earlier attempts."""
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.next_attempt_at = now or timezone.now()
    delivery.save(update_fields=["status", "next_attempt_at"])
    _enqueue(str(delivery.id))
    return delivery


def sign(*, secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header value for one message."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def delivery_attempt(
    *, delivery_id: str, now: dt.datetime | None = None, send: Sender | None = None
) -> WebhookDelivery | None:
    """Send a due delivery once and record the outcome; a no-op if it is not due.

    None when the delivery no longer exists (its endpoint was deleted meanwhile).

    The HTTP request runs outside any transaction: the claim and the outcome are each
    one conditional `UPDATE`, so no lock is held while a slow receiver answers.
    """
    now = now or timezone.now()
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
        .filter(Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True))
        .update(next_attempt_at=now + CLAIM_LEASE)
    )
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or not claimed:
        return delivery
    endpoint = delivery.endpoint
    started = time.monotonic()
    if not endpoint.enabled:
        result = SendResult(None, "The endpoint is disabled.")
    else:
        body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
        headers = _signed_headers(endpoint=endpoint, delivery=delivery, body=body, now=now)
        result = (send or _post)(endpoint.url, body.encode(), headers)
    duration_ms = round((time.monotonic() - started) * 1000)
    recorded = _record(delivery=delivery, result=result, duration_ms=duration_ms, now=now)
    outcome = {"succeeded": "succeeded", "failed": "failed"}.get(recorded.status, "retrying")
    metrics.webhook_deliveries.labels(outcome).inc()
    return recorded


def _signed_headers(
    *, endpoint: WebhookEndpoint, delivery: WebhookDelivery, body: str, now: dt.datetime
) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {
        "content-type": "application/json",
        "user-agent": "Bunch-Webhooks/1",
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(timestamp),
        # Standard Webhooks: space-separated signatures, any one of which may verify.
        "webhook-signature": " ".join(
            sign(secret=secret, msg_id=delivery.event_id, timestamp=timestamp, body=body)
            for secret in endpoint.signing_secrets(now)
        ),
    }


def _post(url: str, body: bytes, headers: dict[str, str]) -> SendResult:
    """Resolve once, check every address, send to the checked one (`safe_http`)."""
    try:
        to = safe_http.destination(url, allow_loopback=settings.WEBHOOKS_ALLOW_LOOPBACK)
    except safe_http.DestinationRefused as exc:
        return SendResult(None, f"The destination address is not allowed: {exc}")
    answer = safe_http.post(to, body, headers)
    if answer.status_code is None:
        return SendResult(None, answer.error[:ERROR_EXCERPT_BYTES])
    if 200 <= answer.status_code < 300:
        return SendResult(answer.status_code)
    return SendResult(answer.status_code, f"HTTP {answer.status_code}: {answer.excerpt}")


def _record(
    *, delivery: WebhookDelivery, result: SendResult, duration_ms: int, now: dt.datetime
) -> WebhookDelivery:
    delivery.attempts += 1
    delivery.response_code = result.status_code
    delivery.duration_ms = duration_ms
    delivery.last_error = result.error
    succeeded = result.status_code is not None and 200 <= result.status_code < 300
    if succeeded:
        delivery.status = WebhookDelivery.Status.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif delivery.attempts <= len(RETRY_SCHEDULE):
        delivery.next_attempt_at = now + RETRY_SCHEDULE[delivery.attempts - 1]
    else:
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_attempt_at = None
    delivery.save(
        update_fields=[
            "attempts",
            "response_code",
            "duration_ms",
            "last_error",
            "status",
            "delivered_at",
            "next_attempt_at",
        ]
    )
    if delivery.status == WebhookDelivery.Status.PENDING and delivery.next_attempt_at:
        doorbell.ring_at(str(delivery.id), delivery.next_attempt_at)  # on time, not at a sweep
    return delivery
