"""`billing.stripe_gateway` against the Stripe emulator over loopback (no database)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

import pytest

from billing.stripe_gateway import (
    MeterEventOutcome,
    StripeGateway,
    StripeGatewayError,
    StripePermanentError,
    StripeRetryableError,
    StripeSignatureError,
)


@dataclass(frozen=True)
class Line:
    event_name: str
    meter_id: str
    price_id: str
    customer_id: str


@pytest.fixture
def gateway(stripe_fake) -> StripeGateway:
    return StripeGateway(stripe_fake.api_key, api_base=stripe_fake.api_base)


@pytest.fixture
def line(gateway: StripeGateway) -> Line:
    """A subscribed customer on a fresh meter priced at 3.36 cents per image."""
    suffix = uuid.uuid4().hex[:10]
    event_name = f"image_lite_standard_{suffix}"
    meter_id = gateway.ensure_meter(event_name=event_name, display_name="Lite images")
    product_id = gateway.ensure_product(name="Bunch images", lookup=f"bunch_images_{suffix}")
    price_id = gateway.ensure_metered_price(
        product_id=product_id,
        meter_id=meter_id,
        unit_amount_decimal=Decimal("3.36"),
        lookup_key=f"lite_standard_{suffix}",
    )
    customer_id = gateway.create_customer(
        name="Acme", email="ops@acme.test", metadata={"tenant": suffix}
    )
    gateway.create_subscription(customer_id=customer_id, price_ids=[price_id])
    return Line(event_name, meter_id, price_id, customer_id)


def _window() -> tuple[int, int]:
    now = int(time.time()) // 60 * 60
    return now - 3600, now + 120


def _send(
    gateway: StripeGateway,
    line: Line,
    n: int | str,
    value: int | Decimal = 1,
    attempt: int = 0,
    timestamp: int | None = None,
) -> MeterEventOutcome:
    """Report usage for ``line``; an int ``n`` names the line's n-th event."""
    return gateway.send_meter_event(
        event_name=line.event_name,
        customer_id=line.customer_id,
        identifier=f"{line.event_name}-{n}" if isinstance(n, int) else n,
        value=value,
        timestamp=timestamp or int(time.time()),
        attempt=attempt,
    )


def _send_until_delivered(
    gateway: StripeGateway, line: Line, identifier: str, *, vary_key: bool, occurred_at: int
) -> MeterEventOutcome:
    """What a sync worker does: retry retryable failures, give up on permanent ones.

    ``occurred_at`` is fixed, as a ledger row's is: under the same Idempotency-Key a changed
    parameter would be an idempotency_error."""
    for attempt in range(100):
        try:
            key_attempt = attempt if vary_key else 0
            return _send(gateway, line, identifier, attempt=key_attempt, timestamp=occurred_at)
        except StripeRetryableError:
            continue
    raise AssertionError(f"{identifier} never got through")


def _stored(stripe_fake, line: Line) -> list[dict]:
    events = stripe_fake.state()["meter_events"]
    return [e for e in events if e["event_name"] == line.event_name and not e["cancelled"]]


# -- setup ----------------------------------------------------------------------------------


def test_ensure_meter_product_and_price_are_idempotent(gateway: StripeGateway):
    suffix = uuid.uuid4().hex[:10]
    meter_id = gateway.ensure_meter(event_name=f"img_{suffix}", display_name="Images")
    assert gateway.ensure_meter(event_name=f"img_{suffix}", display_name="Images") == meter_id
    product_id = gateway.ensure_product(name="Images", lookup=f"prod_{suffix}")
    assert gateway.ensure_product(name="Images", lookup=f"prod_{suffix}") == product_id
    price = {
        "product_id": product_id,
        "meter_id": meter_id,
        "unit_amount_decimal": Decimal("1.68"),
        "lookup_key": f"lk_{suffix}",
    }
    price_id = gateway.ensure_metered_price(**price)
    assert gateway.ensure_metered_price(**price) == price_id


