"""Meter sync: deliver each pending usage event to Stripe exactly once.

Each usage event becomes two meter events (see `billing.setup`), with identifiers derived
from the row, so that any number of attempts, by any number of workers, count once:
Stripe refuses a second event with the same identifier ("already exists"), which means
delivered. Rows are claimed in short transactions (``SKIP LOCKED`` on PostgreSQL) and
leased by pushing ``stripe_next_attempt_at`` forward, so no database transaction is open
while Stripe is called; a worker that dies leaves its rows to the next one after the lease.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing.gateway_factory import stripe_gateway
from billing.models import MeterLine, UsageEvent
from billing.setup import AMOUNT, IMAGES, tenant_customer_ensure, tenant_subscription_ensure
from billing.stripe_gateway import (
    StripeGateway,
    StripeGatewayError,
    StripePermanentError,
    StripeRetryableError,
)
from core import metrics

CLAIM_SIZE = 50
LEASE = dt.timedelta(minutes=5)
BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 3600
PENDING = UsageEvent.StripeState.PENDING
IDENTIFIER = re.compile(r"^bunch-(?P<customer>[^.]+)\.ue(?P<pk>\d+)\.(?P<kind>images|amount)$")


@dataclass
class SyncReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.sent + self.retrying + self.failed + self.skipped

    def __str__(self) -> str:
        text = (
            f"sent {self.sent}, retrying {self.retrying}, failed {self.failed}, "
            f"skipped {self.skipped}"
        )
        return "; ".join([text, *self.notes])


@dataclass(frozen=True)
class MeterEvent:
    kind: str
    event_name: str
    identifier: str
    value: Decimal
    timestamp: int


def meter_identifier(*, customer_id: str, usage_id: int, kind: str) -> str:
    """Deterministic per row and meter; the customer id keeps it unique across databases
    that reuse primary keys (a fresh development database against the same account)."""
    return f"bunch-{customer_id}.ue{usage_id}.{kind}"


def usage_id_from_identifier(identifier: str) -> int | None:
    match = IDENTIFIER.match(identifier)
    return int(match["pk"]) if match else None


def amount_cents(billed: Decimal) -> Decimal:
    """The billed USD amount in cents, exact: at most 11 decimal places and 14 digits,
    within Stripe's 15 significant digits."""
    cents = (billed * 100).normalize()
    return cents if cents != 0 else Decimal(0)


def meter_events(*, event: UsageEvent, line: MeterLine, customer_id: str) -> list[MeterEvent]:
    """The two meter events that carry one usage event. Built from the row alone, so every
    attempt sends identical parameters (a changed one would be an idempotency error)."""
    timestamp = int(event.occurred_at.timestamp())
    return [
        MeterEvent(
            kind=kind,
            event_name=name,
            identifier=meter_identifier(customer_id=customer_id, usage_id=event.pk, kind=kind),
            value=value,
            timestamp=timestamp,
        )
        for kind, name, value in (
            (IMAGES, line.images_event_name, Decimal(1)),
            (AMOUNT, line.amount_event_name, amount_cents(event.billed)),
        )
    ]


def backoff(attempts: int) -> dt.timedelta:
    """Exponential with jitter: 30 s, 60 s, 120 s … up to an hour."""
    delay = min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S)
    return dt.timedelta(seconds=delay * random.uniform(0.8, 1.0))


def sync_pending(
    *, limit: int = 500, now: dt.datetime | None = None, gateway: StripeGateway | None = None
) -> SyncReport:
    """Send up to ``limit`` due pending usage events to Stripe."""
    report = SyncReport()
    if not settings.BILLING_ENABLED:
        report.notes.append("billing is disabled")
        return report
    now = now or timezone.now()
    gateway = gateway or stripe_gateway()
    lines = {line.line: line for line in MeterLine.objects.all()}
    customers: dict[int, str | StripeGatewayError] = {}
    while report.processed < limit:
        batch = _claim(now=now, size=min(CLAIM_SIZE, limit - report.processed))
        if not batch:
            break
        for event in batch:
            _deliver(
                event, lines=lines, customers=customers, gateway=gateway, now=now, report=report
            )
    return report


