"""The one adapter between Bunch and Stripe: the only module in the project that imports `stripe`.

Callers get plain values and dataclasses, and typed errors that say whether a retry can help:
`StripeRetryableError` (429, 409, 5xx, connection errors, timeouts, or Stripe's own
``Stripe-Should-Retry: true``) and `StripePermanentError` (any other refusal). The SDK itself
retries a request ``max_network_retries`` times with the same Idempotency-Key before either is
raised.

Pointed at the local emulator with ``api_base``; without it, the same code talks to Stripe.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import stripe

if TYPE_CHECKING:
    from stripe.params.billing import MeterEventCreateParams
    from stripe.params.checkout import SessionCreateParams

METER_EVENT_KEY_PREFIX = "meter-event:"
ALREADY_EXISTS_MESSAGE = "An event already exists with identifier"
SUMMARY_ALIGNMENT_S = 60


# -- errors ---------------------------------------------------------------------------------


class StripeGatewayError(Exception):
    """Stripe refused or could not be reached; ``retryable`` says whether trying again can help."""

    retryable: bool = False

    def __init__(
        self, message: str, *, code: str | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status

    def __str__(self) -> str:
        status = f" (HTTP {self.http_status})" if self.http_status else ""
        return f"{self.code or 'stripe_error'}{status}: {self.message}"


class StripeRetryableError(StripeGatewayError):
    retryable = True


class StripePermanentError(StripeGatewayError):
    retryable = False


class StripeSignatureError(StripeGatewayError):
    """A webhook payload whose signature (or timestamp) does not verify."""

    retryable = False


# -- results --------------------------------------------------------------------------------


class MeterEventOutcome(enum.Enum):
    """Both outcomes mean Stripe holds the event: the usage is delivered."""

    SENT = "sent"
    ALREADY_EXISTS = "already_exists"


@dataclass(frozen=True)
class SubscriptionItem:
    id: str
    price_id: str
    current_period_start: int | None
    current_period_end: int | None
    lookup_key: str | None = None


@dataclass(frozen=True)
class Subscription:
    id: str
    status: str
    customer_id: str
    items: tuple[SubscriptionItem, ...]


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    amount_cents: int
    quantity: Decimal
    price_id: str | None
    proration: bool = False


@dataclass(frozen=True)
class InvoicePreview:
    total_cents: int
    currency: str
    lines: tuple[InvoiceLine, ...]


@dataclass(frozen=True)
class MeterErrorReport:
    """A `v1.billing.meter.error_report_triggered` event, fetched in full."""

    event_id: str
    meter_id: str | None
    codes: tuple[str, ...]
    identifiers: tuple[str, ...]  # meter event identifiers, where the request was ours
    messages: tuple[str, ...]


# -- the gateway ----------------------------------------------------------------------------


class StripeGateway:
    def __init__(
        self,
        api_key: str,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_s: float = 20,
    ) -> None:
        base = api_base.rstrip("/") if api_base else None
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": base, "meter_events": base} if base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_s),
        )

    # -- catalog (billing_setup) ----------------------------------------------------------

    def ensure_meter(self, *, event_name: str, display_name: str) -> str:
        """The id of the meter for ``event_name``, created (sum of ``value``) if missing."""
        with _translated():
            meter = self._find_meter(event_name)
            if meter is None:
                meter = self._create_meter(event_name=event_name, display_name=display_name)
            elif meter.status != "active":
                meter = self._client.v1.billing.meters.reactivate(meter.id)
            if meter.display_name != display_name:
                self._client.v1.billing.meters.update(meter.id, {"display_name": display_name})
            return meter.id

    def _create_meter(self, *, event_name: str, display_name: str) -> Any:
        try:
            return self._client.v1.billing.meters.create(
                {
                    "display_name": display_name,
                    "event_name": event_name,
                    "default_aggregation": {"formula": "sum"},
                    "customer_mapping": {
                        "type": "by_id",
                        "event_payload_key": "stripe_customer_id",
                    },
                    "value_settings": {"event_payload_key": "value"},
                }
            )
        except stripe.InvalidRequestError:
            # Another worker created it between our look and our create: take that one.
            meter = self._find_meter(event_name)
            if meter is None:
                raise
            return meter

    def _find_meter(self, event_name: str) -> Any:
        meters = self._client.v1.billing.meters.list({"limit": 100})
        return next((m for m in meters.auto_paging_iter() if m.event_name == event_name), None)

    def ensure_product(self, *, name: str, lookup: str, unit_label: str | None = None) -> str:
        """Products have no lookup key, so ``lookup`` is used as the product's own id.
        ``unit_label`` ("tokens") is what the invoice calls a unit of its prices."""
        with _translated():
            try:
                product = self._client.v1.products.retrieve(lookup)
            except stripe.InvalidRequestError as exc:
                if exc.http_status != 404:
                    raise
                params: Any = {"id": lookup, "name": name}
                if unit_label:
                    params["unit_label"] = unit_label
                try:
                    return str(self._client.v1.products.create(params).id)
                except stripe.InvalidRequestError:  # created meanwhile by another worker
                    product = self._client.v1.products.retrieve(lookup)
            changes: Any = {}
            if product.name != name:
                changes["name"] = name
            if unit_label and getattr(product, "unit_label", None) != unit_label:
                changes["unit_label"] = unit_label
            if changes:
                self._client.v1.products.update(lookup, changes)
            return str(product.id)

    def ensure_metered_price(
        self,
        *,
        product_id: str,
        meter_id: str,
        unit_amount_decimal: Decimal,
        lookup_key: str,
        currency: str = "usd",
    ) -> str:
        """The monthly metered price under ``lookup_key``.

        Prices are immutable, so a changed amount makes a new price that takes the lookup
        key over; subscriptions on the old price keep it until they are moved.
        """
        with _translated():
            found = self._client.v1.prices.list({"lookup_keys": [lookup_key], "limit": 1}).data
            if found and _price_matches(found[0], product_id, meter_id, unit_amount_decimal):
                return str(found[0].id)
            try:
                price = self._client.v1.prices.create(
                    {
                        "product": product_id,
                        "currency": currency,
                        "unit_amount_decimal": unit_amount_decimal,
                        "recurring": {
                            "interval": "month",
                            "usage_type": "metered",
                            "meter": meter_id,
                        },
                        "lookup_key": lookup_key,
                        "transfer_lookup_key": bool(found),
                    }
                )
            except stripe.InvalidRequestError:
                # Another worker made it meanwhile (the lookup key is taken): take that one.
                again = self._client.v1.prices.list({"lookup_keys": [lookup_key]}).data
                if again and _price_matches(again[0], product_id, meter_id, unit_amount_decimal):
                    return str(again[0].id)
                raise
            return str(price.id)

    def ensure_licensed_price(
        self, *, product_id: str, unit_amount_cents: int, lookup_key: str, currency: str = "usd"
    ) -> str:
        """The monthly fixed-fee (licensed) price under ``lookup_key``; a changed amount
        makes a new price that takes the key over, as for metered prices."""
        with _translated():
            found = self._client.v1.prices.list({"lookup_keys": [lookup_key], "limit": 1}).data
            if found:
                price = found[0]
                recurring = price.recurring
                if (
                    price.product == product_id
                    and price.unit_amount == unit_amount_cents
                    and recurring is not None
                    and recurring.usage_type == "licensed"
                ):
                    return str(price.id)
            created = self._client.v1.prices.create(
                {
                    "product": product_id,
                    "currency": currency,
                    "unit_amount": unit_amount_cents,
                    "recurring": {"interval": "month", "usage_type": "licensed"},
                    "lookup_key": lookup_key,
                    "transfer_lookup_key": bool(found),
                }
            )
            return str(created.id)

    # -- customers and subscriptions ------------------------------------------------------

    def create_customer(
        self,
        *,
        name: str,
        email: str,
        metadata: Mapping[str, str],
        idempotency_key: str | None = None,
    ) -> str:
        with _translated():
            customer = self._client.v1.customers.create(
                {"name": name, "email": email, "metadata": dict(metadata)},
                _options(idempotency_key),
            )
            return customer.id

    def create_subscription(
        self,
        *,
        customer_id: str,
        price_ids: list[str],
        fee_price_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """Metered `price_ids` (no quantity) and the plan's fee, a licensed price × 1."""
        items: list[dict[str, Any]] = [{"price": p} for p in price_ids]
        if fee_price_id:
            items.insert(0, {"price": fee_price_id, "quantity": 1})
        with _translated():
            sub = self._client.v1.subscriptions.create(
                {"customer": customer_id, "items": items},  # type: ignore[arg-type]
                _options(idempotency_key),
            )
            return _subscription(sub.to_dict())

    def set_subscription_fee(
        self,
        *,
        subscription_id: str,
        item_id: str | None,
        price_id: str | None,
        prorate: bool,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """Put the plan's fee on the subscription: swap the price of `item_id`, add it, or
        (`price_id` None: a plan without a fee) remove the item. With `prorate`, Stripe
        credits the old fee's unused time and charges the new one's on the next invoice;
        without, the change starts with the next period."""
        spec: dict[str, Any] = {"price": price_id, "quantity": 1} if price_id else {"deleted": True}
        if item_id:
            spec["id"] = item_id
        with _translated():
            params: Any = {
                "items": [spec],
                "proration_behavior": "create_prorations" if prorate else "none",
            }
            sub = self._client.v1.subscriptions.update(
                subscription_id, params, _options(idempotency_key)
            )
            return _subscription(sub.to_dict())

    def add_subscription_prices(
        self, *, subscription_id: str, price_ids: list[str], idempotency_key: str | None = None
    ) -> Subscription:
        """Add metered prices to a subscription (no proration: they bill what is used);
        its other items stay."""
        with _translated():
            params: Any = {
                "items": [{"price": p} for p in price_ids],
                "proration_behavior": "none",
            }
            sub = self._client.v1.subscriptions.update(
                subscription_id, params, _options(idempotency_key)
            )
            return _subscription(sub.to_dict())

    def retrieve_subscription(self, *, subscription_id: str) -> Subscription:
        with _translated():
            return _subscription(self._client.v1.subscriptions.retrieve(subscription_id).to_dict())

    # -- usage ----------------------------------------------------------------------------

    def send_meter_event(
        self,
        *,
        event_name: str,
        customer_id: str,
        identifier: str,
        value: int | Decimal,
        timestamp: int,
        attempt: int = 0,
    ) -> MeterEventOutcome:
        """Report usage once. ``identifier`` is the business id Stripe deduplicates on.

        The Idempotency-Key is derived from the identifier, so the SDK's own retries and a
        worker's next attempt replay rather than duplicate. Every parameter must therefore be
        the same on each attempt (take ``timestamp`` and ``value`` from the ledger row, never
        from the clock): a changed one under the same key is a permanent idempotency_error.
        Pass the worker's ``attempt`` count: Stripe replays a saved 5xx for its key, and a
        fresh key per attempt lets a later attempt through, while the identifier still
        refuses a second copy (``ALREADY_EXISTS``).
        """
        params: MeterEventCreateParams = {
            "event_name": event_name,
            "payload": {"stripe_customer_id": customer_id, "value": _decimal_text(value)},
            "identifier": identifier,
            "timestamp": timestamp,
        }
        key = meter_event_idempotency_key(identifier, attempt)
        try:
            with _translated():
                self._client.v1.billing.meter_events.create(params, {"idempotency_key": key})
        except StripePermanentError as exc:
            if exc.http_status == 400 and ALREADY_EXISTS_MESSAGE in exc.message:
                return MeterEventOutcome.ALREADY_EXISTS
            raise
        return MeterEventOutcome.SENT

    def cancel_meter_event(self, *, event_name: str, identifier: str) -> None:
        """Cancel an event Stripe received less than 24 hours ago."""
        with _translated():
            self._client.v1.billing.meter_event_adjustments.create(
                {"event_name": event_name, "type": "cancel", "cancel": {"identifier": identifier}},
                {"idempotency_key": f"meter-event-cancel:{identifier}"},
            )

    def meter_event_summary_total(
        self, *, meter_id: str, customer_id: str, start: int, end: int
    ) -> Decimal:
        """The meter's aggregate for a customer over [start, end); both minute-aligned."""
        if start % SUMMARY_ALIGNMENT_S or end % SUMMARY_ALIGNMENT_S:
            raise ValueError("start and end must be Unix seconds on minute boundaries")
        with _translated():
            summaries = self._client.v1.billing.meters.event_summaries.list(
                meter_id, {"customer": customer_id, "start_time": start, "end_time": end}
            )
            return sum(
                (Decimal(str(s.aggregated_value)) for s in summaries.auto_paging_iter()),
                Decimal(0),
            )

    # -- hosted pages and invoices --------------------------------------------------------

    def create_checkout_session(
        self,
        *,
        customer_id: str,
        price_ids: list[str],
        success_url: str,
        cancel_url: str,
        client_reference_id: str | None = None,
        fee_price_id: str | None = None,
    ) -> str:
        """The URL of a subscription-mode Checkout page; metered prices take no quantity,
        the plan's fee (a licensed price) quantity 1."""
        line_items: list[Any] = [{"price": p} for p in price_ids]
        if fee_price_id:
            line_items.insert(0, {"price": fee_price_id, "quantity": 1})
        params: SessionCreateParams = {
            "mode": "subscription",
            "customer": customer_id,
            "line_items": line_items,
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if client_reference_id:
            params["client_reference_id"] = client_reference_id
        with _translated():
            return str(self._client.v1.checkout.sessions.create(params).url)

    def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        with _translated():
            session = self._client.v1.billing_portal.sessions.create(
                {"customer": customer_id, "return_url": return_url}
            )
            return str(session.url)

    def invoice_preview(self, *, customer_id: str) -> InvoicePreview:
        """The upcoming invoice of the customer's subscription for the current period."""
        with _translated():
            invoice = self._client.v1.invoices.create_preview({"customer": customer_id}).to_dict()
        lines = tuple(_invoice_line(line) for line in invoice["lines"]["data"])
        return InvoicePreview(
            total_cents=int(invoice["total"]), currency=invoice["currency"], lines=lines
        )

    # -- webhooks -------------------------------------------------------------------------

    def construct_event(
        self, *, payload: bytes, signature: str, secret: str, tolerance_s: int = 300
    ) -> dict[str, Any]:
        """Verify a webhook and return its JSON as a dict.

        Accepts v1 snapshot events (``object: "event"``) and v2 thin notifications
        (``object: "v2.core.event"``, e.g. meter error reports; see `meter_error_report`).
        """
        try:
            stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance_s)
            event = json.loads(payload)
        except stripe.SignatureVerificationError as exc:
            raise StripeSignatureError(str(exc.user_message), code="bad_signature") from exc
        except ValueError as exc:
            raise StripeSignatureError(f"unreadable payload: {exc}", code="bad_payload") from exc
        if not isinstance(event, dict) or "type" not in event:
            raise StripeSignatureError("payload is not a Stripe event", code="bad_payload")
        return event

    def meter_error_report(self, *, event_id: str) -> MeterErrorReport:
        """Fetch the details of a `v1.billing.meter.error_report_triggered` thin event."""
        with _translated():
            event = self._client.v2.core.events.retrieve(event_id).to_dict()
        error_types = event.get("data", {}).get("reason", {}).get("error_types", [])
        samples = [s for t in error_types for s in t.get("sample_errors", [])]
        keys = [s.get("request", {}).get("identifier", "") for s in samples]
        return MeterErrorReport(
            event_id=event_id,
            meter_id=(event.get("related_object") or {}).get("id"),
            codes=tuple(t["code"] for t in error_types),
            identifiers=tuple(i for i in map(identifier_from_idempotency_key, keys) if i),
            messages=tuple(s.get("error_message", "") for s in samples),
        )


# -- helpers --------------------------------------------------------------------------------


def meter_event_idempotency_key(identifier: str, attempt: int = 0) -> str:
    key = f"{METER_EVENT_KEY_PREFIX}{identifier}"
    return key if attempt <= 0 else f"{key}:attempt-{attempt}"


def identifier_from_idempotency_key(key: str) -> str | None:
    """Invert `meter_event_idempotency_key`; None for keys this gateway did not make."""
    if not key.startswith(METER_EVENT_KEY_PREFIX):
        return None
    identifier = key.removeprefix(METER_EVENT_KEY_PREFIX)
    head, sep, tail = identifier.rpartition(":attempt-")
    return head if sep and tail.isdigit() else identifier


def _options(idempotency_key: str | None) -> stripe.RequestOptions:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


def _decimal_text(value: int | Decimal) -> str:
    return format(Decimal(value), "f")


def _price_matches(price: Any, product_id: str, meter_id: str, amount: Decimal) -> bool:
    recurring = price.recurring
    return (
        price.active
        and price.product == product_id
        and recurring is not None
        and recurring.meter == meter_id
        and Decimal(str(price.unit_amount_decimal)) == amount
    )


def _subscription(sub: dict[str, Any]) -> Subscription:
    items = tuple(
        SubscriptionItem(
            id=item["id"],
            price_id=item["price"]["id"],
            current_period_start=item.get("current_period_start"),
            current_period_end=item.get("current_period_end"),
            lookup_key=item["price"].get("lookup_key"),
        )
        for item in sub["items"]["data"]
    )
    return Subscription(
        id=sub["id"], status=sub["status"], customer_id=sub["customer"], items=items
    )


def _invoice_line(line: dict[str, Any]) -> InvoiceLine:
    price_details = (line.get("pricing") or {}).get("price_details") or {}
    parent = (line.get("parent") or {}).get("subscription_item_details") or {}
    return InvoiceLine(
        description=line.get("description") or "",
        amount_cents=int(line["amount"]),
        quantity=Decimal(str(line.get("quantity") or 0)),
        price_id=price_details.get("price"),
        proration=bool(parent.get("proration")),
    )


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as exc:
        raise _gateway_error(exc) from exc


def _gateway_error(exc: stripe.StripeError) -> StripeGatewayError:
    status = exc.http_status
    headers = {key.lower(): value for key, value in (exc.headers or {}).items()}
    error_body = (exc.json_body or {}).get("error") if isinstance(exc.json_body, dict) else None
    error_body = error_body if isinstance(error_body, dict) else {}
    code = exc.code or error_body.get("code") or error_body.get("type")
    message = str(exc.user_message or exc)
    if isinstance(exc, stripe.APIConnectionError):
        return StripeRetryableError(message, code=code or "connection_error", http_status=None)
    should_retry = headers.get("stripe-should-retry")
    if should_retry == "true":
        retryable = True
    elif should_retry == "false":
        retryable = False
    else:
        retryable = status is None or status in (409, 429) or status >= 500
    error_class = StripeRetryableError if retryable else StripePermanentError
    return error_class(message, code=code, http_status=status)