def test_ensure_metered_price_with_new_amount_moves_the_lookup_key(gateway: StripeGateway, line):
    suffix = uuid.uuid4().hex[:10]
    product_id = gateway.ensure_product(name="Images", lookup=f"prod_{suffix}")
    common = {"product_id": product_id, "meter_id": line.meter_id, "lookup_key": f"lk_{suffix}"}
    old = gateway.ensure_metered_price(**common, unit_amount_decimal=Decimal("3.36"))
    new = gateway.ensure_metered_price(**common, unit_amount_decimal=Decimal("4.00"))
    assert new != old
    assert gateway.ensure_metered_price(**common, unit_amount_decimal=Decimal("4.00")) == new


def test_create_subscription_returns_a_plain_subscription(gateway: StripeGateway, line: Line):
    sub = gateway.create_subscription(customer_id=line.customer_id, price_ids=[line.price_id])
    assert sub.status == "active"
    assert [item.price_id for item in sub.items] == [line.price_id]
    assert gateway.retrieve_subscription(subscription_id=sub.id) == sub


# -- meter events ---------------------------------------------------------------------------


def test_meter_event_is_sent_then_summed(gateway: StripeGateway, line: Line):
    for n in range(3):
        assert _send(gateway, line, n, Decimal("1.5")) is MeterEventOutcome.SENT
    start, end = _window()
    total = gateway.meter_event_summary_total(
        meter_id=line.meter_id, customer_id=line.customer_id, start=start, end=end
    )
    assert total == Decimal("4.5")


def test_duplicate_identifier_under_a_new_key_is_already_exists(gateway: StripeGateway, line):
    # One timestamp for all three: a replay must repeat the first request's parameters.
    at = int(time.time())
    identifier = f"{line.event_name}-dup"
    assert _send(gateway, line, identifier, timestamp=at) is MeterEventOutcome.SENT
    # the same key again: a replay of the first answer
    assert _send(gateway, line, identifier, timestamp=at) is MeterEventOutcome.SENT
    assert (
        _send(gateway, line, identifier, attempt=1, timestamp=at)
        is MeterEventOutcome.ALREADY_EXISTS
    )


@pytest.mark.parametrize("vary_key", [False, True], ids=["same_key", "key_per_attempt"])
def test_exactly_once_under_drop_after_commit_500_and_429(
    stripe_fake, gateway_without_sdk_retries: StripeGateway, line: Line, vary_key: bool
):
    count, occurred_at = 40, int(time.time())
    stripe_fake.set_faults(
        rate_429=0.2,
        rate_500=0.2,
        drop_after_commit_rate=0.5,
        path_prefix="/v1/billing/meter_events",
        seed=5,
    )
    outcomes = [
        _send_until_delivered(
            gateway_without_sdk_retries,
            line,
            f"{line.event_name}-{n}",
            vary_key=vary_key,
            occurred_at=occurred_at,
        )
        for n in range(count)
    ]
    stripe_fake.reset_faults()

    start, end = _window()
    total = gateway_without_sdk_retries.meter_event_summary_total(
        meter_id=line.meter_id, customer_id=line.customer_id, start=start, end=end
    )
    assert total == count
    assert len(_stored(stripe_fake, line)) == count
    if vary_key:  # a committed-but-unanswered attempt comes back as "already exists"
        assert MeterEventOutcome.ALREADY_EXISTS in outcomes


