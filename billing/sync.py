"""Meter sync: deliver each pending usage event to Stripe exactly once.

Each usage event becomes up to four meter events on the token meters (input, text
output and image output tokens, and one for the markup; see `billing.tokens`), or, if it
occurred before the switch-over, two on its line's legacy meters (see `billing.setup`),
never both. Identifiers are derived from the row, so that any number of attempts, by any
number of workers, count once:
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
from billing.models import MeterLine, TokenMeter, UsageEvent
from billing.setup import (
    AMOUNT,
    IMAGES,
    subscription_prices_ensure,
    tenant_customer_ensure,
    tenant_subscription_ensure,
)
from billing.stripe_gateway import (
    StripeGateway,
    StripeGatewayError,
    StripePermanentError,
    StripeRetryableError,
)
from billing.token_setup import token_meter_ensure
from billing.tokens import RatesMissing, event_quantities, on_token_meters, switch_time
from core import metrics

CLAIM_SIZE = 50
LEASE = dt.timedelta(minutes=5)
BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 3600
PENDING = UsageEvent.StripeState.PENDING
IDENTIFIER = re.compile(r"^bunch-(?P<customer>[^.]+)\.ue(?P<pk>\d+)\.(?P<kind>[a-z_]+)$")


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
    """The two legacy meter events that carry one usage event from before the switch-over.
    Built from the row alone, so every attempt sends identical parameters (a changed one
    would be an idempotency error)."""
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


def token_meter_events(
    *, event: UsageEvent, meters: dict[str, TokenMeter], customer_id: str
) -> list[MeterEvent]:
    """The token meter events of one usage event (`billing.tokens.event_quantities`), for
    the meters in `meters` (by event name); built from the row alone, like the legacy ones."""
    timestamp = int(event.occurred_at.timestamp())
    return [
        MeterEvent(
            kind=key.kind,
            event_name=meters[key.event_name].event_name,
            identifier=meter_identifier(customer_id=customer_id, usage_id=event.pk, kind=key.kind),
            value=Decimal(quantity),
            timestamp=timestamp,
        )
        for key, quantity in event_quantities(event)
    ]


def backoff(attempts: int) -> dt.timedelta:
    """Exponential with jitter: 30 s, 60 s, 120 s … up to an hour."""
    delay = min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S)
    return dt.timedelta(seconds=delay * random.uniform(0.8, 1.0))


@dataclass
class _Run:
    """What one sync run looks up once: meters, customers, the prices on subscriptions."""

    gateway: StripeGateway
    now: dt.datetime
    report: SyncReport
    switch: dt.datetime | None
    lines: dict[str, MeterLine]
    meters: dict[str, TokenMeter]
    customers: dict[int, str | StripeGatewayError] = field(default_factory=dict)
    prices_held: dict[int, set[str]] = field(default_factory=dict)


def sync_pending(
    *, limit: int = 500, now: dt.datetime | None = None, gateway: StripeGateway | None = None
) -> SyncReport:
    """Send up to ``limit`` due pending usage events to Stripe."""
    report = SyncReport()
    if not settings.BILLING_ENABLED:
        report.notes.append("billing is disabled")
        return report
    run = _Run(
        gateway=gateway or stripe_gateway(),
        now=now or timezone.now(),
        report=report,
        switch=switch_time(),
        lines={line.line: line for line in MeterLine.objects.all()},
        meters={meter.event_name: meter for meter in TokenMeter.objects.all()},
    )
    while report.processed < limit:
        batch = _claim(now=run.now, size=min(CLAIM_SIZE, limit - report.processed))
        if not batch:
            break
        for event in batch:
            _deliver(event, run=run)
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


def _deliver(event: UsageEvent, *, run: _Run) -> None:
    report = run.report
    reason = _not_deliverable(event, run=run)
    if reason:
        _skip(event, reason)
        report.skipped += 1
        return
    try:
        customer_id = _customer(event, run=run)
        for meter_event in _events_of(event, customer_id=customer_id, run=run):
            run.gateway.send_meter_event(
                event_name=meter_event.event_name,
                customer_id=customer_id,
                identifier=meter_event.identifier,
                value=meter_event.value,
                timestamp=meter_event.timestamp,
                attempt=event.stripe_attempts,
            )
    except StripeRetryableError as exc:
        _retry_later(event, error=str(exc), now=run.now)
        report.retrying += 1
    except StripePermanentError as exc:
        _fail(event, error=str(exc))
        report.failed += 1
    else:
        _mark_sent(event, now=run.now)
        report.sent += 1


def _not_deliverable(event: UsageEvent, *, run: _Run) -> str:
    """Why the event must wait (still pending), or ""."""
    if run.switch is None:
        return "no Stripe token meters yet: run `manage.py billing_setup`"
    if not on_token_meters(event, run.switch):
        if event.line not in run.lines:
            return f"no legacy Stripe meters for line {event.line}: run `manage.py billing_setup`"
        return ""
    if event.input_per_million is None:
        return "stored without the rates it was priced at (by an older worker)"
    return ""


def _events_of(event: UsageEvent, *, customer_id: str, run: _Run) -> list[MeterEvent]:
    assert run.switch is not None  # checked by _not_deliverable
    if not on_token_meters(event, run.switch):
        return meter_events(event=event, line=run.lines[event.line], customer_id=customer_id)
    try:
        keys = [key for key, _ in event_quantities(event)]
    except RatesMissing as exc:  # checked by _not_deliverable
        raise StripePermanentError(str(exc)) from exc
    for key in keys:
        if key.event_name not in run.meters:
            # A rate first seen (a price-book change): its own meter and price.
            run.meters[key.event_name] = token_meter_ensure(key=key, gateway=run.gateway)
    _prices_on_subscription(event, [run.meters[k.event_name].price_id for k in keys], run=run)
    return token_meter_events(event=event, meters=run.meters, customer_id=customer_id)


def _prices_on_subscription(event: UsageEvent, price_ids: list[str], *, run: _Run) -> None:
    """The tenant's subscription holds these prices, so their usage is invoiced; looked up
    once per tenant and run, added (never swapped) when one is missing."""
    tenant = event.tenant
    held = run.prices_held.get(tenant.pk)
    if held is None:
        tenant.refresh_from_db(fields=["stripe_subscription_id"])  # made earlier in this run?
        if not tenant.stripe_subscription_id:
            return
        subscription = run.gateway.retrieve_subscription(
            subscription_id=tenant.stripe_subscription_id
        )
        held = run.prices_held[tenant.pk] = {item.price_id for item in subscription.items}
    missing = [p for p in price_ids if p not in held]
    if missing:
        subscription_prices_ensure(tenant=tenant, gateway=run.gateway, price_ids=missing)
        held.update(missing)


def _customer(event: UsageEvent, *, run: _Run) -> str:
    """The tenant's customer, created on the fly (once per run, errors included)."""
    known = run.customers.get(event.tenant_id)
    if known is None:
        try:
            known = tenant_customer_ensure(tenant=event.tenant, gateway=run.gateway)
        except StripeGatewayError as exc:
            known = exc
        else:
            _subscribe(event, gateway=run.gateway, report=run.report)
        run.customers[event.tenant_id] = known
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