def _claim(*, now: dt.datetime, size: int) -> list[UsageEvent]:
    """Lease up to ``size`` due rows to this worker."""
    with transaction.atomic():
        due = UsageEvent.objects.filter(stripe_state=PENDING).filter(
            Q(stripe_next_attempt_at__isnull=True) | Q(stripe_next_attempt_at__lte=now)
        )
        if connection.features.has_select_for_update_skip_locked:
            # Concurrent workers skip each other's rows instead of queueing behind them.
            due = due.select_for_update(skip_locked=True)
        pks = list(due.order_by("pk").values_list("pk", flat=True)[:size])
        UsageEvent.objects.filter(pk__in=pks).update(stripe_next_attempt_at=now + LEASE)
    return list(UsageEvent.objects.filter(pk__in=pks).select_related("tenant").order_by("pk"))


def _deliver(
    event: UsageEvent,
    *,
    lines: dict[str, MeterLine],
    customers: dict[int, str | StripeGatewayError],
    gateway: StripeGateway,
    now: dt.datetime,
    report: SyncReport,
) -> None:
    line = lines.get(event.line)
    if line is None:
        _skip(event, f"no Stripe meters for line {event.line}: run `manage.py billing_setup`")
        report.skipped += 1
        return
    try:
        customer_id = _customer(event, customers=customers, gateway=gateway, report=report)
        for meter_event in meter_events(event=event, line=line, customer_id=customer_id):
            gateway.send_meter_event(
                event_name=meter_event.event_name,
                customer_id=customer_id,
                identifier=meter_event.identifier,
                value=meter_event.value,
                timestamp=meter_event.timestamp,
                attempt=event.stripe_attempts,
            )
    except StripeRetryableError as exc:
        _retry_later(event, error=str(exc), now=now)
        report.retrying += 1
    except StripePermanentError as exc:
        _fail(event, error=str(exc))
        report.failed += 1
    else:
        _mark_sent(event, now=now)
        report.sent += 1


def _customer(
    event: UsageEvent,
    *,
    customers: dict[int, str | StripeGatewayError],
    gateway: StripeGateway,
    report: SyncReport,
) -> str:
    """The tenant's customer, created on the fly (once per run, errors included)."""
    known = customers.get(event.tenant_id)
    if known is None:
        try:
            known = tenant_customer_ensure(tenant=event.tenant, gateway=gateway)
        except StripeGatewayError as exc:
            known = exc
        else:
            _subscribe(event, gateway=gateway, report=report)
        customers[event.tenant_id] = known
    if isinstance(known, StripeGatewayError):
        raise known
    return known


def _subscribe(event: UsageEvent, *, gateway: StripeGateway, report: SyncReport) -> None:
    # Without a subscription the usage is metered but never invoiced; a failure here must
    # not hold the usage back, so it is only reported.
    try:
        tenant_subscription_ensure(tenant=event.tenant, gateway=gateway)
    except StripeGatewayError as exc:
        report.notes.append(f"{event.tenant.slug}: no subscription yet ({exc})")


def _mark_sent(event: UsageEvent, *, now: dt.datetime) -> None:
    metrics.stripe_meter_events.labels("sent").inc()
    UsageEvent.objects.filter(pk=event.pk, stripe_state=PENDING).update(
        stripe_state=UsageEvent.StripeState.SENT,
        stripe_sent_at=now,
        stripe_next_attempt_at=None,
        stripe_last_error="",
    )


def _retry_later(event: UsageEvent, *, error: str, now: dt.datetime) -> None:
    metrics.stripe_meter_events.labels("retrying").inc()
    UsageEvent.objects.filter(pk=event.pk, stripe_state=PENDING).update(
        stripe_attempts=F("stripe_attempts") + 1,
        stripe_next_attempt_at=now + backoff(event.stripe_attempts + 1),
        stripe_last_error=error[:2000],
    )


def _fail(event: UsageEvent, *, error: str) -> None:
    metrics.stripe_meter_events.labels("failed").inc()
    UsageEvent.objects.filter(pk=event.pk, stripe_state=PENDING).update(
        stripe_state=UsageEvent.StripeState.FAILED,
        stripe_attempts=F("stripe_attempts") + 1,
        stripe_next_attempt_at=None,
        stripe_last_error=error[:2000],
    )


def _skip(event: UsageEvent, reason: str) -> None:
    # Still pending; the claim's lease spaces out the next look at it.
    UsageEvent.objects.filter(pk=event.pk, stripe_state=PENDING).update(stripe_last_error=reason)