def test_two_workers_sending_the_same_events_deliver_each_once(
    stripe_fake, gateway_without_sdk_retries: StripeGateway, line: Line
):
    identifiers = [f"{line.event_name}-{n}" for n in range(20)]
    occurred_at = int(time.time())
    stripe_fake.set_faults(
        rate_500=0.3, drop_after_commit_rate=0.3, path_prefix="/v1/billing/meter_events", seed=9
    )

    def work(order: list[str]) -> list[MeterEventOutcome]:
        return [
            _send_until_delivered(
                gateway_without_sdk_retries, line, i, vary_key=True, occurred_at=occurred_at
            )
            for i in order
        ]

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(work, [identifiers, identifiers[::-1]]))
    stripe_fake.reset_faults()

    assert len(_stored(stripe_fake, line)) == len(identifiers)
    assert all(len(outcomes) == len(identifiers) for outcomes in runs)


def test_sdk_retries_a_dropped_answer_with_the_same_key(stripe_fake, gateway, line: Line):
    for n in range(3):
        stripe_fake.set_faults(next_n={"kind": "drop_after_commit", "n": 1})
        assert _send(gateway, line, n) is MeterEventOutcome.SENT
    assert len(_stored(stripe_fake, line)) == 3


@pytest.fixture
def gateway_without_sdk_retries(stripe_fake) -> StripeGateway:
    """Leaves every retry to the caller, so fault tests need no SDK backoff sleeps."""
    return StripeGateway(stripe_fake.api_key, api_base=stripe_fake.api_base, max_network_retries=0)


def test_cancelled_meter_event_leaves_the_total(gateway: StripeGateway, line: Line):
    for n in range(2):
        _send(gateway, line, n)
    gateway.cancel_meter_event(event_name=line.event_name, identifier=f"{line.event_name}-1")
    start, end = _window()
    total = gateway.meter_event_summary_total(
        meter_id=line.meter_id, customer_id=line.customer_id, start=start, end=end
    )
    assert total == 1


def test_summary_total_needs_minute_aligned_bounds(gateway: StripeGateway, line: Line):
    with pytest.raises(ValueError):
        gateway.meter_event_summary_total(
            meter_id=line.meter_id, customer_id=line.customer_id, start=61, end=180
        )


# -- typed errors ---------------------------------------------------------------------------


def _expect(
    error_class: type[StripeGatewayError], call: Callable[[], object]
) -> StripeGatewayError:
    with pytest.raises(error_class) as caught:
        call()
    return caught.value


def test_400_is_permanent(gateway: StripeGateway, line: Line):
    error = _expect(
        StripePermanentError,
        lambda: gateway.send_meter_event(
            event_name="no_such_meter_event",
            customer_id=line.customer_id,
            identifier=uuid.uuid4().hex,
            value=1,
            timestamp=int(time.time()),
        ),
    )
    assert (error.http_status, error.retryable) == (400, False)
    assert error.code == "parameter_invalid"


def test_401_is_permanent(stripe_fake):
    gateway = StripeGateway("sk_test_not_this_one", api_base=stripe_fake.api_base)
    error = _expect(
        StripePermanentError, lambda: gateway.create_customer(name="x", email="x@x", metadata={})
    )
    assert error.http_status == 401


def test_429_is_retryable(stripe_fake, gateway: StripeGateway):
    stripe_fake.set_faults(next_n={"kind": "429", "n": 1})
    error = _expect(
        StripeRetryableError, lambda: gateway.create_customer(name="x", email="x@x", metadata={})
    )
    assert (error.http_status, error.code, error.retryable) == (429, "rate_limit", True)


def test_500_is_retryable_once_sdk_retries_run_out(stripe_fake, gateway_without_sdk_retries):
    stripe_fake.set_faults(next_n={"kind": "500", "n": 1})
    error = _expect(
        StripeRetryableError,
        lambda: gateway_without_sdk_retries.create_customer(name="x", email="x@x", metadata={}),
    )
    assert error.http_status == 500


def test_503_with_should_retry_is_retried_by_the_sdk(stripe_fake, gateway: StripeGateway):
    stripe_fake.set_faults(next_n={"kind": "503_retry", "n": 1})
    assert gateway.create_customer(name="x", email="x@x", metadata={}).startswith("cus_")


