"""The Stripe emulator speaks Billing Meters as stripe-python 16.1.0 expects (no Django)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import stripe

DAY = 24 * 3600


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def meter(stripe_client: stripe.StripeClient) -> Any:
    return stripe_client.v1.billing.meters.create(
        {
            "display_name": "Generated images",
            "event_name": _unique("image_generated"),
            "default_aggregation": {"formula": "sum"},
        }
    )


@pytest.fixture
def customer(stripe_client: stripe.StripeClient) -> Any:
    return stripe_client.v1.customers.create({"name": "Acme", "email": "ops@acme.test"})


def _event(meter: Any, customer: Any, identifier: str, value: str = "1", **extra: Any) -> dict:
    return {
        "event_name": meter.event_name,
        "payload": {"stripe_customer_id": customer.id, "value": value},
        "identifier": identifier,
        "timestamp": int(time.time()),
        **extra,
    }


def _total(client: stripe.StripeClient, meter: Any, customer: Any, start: int, end: int) -> Any:
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": customer.id, "start_time": start, "end_time": end}
    )
    return sum(s.aggregated_value for s in summaries.data)


def _around_now() -> tuple[int, int]:
    now = int(time.time()) // 60 * 60
    return now - 3600, now + 120


def test_meter_is_created_listed_and_retrieved_with_stripe_defaults(stripe_client, meter):
    assert meter.id.startswith("mtr_")
    assert meter.status == "active"
    assert meter.customer_mapping.event_payload_key == "stripe_customer_id"
    assert meter.value_settings.event_payload_key == "value"
    listed = stripe_client.v1.billing.meters.list({"limit": 100}).auto_paging_iter()
    assert meter.id in [m.id for m in listed]
    assert stripe_client.v1.billing.meters.retrieve(meter.id).event_name == meter.event_name


def test_meter_event_name_must_be_unique(stripe_client, meter):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.billing.meters.create(
            {
                "display_name": "Again",
                "event_name": meter.event_name,
                "default_aggregation": {"formula": "sum"},
            }
        )
    assert caught.value.param == "event_name"


def test_metered_price_without_meter_is_refused(stripe_client):
    product = stripe_client.v1.products.create({"name": "Images"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.prices.create(
            {
                "product": product.id,
                "currency": "usd",
                "unit_amount_decimal": "4.5",
                "recurring": {"interval": "month", "usage_type": "metered"},
            }
        )
    assert caught.value.http_status == 400
    assert caught.value.param == "recurring[meter]"


def test_metered_price_is_found_by_lookup_key_and_key_is_unique(stripe_client, meter):
    product = stripe_client.v1.products.create({"name": "Images"})
    lookup_key = _unique("images")
    params = {
        "product": product.id,
        "currency": "usd",
        "unit_amount_decimal": "3.36",
        "lookup_key": lookup_key,
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
    }
    price = stripe_client.v1.prices.create(params)
    found = stripe_client.v1.prices.list({"lookup_keys": [lookup_key]}).data
    assert [p.id for p in found] == [price.id]
    assert str(found[0].unit_amount_decimal) == "3.36"
    assert found[0].recurring.meter == meter.id
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.prices.create(params)


def test_meter_event_is_accepted_in_stripes_shape(stripe_client, meter, customer):
    event = stripe_client.v1.billing.meter_events.create(_event(meter, customer, _unique("img")))
    assert event.object == "billing.meter_event"
    assert event.payload.to_dict() == {"stripe_customer_id": customer.id, "value": "1"}


def test_duplicate_identifier_under_new_key_is_refused_and_not_retried(
    stripe_client, meter, customer
):
    identifier = _unique("img")
    stripe_client.v1.billing.meter_events.create(
        _event(meter, customer, identifier), {"idempotency_key": "first-" + identifier}
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.billing.meter_events.create(
            _event(meter, customer, identifier), {"idempotency_key": "second-" + identifier}
        )
    error = caught.value
    assert error.http_status == 400
    assert error.user_message == f"An event already exists with identifier {identifier}."
    assert error.headers["Stripe-Should-Retry"] == "false"
    assert error.json_body["error"]["type"] == "invalid_request_error"


def test_same_idempotency_key_replays_the_first_response(stripe_client, meter, customer):
    params = _event(meter, customer, _unique("img"))
    first = stripe_client.v1.billing.meter_events.create(
        params, {"idempotency_key": "k-" + params["identifier"]}
    )
    again = stripe_client.v1.billing.meter_events.create(
        params, {"idempotency_key": "k-" + params["identifier"]}
    )
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert again.last_response.body == first.last_response.body
    assert again.last_response.code == first.last_response.code


def test_same_idempotency_key_with_other_params_is_idempotency_error(
    stripe_client, meter, customer
):
    params = _event(meter, customer, _unique("img"))
    key = "k-" + params["identifier"]
    stripe_client.v1.billing.meter_events.create(params, {"idempotency_key": key})
    with pytest.raises(stripe.IdempotencyError) as caught:
        stripe_client.v1.billing.meter_events.create(
            {**params, "payload": {**params["payload"], "value": "2"}}, {"idempotency_key": key}
        )
    assert caught.value.http_status == 400


@pytest.mark.parametrize(
    ("offset_s", "code"),
    [(-35 * DAY - 60, "timestamp_too_far_in_past"), (5 * 60 + 60, "timestamp_in_future")],
    ids=["older_than_35_days", "more_than_5_minutes_ahead"],
)
def test_meter_event_timestamp_outside_window_is_refused(
    stripe_client, meter, customer, offset_s, code
):
    params = _event(meter, customer, _unique("img"), timestamp=int(time.time()) + offset_s)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.billing.meter_events.create(params)
    assert (caught.value.code, caught.value.param) == (code, "timestamp")


def test_meter_event_timestamp_34_days_old_is_accepted(stripe_client, meter, customer):
    params = _event(meter, customer, _unique("img"), timestamp=int(time.time()) - 34 * DAY)
    assert stripe_client.v1.billing.meter_events.create(params).timestamp == params["timestamp"]


def test_meter_event_for_unknown_event_name_is_refused(stripe_client, customer):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.billing.meter_events.create(
            {
                "event_name": _unique("nobody_meters_this"),
                "payload": {"stripe_customer_id": customer.id, "value": "1"},
            }
        )
    assert caught.value.param == "event_name"


@pytest.mark.parametrize("dropped", ["stripe_customer_id", "value"])
def test_meter_event_missing_payload_key_is_refused(stripe_client, meter, customer, dropped):
    params = _event(meter, customer, _unique("img"))
    del params["payload"][dropped]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe_client.v1.billing.meter_events.create(params)
    assert caught.value.param == f"payload[{dropped}]"


def test_unknown_customer_is_accepted_then_reported_and_not_counted(
    stripe_fake, stripe_client, meter, customer
):
    identifier = _unique("img")
    params = _event(meter, customer, identifier)
    params["payload"]["stripe_customer_id"] = "cus_doesnotexist"
    stripe_client.v1.billing.meter_events.create(params, {"idempotency_key": "k-" + identifier})

    reports = [
        r for r in stripe_fake.state()["meter_error_reports"] if r["identifier"] == identifier
    ]
    assert [r["code"] for r in reports] == ["meter_event_customer_not_found"]
    detail = stripe_client.v2.core.events.retrieve(reports[0]["id"])
    assert detail.type == "v1.billing.meter.error_report_triggered"
    sample = detail.data.reason.error_types[0].sample_errors[0]
    assert sample.request.identifier == "k-" + identifier


def test_cancelled_event_leaves_the_summary(stripe_client, meter, customer):
    keep, cancel = _unique("img"), _unique("img")
    for identifier in (keep, cancel):
        stripe_client.v1.billing.meter_events.create(_event(meter, customer, identifier, "5"))
    adjustment = stripe_client.v1.billing.meter_event_adjustments.create(
        {"event_name": meter.event_name, "type": "cancel", "cancel": {"identifier": cancel}}
    )
    assert adjustment.object == "billing.meter_event_adjustment"
    assert _total(stripe_client, meter, customer, *_around_now()) == 5


def test_summaries_are_start_inclusive_end_exclusive_and_group_by_hour(
    stripe_client, meter, customer
):
    h0 = (int(time.time()) // 3600 - 3) * 3600
    for offset, value in [(0, "1"), (3599, "2.5"), (3600, "4"), (7200, "8")]:
        stripe_client.v1.billing.meter_events.create(
            _event(meter, customer, _unique("img"), value, timestamp=h0 + offset)
        )
    assert _total(stripe_client, meter, customer, h0, h0 + 3600) == 3.5
    assert _total(stripe_client, meter, customer, h0 + 60, h0 + 7200) == 6.5
    hourly = stripe_client.v1.billing.meters.event_summaries.list(
        meter.id,
        {
            "customer": customer.id,
            "start_time": h0,
            "end_time": h0 + 3 * 3600,
            "value_grouping_window": "hour",
        },
    )
    by_start = {s.start_time: s.aggregated_value for s in hourly.auto_paging_iter()}
    assert by_start == {h0: 3.5, h0 + 3600: 4, h0 + 7200: 8}


def test_summary_times_must_be_minute_aligned(stripe_client, meter, customer):
    start, end = _around_now()
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _total(stripe_client, meter, customer, start + 1, end)
    assert caught.value.param == "start_time"


def test_state_survives_a_restart(stripe_fake, stripe_client, meter, customer):
    identifier = _unique("img")
    params = _event(meter, customer, identifier, "7")
    stripe_client.v1.billing.meter_events.create(params, {"idempotency_key": "k-" + identifier})

    stripe_fake.restart()

    assert _total(stripe_client, meter, customer, *_around_now()) == 7
    replay = stripe_client.v1.billing.meter_events.create(
        params, {"idempotency_key": "k-" + identifier}
    )
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.billing.meter_events.create(params)


def test_dropped_answer_after_commit_is_replayed_on_the_sdks_retry(
    stripe_fake, stripe_client, meter, customer
):
    stripe_fake.set_faults(next_n={"kind": "drop_after_commit", "n": 1})
    identifier = _unique("img")
    event = stripe_client.v1.billing.meter_events.create(_event(meter, customer, identifier))
    assert event.last_response.headers["Idempotent-Replayed"] == "true"
    stored = [e for e in stripe_fake.state()["meter_events"] if e["identifier"] == identifier]
    assert len(stored) == 1


def test_sdk_retries_500_but_not_plain_429(stripe_fake, stripe_client, customer):
    stripe_fake.set_faults(next_n={"kind": "500", "n": 1})
    assert stripe_client.v1.customers.retrieve(customer.id).id == customer.id
    stripe_fake.set_faults(next_n={"kind": "429", "n": 1})
    with pytest.raises(stripe.RateLimitError):
        stripe_client.v1.customers.retrieve(customer.id)


def test_fault_scoped_to_a_path_prefix_spares_other_paths(stripe_fake, stripe_client, customer):
    stripe_fake.set_faults(rate_429=1.0, path_prefix="/v1/billing/")
    assert stripe_client.v1.customers.retrieve(customer.id).id == customer.id
    with pytest.raises(stripe.RateLimitError):
        stripe_client.v1.billing.meters.list()


def test_wrong_api_key_is_refused_with_401(stripe_fake):
    client = stripe.StripeClient("sk_test_wrong", base_addresses={"api": stripe_fake.api_base})
    with pytest.raises(stripe.AuthenticationError):
        client.v1.customers.list()


def test_v2_meter_event_counts_like_v1(stripe_client, meter, customer):
    identifier = _unique("img")
    event = stripe_client.v2.billing.meter_events.create(
        {
            "event_name": meter.event_name,
            "payload": {"stripe_customer_id": customer.id, "value": "2"},
            "identifier": identifier,
        }
    )
    assert (event.object, event.identifier) == ("v2.billing.meter_event", identifier)
    assert _total(stripe_client, meter, customer, *_around_now()) == 2
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v2.billing.meter_events.create(
            {
                "event_name": meter.event_name,
                "payload": {"stripe_customer_id": customer.id, "value": "2"},
                "identifier": identifier,
            }
        )
