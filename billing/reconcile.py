"""Compare the ledger with Stripe's meter event summaries, and repair what Stripe lacks.

Per tenant, over a minute-aligned window, each meter against the ledger's sent events
that the routing rule sends to it (`billing.tokens.on_token_meters`): every token meter
(tokens of its line at its rate, or images at its markup) against the events from the
switch-over on, and each legacy line's two meters (count, and billed amount in cents)
against the events before it. A repair first
resends the window's events under their own identifiers (what Stripe already holds answers
"already exists"); whatever is still missing after that — events Stripe accepted and then
dropped or cancelled, whose identifiers are spent — is reported with one correction event
per meter, whose identifier names the window and the ledger total, so repeating the repair
never counts it twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from billing.gateway_factory import stripe_gateway
from billing.models import MeterLine, TokenMeter, UsageEvent
from billing.setup import AMOUNT, IMAGES
from billing.stripe_gateway import MeterEventOutcome, StripeGateway, StripeGatewayError
from billing.sync import MeterEvent, amount_cents, meter_events, token_meter_events
from billing.tokens import switch_time, token_lines
from tenants.models import Tenant

TOLERANCE_CENTS = Decimal("0.000001")  # summaries come back as JSON floats
DEFAULT_WINDOW = dt.timedelta(days=35)  # Stripe takes no meter event older than 35 days


@dataclass(frozen=True)
class Difference:
    tenant: str
    customer_id: str
    line: str
    meter: str
    ledger: Decimal
    stripe: Decimal
    pending: int
    event_name: str = ""

    @property
    def missing(self) -> Decimal:
        return self.ledger - self.stripe


@dataclass
class ReconcileReport:
    start: dt.datetime
    end: dt.datetime
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)
    remaining: list[Difference] = field(default_factory=list)
    resent: int = 0
    corrections: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Scope:
    """One tenant's window, and the part of it one set of meters bills: events before the
    switch-over for a legacy line (`line`), from it on for the token meters."""

    tenant: Tenant
    start: int
    end: int
    switch: dt.datetime | None
    line: MeterLine | None = None

    def events(self, *, state: str) -> QuerySet[UsageEvent]:
        events = UsageEvent.objects.filter(
            tenant=self.tenant,
            stripe_state=state,
            occurred_at__gte=_utc(self.start),
            occurred_at__lt=_utc(self.end),
        )
        if self.line is None:
            assert self.switch is not None
            return events.filter(occurred_at__gte=self.switch)
        events = events.filter(tier=self.line.tier, mode=self.line.mode)
        return events.filter(occurred_at__lt=self.switch) if self.switch else events


def reconcile(
    *,
    since: dt.datetime | None = None,
    now: dt.datetime | None = None,
    fix: bool = False,
    gateway: StripeGateway | None = None,
) -> ReconcileReport:
    now = now or timezone.now()
    start = _minute_floor(since or now - DEFAULT_WINDOW)
    end = _minute_floor(now) + 60
    gateway = gateway or stripe_gateway()
    report = ReconcileReport(start=_utc(start), end=_utc(end))
    switch = switch_time()
    lines = list(MeterLine.objects.all())
    meters = list(TokenMeter.objects.all())
    for tenant in Tenant.objects.exclude(stripe_customer_id="").order_by("slug"):
        scopes = [_Scope(tenant, start, end, switch, line) for line in lines]
        if switch is not None and meters:
            scopes.append(_Scope(tenant, start, end, switch))
        for scope in scopes:
            report.checked += 1 if scope.line else len(meters)
            found = _compare(scope, gateway=gateway, meters=meters)
            report.differences += found
            if fix and any(d.missing > 0 for d in found):
                report.remaining += _repair(scope, gateway=gateway, report=report, meters=meters)
            elif fix:
                report.remaining += found
    return report


def _compare(
    scope: _Scope, *, gateway: StripeGateway, meters: list[TokenMeter]
) -> list[Difference]:
    pending = scope.events(state=UsageEvent.StripeState.PENDING).count()
    found = []
    for meter, event_name, meter_id, expected in _expected(scope, meters):
        actual = gateway.meter_event_summary_total(
            meter_id=meter_id,
            customer_id=scope.tenant.stripe_customer_id,
            start=scope.start,
            end=scope.end,
        )
        if abs(actual - expected) > TOLERANCE_CENTS:
            found.append(
                Difference(
                    tenant=scope.tenant.slug,
                    customer_id=scope.tenant.stripe_customer_id,
                    line=_line_name(scope, event_name, meters),
                    meter=meter,
                    ledger=expected,
                    stripe=actual,
                    pending=pending,
                    event_name=event_name,
                )
            )
    return found


def _expected(scope: _Scope, meters: list[TokenMeter]) -> list[tuple[str, str, str, Decimal]]:
    """(meter label, event name, meter id, what the ledger says it holds) per meter."""
    if scope.line is not None:
        ledger, line = _ledger(scope), scope.line
        return [
            (IMAGES, line.images_event_name, line.images_meter_id, Decimal(ledger.images)),
            (AMOUNT, line.amount_event_name, line.amount_meter_id, amount_cents(ledger.billed)),
        ]
    held = {
        line.key.event_name: line.quantity
        for line in token_lines(scope.events(state=UsageEvent.StripeState.SENT))
    }
    return [
        (meter.kind, meter.event_name, meter.meter_id, Decimal(held.get(meter.event_name, 0)))
        for meter in meters
    ]


def _line_name(scope: _Scope, event_name: str, meters: list[TokenMeter]) -> str:
    if scope.line is not None:
        return scope.line.line
    meter = next(m for m in meters if m.event_name == event_name)
    return f"{meter.tier}_{meter.mode}" if meter.tier else "markup"


def _resend_events(scope: _Scope, meters: list[TokenMeter]) -> list[MeterEvent]:
    customer_id = scope.tenant.stripe_customer_id
    by_name = {meter.event_name: meter for meter in meters}
    sent = []
    for event in scope.events(state=UsageEvent.StripeState.SENT).order_by("pk"):
        if scope.line is not None:
            sent += meter_events(event=event, line=scope.line, customer_id=customer_id)
        else:
            made = token_meter_events(event=event, meters=by_name, customer_id=customer_id)
            sent += [m for m in made if m.event_name in by_name]
    return sent


def _repair(
    scope: _Scope, *, gateway: StripeGateway, report: ReconcileReport, meters: list[TokenMeter]
) -> list[Difference]:
    # A fresh Idempotency-Key per run: an earlier run's saved answer must not be replayed.
    attempt = int(timezone.now().timestamp())
    customer_id = scope.tenant.stripe_customer_id
    for meter_event in _resend_events(scope, meters):
        try:
            outcome = gateway.send_meter_event(
                event_name=meter_event.event_name,
                customer_id=customer_id,
                identifier=meter_event.identifier,
                value=meter_event.value,
                timestamp=meter_event.timestamp,
                attempt=attempt,
            )
        except StripeGatewayError as exc:
            report.notes.append(f"{meter_event.identifier}: {exc}")
            continue
        report.resent += int(outcome is MeterEventOutcome.SENT)
    left = _compare(scope, gateway=gateway, meters=meters)
    for difference in left:
        if difference.missing > 0:
            _correct(scope, difference, gateway=gateway, report=report)
        else:
            report.notes.append(
                f"{difference.tenant} {difference.line} {difference.meter}: Stripe holds "
                f"{-difference.missing} more than the ledger; cancel the extra events "
                "(within 24 h of receipt) or credit the customer."
            )
    return _compare(scope, gateway=gateway, meters=meters)


def _correct(
    scope: _Scope, difference: Difference, *, gateway: StripeGateway, report: ReconcileReport
) -> None:
    latest = _ledger(scope).latest
    if latest is None:
        return
    name = difference.event_name
    identifier = (
        f"bunch-{difference.customer_id}.fix.{name}.{scope.start}.{difference.ledger.normalize()}"
    )[:100]
    try:
        gateway.send_meter_event(
            event_name=name,
            customer_id=difference.customer_id,
            identifier=identifier,
            value=difference.missing.normalize(),
            timestamp=int(latest.timestamp()),
        )
    except StripeGatewayError as exc:
        report.notes.append(f"{identifier}: {exc}")
        return
    report.corrections += 1


@dataclass(frozen=True)
class _Ledger:
    images: int
    billed: Decimal
    latest: dt.datetime | None


def _ledger(scope: _Scope) -> _Ledger:
    # Summed here, not in SQL: SQLite adds decimals as floats, and this must be exact.
    rows = scope.events(state=UsageEvent.StripeState.SENT).values_list("billed", "occurred_at")
    billed = [amount for amount, _ in rows]
    return _Ledger(
        images=len(billed),
        billed=sum(billed, Decimal(0)),
        latest=max((moment for _, moment in rows), default=None),
    )


def _minute_floor(moment: dt.datetime) -> int:
    return int(moment.timestamp()) // 60 * 60


def _utc(timestamp: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)