def test_connection_refused_is_retryable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    gateway = StripeGateway("sk_test_x", api_base=f"http://127.0.0.1:{port}", max_network_retries=0)
    error = _expect(
        StripeRetryableError, lambda: gateway.create_customer(name="x", email="x@x", metadata={})
    )
    assert (error.http_status, error.code) == (None, "connection_error")


def test_timeout_is_retryable(stripe_fake):
    gateway = StripeGateway(
        stripe_fake.api_key, api_base=stripe_fake.api_base, max_network_retries=0, timeout_s=0.2
    )
    stripe_fake.set_faults(latency_s=1.0, path_prefix="/v1/customers")
    error = _expect(
        StripeRetryableError, lambda: gateway.create_customer(name="x", email="x@x", metadata={})
    )
    assert error.code == "connection_error"


# -- hosted pages, invoices, webhooks -------------------------------------------------------


def test_invoice_preview_bills_usage_at_the_metered_price(gateway: StripeGateway, line: Line):
    for n in range(10):
        _send(gateway, line, n)
    preview = gateway.invoice_preview(customer_id=line.customer_id)
    assert preview.total_cents == 34  # 10 × 3.36¢ = 33.6¢
    assert [(x.quantity, x.amount_cents, x.price_id) for x in preview.lines] == [
        (Decimal(10), 34, line.price_id)
    ]


def test_checkout_and_portal_sessions_return_urls(gateway: StripeGateway, line: Line, stripe_fake):
    checkout = gateway.create_checkout_session(
        customer_id=line.customer_id,
        price_ids=[line.price_id],
        success_url="http://app.test/ok",
        cancel_url="http://app.test/no",
    )
    portal = gateway.create_portal_session(
        customer_id=line.customer_id, return_url="http://app.test/account"
    )
    assert checkout.startswith(f"{stripe_fake.api_base}/_emulator/checkout/cs_test_")
    assert portal.startswith(f"{stripe_fake.api_base}/_emulator/portal/bps_")


def test_construct_event_verifies_the_signature(gateway: StripeGateway, line, stripe_webhooks):
    gateway.create_subscription(customer_id=line.customer_id, price_ids=[line.price_id])
    delivery = stripe_webhooks.wait_for("customer.subscription.created")

    event = gateway.construct_event(
        payload=delivery.body, signature=delivery.signature, secret=stripe_webhooks.secret
    )
    assert event["type"] == "customer.subscription.created"
    assert event["data"]["object"]["customer"] == line.customer_id

    tampered = delivery.body.replace(b"active", b"past_due")
    for payload, secret in [(tampered, stripe_webhooks.secret), (delivery.body, "whsec_other")]:
        with pytest.raises(StripeSignatureError):
            gateway.construct_event(payload=payload, signature=delivery.signature, secret=secret)
    stale = "t=1000," + delivery.signature.split(",", 1)[1]
    with pytest.raises(StripeSignatureError):
        gateway.construct_event(
            payload=delivery.body, signature=stale, secret=stripe_webhooks.secret
        )


def test_meter_error_report_names_the_lost_identifier(
    gateway: StripeGateway, line, stripe_webhooks
):
    identifier = f"{line.event_name}-lost"
    outcome = gateway.send_meter_event(
        event_name=line.event_name,
        customer_id="cus_deleted_meanwhile",
        identifier=identifier,
        value=1,
        timestamp=int(time.time()),
    )
    assert outcome is MeterEventOutcome.SENT  # Stripe accepts first, reports later

    delivery = stripe_webhooks.wait_for("v1.billing.meter.error_report_triggered")
    notification = gateway.construct_event(
        payload=delivery.body, signature=delivery.signature, secret=stripe_webhooks.secret
    )
    report = gateway.meter_error_report(event_id=notification["id"])
    assert report.identifiers == (identifier,)
    assert report.codes == ("meter_event_customer_not_found",)
    assert report.meter_id == line.meter_id
