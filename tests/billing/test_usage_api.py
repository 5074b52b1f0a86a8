"""The tenant-facing billing API: usage, invoice estimate, Checkout and portal links."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from billing.sync import sync_pending
from core.catalog import TokenUsage
from tests.billing.conftest import record_usage
from tests.plugins.actors import Actor, assert_error, make_actor, make_plan
from tests.plugins.stripe import StripeEmulator

pytestmark = pytest.mark.django_db
USAGE = "/api/v1/usage"
INVOICE = "/api/v1/billing/invoice"
CHECKOUT = "/api/v1/billing/checkout"
PORTAL = "/api/v1/billing/portal"
TODAY = timezone.now().astimezone(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
YESTERDAY = TODAY - dt.timedelta(days=1)
RANGE = {"from": YESTERDAY.date().isoformat(), "to": TODAY.date().isoformat()}


@pytest.fixture
def ledger(owner: Actor, outsider: Actor) -> None:
    record_usage(owner.tenant, n=2, occurred_at=YESTERDAY)
    record_usage(owner.tenant, tier="flash", mode="batch", occurred_at=TODAY)
    record_usage(outsider.tenant, tier="pro", n=5, occurred_at=TODAY)


def test_usage_grouped_by_day_counts_images_tokens_and_money(owner: Actor, ledger) -> None:
    response = owner.api().get(USAGE, {**RANGE, "group_by": "day"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert [(g["key"], g["images"]) for g in body["groups"]] == [
        (YESTERDAY.date().isoformat(), 2),
        (TODAY.date().isoformat(), 1),
    ]
    total = body["total"]
    assert total["images"] == 3
    assert total["tokens"] == {
        "input_text": 36,
        "input_image": 0,
        "output_text": 0,
        "output_image": 3360,
        "thoughts": 0,
    }
    # 2 × (0.0336 + 12 × $0.25/1M) lite + (0.0336 + 12 × $0.25/1M) flash at half price
    assert total["provider_cost"] == "0.100809000"
    assert total["billed"] == "0.130809000"
    assert body["quota"]["images"]["quota"] == 1000


def test_usage_grouped_by_model_and_by_mode(owner: Actor, ledger) -> None:
    by_model = owner.api().get(USAGE, {**RANGE, "group_by": "model"}).json()
    by_mode = owner.api().get(USAGE, {**RANGE, "group_by": "mode"}).json()

    assert {g["key"]: g["images"] for g in by_model["groups"]} == {
        "gemini-3.1-flash-lite-image": 2,
        "gemini-3.1-flash-image": 1,
    }
    assert {g["key"]: g["billed"] for g in by_mode["groups"]} == {
        "batch": "0.043603000",
        "standard": "0.087206000",
    }


def test_usage_shows_only_the_callers_tenant(outsider: Actor, ledger) -> None:
    body = outsider.api().get(USAGE, {**RANGE, "group_by": "model"}).json()

    assert [(g["key"], g["images"]) for g in body["groups"]] == [("gemini-3-pro-image", 5)]


def test_usage_refuses_bad_parameters(owner: Actor) -> None:
    assert_error(owner.api().get(USAGE, {"group_by": "week"}), 400, "validation_error")
    error = assert_error(
        owner.api().get(USAGE, {"from": "2026-02-02", "to": "2026-02-01"}), 400, "validation_error"
    )
    assert "from" in error["fields"]
    assert_error(owner.api().get(USAGE, {"from": "yesterday"}), 400, "validation_error")


def test_billing_endpoints_need_an_api_key() -> None:
    for method, path in (("get", USAGE), ("get", INVOICE), ("post", CHECKOUT), ("post", PORTAL)):
        assert_error(getattr(APIClient(), method)(path), 401, "not_authenticated")


def test_only_a_billing_key_reads_usage_and_opens_checkout(
    owner: Actor, stripe_app: StripeEmulator
) -> None:
    reader = make_actor(owner.tenant, "reader@acme.test", "member", scopes=["read"])
    billing = make_actor(owner.tenant, "billing@acme.test", "member", scopes=["billing"])

    assert billing.api().get(USAGE).status_code == 200
    assert_error(reader.api().get(USAGE), 403, "insufficient_scope")
    assert_error(
        reader.api().post(CHECKOUT, {"plan": "test-plan"}, format="json"),
        403,
        "insufficient_scope",
    )


def test_invoice_estimate_sums_exactly_then_rounds_each_line_and_matches_stripe(
    owner: Actor, outsider: Actor, subscribed: Callable
) -> None:
    subscribed(owner.tenant)
    record_usage(owner.tenant, n=3)  # 3 × (12 input + 1,120 image tokens)
    record_usage(owner.tenant, tier="pro", usage=TokenUsage(output_image_tokens=2000))
    record_usage(outsider.tenant, tier="pro", n=4)
    sync_pending()

    body = owner.api().get(INVOICE).json()

    fields = ("line", "kind", "quantity", "amount_cents")
    lines = [tuple(line[f] for f in fields) for line in body["lines"]]
    assert lines == [
        ("lite_standard", "image_output", 3360, 10),  # × 0.003 ¢ = 10.08 ¢
        ("lite_standard", "input", 36, 0),  # × 0.000025 ¢ = 0.0009 ¢
        ("pro_standard", "image_output", 2000, 24),  # × 0.012 ¢
        ("markup", "markup", 4, 4),  # × 1 ¢
    ]
    assert body["lines"][0]["description"] == (
        "Nano Banana 2 Lite: image output, 3,360 tokens × $0.00003 = $0.10"
    )
    assert body["total_cents"] == 38
    assert body["stripe"] == {"reachable": True, "total_cents": 38}
    assert body["not_yet_reported"] == 0


def test_invoice_estimate_without_stripe_still_shows_the_ledger(
    owner: Actor, stripe_app: StripeEmulator, settings: Settings
) -> None:
    owner.tenant.stripe_customer_id, owner.tenant.stripe_subscription_id = "cus_x", "sub_x"
    owner.tenant.save()
    record_usage(owner.tenant, n=2)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    settings.STRIPE_MAX_NETWORK_RETRIES = 0

    body = owner.api().get(INVOICE).json()

    assert (body["total_cents"], body["not_yet_reported"]) == (9, 2)
    assert body["stripe"] == {"reachable": False, "total_cents": None}


def test_checkout_returns_a_stripe_checkout_url_for_the_chosen_plan(
    owner: Actor, stripe_app: StripeEmulator
) -> None:
    make_plan(slug="pro", name="Pro")

    response = owner.api().post(CHECKOUT, {"plan": "pro"}, format="json")

    assert response.status_code == 200, response.content
    session = stripe_app.state()["checkout_sessions"][-1]
    assert response.json()["url"] == session["url"]
    owner.tenant.refresh_from_db()
    assert session["customer"] == owner.tenant.stripe_customer_id
    assert session["client_reference_id"] == f"bunch:{owner.tenant.pk}:pro"
    assert session["success_url"].startswith("http://testserver/")
    assert session["success_url"].endswith("session_id={CHECKOUT_SESSION_ID}")


def test_checkout_for_an_unknown_plan_is_a_field_error(
    owner: Actor, stripe_app: StripeEmulator
) -> None:
    error = assert_error(
        owner.api().post(CHECKOUT, {"plan": "platinum"}, format="json"), 400, "validation_error"
    )
    assert "plan" in error["fields"]


def test_checkout_when_stripe_is_down_is_a_503(
    owner: Actor, stripe_app: StripeEmulator, settings: Settings
) -> None:
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0

    response = owner.api().post(CHECKOUT, {"plan": "test-plan"}, format="json")

    assert_error(response, 503, "billing_unavailable")


def test_portal_opens_for_the_callers_own_customer(
    owner: Actor, outsider: Actor, stripe_app: StripeEmulator
) -> None:
    mine = owner.api().post(PORTAL)
    theirs = outsider.api().post(PORTAL)

    assert mine.status_code == theirs.status_code == 200
    owner.tenant.refresh_from_db()
    outsider.tenant.refresh_from_db()
    sessions = {s["url"]: s["customer"] for s in stripe_app.state()["portal_sessions"]}
    assert sessions[mine.json()["url"]] == owner.tenant.stripe_customer_id
    assert sessions[theirs.json()["url"]] == outsider.tenant.stripe_customer_id
    assert owner.tenant.stripe_customer_id != outsider.tenant.stripe_customer_id


def test_billing_endpoints_are_in_the_openapi_schema(owner: Actor) -> None:
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()

    for path in (USAGE, INVOICE, CHECKOUT, PORTAL):
        assert path in schema["paths"]
    parameters = {p["name"] for p in schema["paths"][USAGE]["get"]["parameters"]}
    assert {"from", "to", "group_by"} <= parameters


def test_money_in_usage_is_never_a_float(owner: Actor, ledger) -> None:
    body = owner.api().get(USAGE, RANGE).json()

    assert isinstance(body["total"]["billed"], str)
    assert Decimal(body["total"]["billed"]) > 0
