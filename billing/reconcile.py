"""Compare the ledger with Stripe's meter event summaries, and repair what Stripe lacks.

Per tenant and line, over a minute-aligned window: the ledger's sent events (count, and
billed amount in cents) against the aggregate of the line's two meters. A repair first
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
from billing.models import MeterLine, UsageEvent
from billing.setup import AMOUNT, IMAGES
from billing.stripe_gateway import MeterEventOutcome, StripeGateway, StripeGatewayError
from billing.sync import amount_cents, meter_events
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
    tenant: Tenant
    line: MeterLine
    start: int
    end: int


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
    lines = list(MeterLine.objects.all())
    for tenant in Tenant.objects.exclude(stripe_customer_id="").order_by("slug"):
        for line in lines:
            scope = _Scope(tenant=tenant, line=line, start=start, end=end)
            report.checked += 1
            found = _compare(scope, gateway=gateway)
            report.differences += found
            if fix and any(d.missing > 0 for d in found):
                report.remaining += _repair(scope, gateway=gateway, report=report)
            elif fix:
                report.remaining += found
    return report


def _compare(scope: _Scope, *, gateway: StripeGateway) -> list[Difference]:
    ledger = _ledger(scope)
    pending = _events(scope, state=UsageEvent.StripeState.PENDING).count()
    found = []
    for meter, meter_id, expected in (
        (IMAGES, scope.line.images_meter_id, Decimal(ledger.images)),
        (AMOUNT, scope.line.amount_meter_id, amount_cents(ledger.billed)),
    ):
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
                    line=scope.line.line,
                    meter=meter,
                    ledger=expected,
                    stripe=actual,
                    pending=pending,
                )
            )
    return found


def _repair(scope: _Scope, *, gateway: StripeGateway, report: ReconcileReport) -> list[Difference]:
    # A fresh Idempotency-Key per run: an earlier run's saved answer must not be replayed.
    attempt = int(timezone.now().timestamp())
    customer_id = scope.tenant.stripe_customer_id
    for event in _events(scope, state=UsageEvent.StripeState.SENT).order_by("pk"):
        for meter_event in meter_events(event=event, line=scope.line, customer_id=customer_id):
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
    left = _compare(scope, gateway=gateway)
    for difference in left:
        if difference.missing > 0:
            _correct(scope, difference, gateway=gateway, report=report)
        else:
            report.notes.append(
                f"{difference.tenant} {difference.line} {difference.meter}: Stripe holds "
                f"{-difference.missing} more than the ledger; cancel the extra events "
                "(within 24 h of receipt) or credit the customer."
            )
    return _compare(scope, gateway=gateway)


def _correct(
    scope: _Scope, difference: Difference, *, gateway: StripeGateway, report: ReconcileReport
) -> None:
    latest = _ledger(scope).latest
    if latest is None:
        return
    name = scope.line.images_event_name if difference.meter == IMAGES else None
    name = name or scope.line.amount_event_name
    identifier = (
        f"bunch-{difference.customer_id}.fix.{scope.line.line}.{difference.meter}."
        f"{scope.start}.{difference.ledger.normalize()}"
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


def _events(scope: _Scope, *, state: str) -> QuerySet[UsageEvent]:
    return UsageEvent.objects.filter(
        tenant=scope.tenant,
        tier=scope.line.tier,
        mode=scope.line.mode,
        stripe_state=state,
        occurred_at__gte=_utc(scope.start),
        occurred_at__lt=_utc(scope.end),
    )


@dataclass(frozen=True)
class _Ledger:
    images: int
    billed: Decimal
    latest: dt.datetime | None


def _ledger(scope: _Scope) -> _Ledger:
    # Summed here, not in SQL: SQLite adds decimals as floats, and this must be exact.
    rows = _events(scope, state=UsageEvent.StripeState.SENT).values_list("billed", "occurred_at")
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
