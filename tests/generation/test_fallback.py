"""Fallback to another model when the requested one is throttled: opted in, under the
price cap, reserved before it switches, disclosed on the job and its images, billed at the
served model's price. Against the Gemini emulator, which throttles one model only."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from billing.models import UsageEvent
from billing.pricing import cost_of, price_for
from core.catalog import TokenUsage
from generation.fallback import DEADLINE, PRIMARY_THROTTLED, reason_for
from generation.models import Image, Job
from tenants.fallback import FallbackPolicy
from tenants.models import QuotaPeriod
from tests.plugins.actors import Actor, assert_error
from tests.plugins.gemini import GeminiEmulator
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_create

GENERATIONS = "/api/v1/generations"
SETTINGS = "/api/v1/settings/fallback"
LITE = "gemini-3.1-flash-lite-image"
FLASH = "gemini-3.1-flash-image"
# Flash's billed price for one 1K image is about $0.0672 + $0.01 markup.
UNDER_FLASH = "0.05"
ABOVE_FLASH = "0.10"
MICRO = Decimal("0.000001")


def _policy(actor: Actor, **policy: Any) -> dict[str, Any]:
    body = {"models": ["flash"], "max_price_per_image": ABOVE_FLASH, "after_s": 0, **policy}
    response = actor.api().put(SETTINGS, body, format="json")
    assert response.status_code == 200, response.content
    return dict(response.json())


def _submit(actor: Actor, **body: Any) -> Any:
    response = actor.api().post(GENERATIONS, body, format="json", HTTP_PREFER="wait=30")
    assert response.status_code in (200, 202), response.content
    return response


def _calls(gemini: GeminiEmulator, model: str) -> int:
    return sum(gemini.stats()["by_model"].get(model, {}).values())


@pytest.fixture
def lite_throttled(inline_worker: GeminiEmulator, settings: Any) -> GeminiEmulator:
    """Every Lite call gets a 429 whose retry time (5 s) passes a 0 s deadline; Flash works."""
    settings.BUNCH_PROVIDER_MAX_DEFERRALS = 3
    inline_worker.set_faults(retry_delay_s=5)
    inline_worker.set_faults(model=LITE, rate_429=1.0)
    return inline_worker


def test_emulator_throttles_only_the_model_named(inline_worker: GeminiEmulator) -> None:
    faults = inline_worker.set_faults(model=LITE, rate_429=1.0)
    assert faults["models"][LITE]["rate_429"] == 1.0
    assert faults["rate_429"] == 0.0


def test_throttled_lite_job_is_served_by_flash_under_the_cap_billed_and_marked(
    lite_throttled: GeminiEmulator, owner: Actor
) -> None:
    _policy(owner)
    endpoint_create(tenant=owner.tenant, url="http://127.0.0.1:9/hook", event_types=[])
    response = _submit(owner, prompt="a red bicycle", count=2)
    job = response.json()

    assert job["status"] == "succeeded", job
    assert (job["requested_model"], job["served_model"]) == ("lite", "flash")
    assert job["fallback_reason"] == PRIMARY_THROTTLED
    assert response["Bunch-Served-Model"] == "flash"
    assert job["price"]["model"] == "flash"
    for image in job["images"]:
        assert (image["requested_model"], image["served_model"]) == ("lite", "flash")
        assert image["fallback_reason"] == PRIMARY_THROTTLED
    events = list(UsageEvent.objects.filter(job_id=job["id"]))
    assert {(e.tier, e.model) for e in events} == {("flash", FLASH)}
    flash_price = price_for(model=FLASH, mode="standard")
    for event in events:
        usage = TokenUsage(
            input_text_tokens=event.input_text_tokens,
            input_image_tokens=event.input_image_tokens,
            output_text_tokens=event.output_text_tokens,
            output_image_tokens=event.output_image_tokens,
            thoughts_tokens=event.thoughts_tokens,
        )
        at_flash = cost_of(
            usage=usage, price=flash_price, markup=owner.tenant.plan.markup_per_image
        )
        assert (event.provider_cost, event.billed) == (at_flash.provider_cost, at_flash.billed)
    # The reservation came back whole: nothing is left reserved, usage is Flash's.
    period = QuotaPeriod.objects.get(tenant=owner.tenant)
    assert (period.images_reserved, period.spend_reserved_nanos) == (0, 0)
    assert period.images_used == 2
    assert _calls(lite_throttled, FLASH) == 2
    # The webhook says so too: its payload is the job's body.
    [delivery] = WebhookDelivery.objects.filter(event_type="job.succeeded")
    sent = delivery.payload["data"]["job"]
    assert (sent["requested_model"], sent["served_model"]) == ("lite", "flash")
    assert sent["images"][0]["served_model"] == "flash"


def test_flash_above_the_cap_is_never_used_the_job_waits_on_lite(
    lite_throttled: GeminiEmulator, owner: Actor
) -> None:
    _policy(owner, max_price_per_image=UNDER_FLASH)
    job = _submit(owner, prompt="a blue kite").json()

    assert job["status"] == "failed" and job["error"]["code"] == "rate_limited"
    assert (job["requested_model"], job["served_model"]) == ("lite", "lite")
    assert _calls(lite_throttled, FLASH) == 0
    assert Job.objects.get(pk=job["id"]).deferrals == 3


def test_a_job_with_fallback_false_waits_on_its_model(
    inline_worker: GeminiEmulator, owner: Actor, settings: Any
) -> None:
    _policy(owner)
    inline_worker.set_faults(retry_delay_s=0.05)
    # Two 429s, then Lite answers: the job waited them out on Lite.
    job = _submit(owner, prompt="a green tent [[fail:429x2]]", fallback=False).json()

    assert job["status"] == "succeeded"
    assert (job["requested_model"], job["served_model"], job["fallback_reason"]) == (
        "lite",
        "lite",
        None,
    )
    assert job["fallback_price"] is None
    assert _calls(inline_worker, FLASH) == 0
    assert Image.objects.get(job_id=job["id"]).served_tier == "lite"


def test_a_tenant_without_a_policy_never_falls_back(
    lite_throttled: GeminiEmulator, owner: Actor
) -> None:
    job = _submit(owner, prompt="a yellow boat").json()

    assert job["status"] == "failed" and job["error"]["code"] == "rate_limited"
    assert job["served_model"] == "lite"
    assert _calls(lite_throttled, FLASH) == 0


def test_a_job_may_bring_its_own_policy(lite_throttled: GeminiEmulator, owner: Actor) -> None:
    job = _submit(
        owner,
        prompt="an orange lamp",
        fallback={"models": ["flash"], "max_price_per_image": ABOVE_FLASH, "after_s": 0},
    ).json()
    assert job["served_model"] == "flash" and job["status"] == "succeeded"


def test_when_the_quota_covers_lite_but_not_flash_the_job_stays_on_lite(
    lite_throttled: GeminiEmulator, owner: Actor
) -> None:
    _policy(owner)
    plan = owner.tenant.plan
    plan.monthly_spend_cap = Decimal("0.05")  # one Lite image (~$0.044), not one Flash
    plan.save()
    job = _submit(owner, prompt="a grey stone").json()

    assert job["served_model"] == "lite"
    assert _calls(lite_throttled, FLASH) == 0
    period = QuotaPeriod.objects.get(tenant=owner.tenant)
    assert period.spend_used_nanos + period.spend_reserved_nanos <= 50_000_000


def test_policy_settings_refuse_models_outside_the_plan_and_bad_values(owner: Actor) -> None:
    plan = owner.tenant.plan
    plan.allowed_tiers = ["lite", "flash"]
    plan.save()
    api = owner.api()
    bad = [
        {"models": ["pro"], "max_price_per_image": "1"},
        {"models": ["nano"], "max_price_per_image": "1"},
        {"models": [], "max_price_per_image": "1"},
        {"models": ["flash"], "max_price_per_image": "-1"},
        {"models": ["flash"], "max_price_per_image": "x"},
        {"models": ["flash"], "max_price_per_image": "1", "after_s": -3},
        {"models": ["flash"], "max_price_per_image": "1", "colour": "red"},
        ["flash"],
    ]
    for body in bad:
        assert_error(api.put(SETTINGS, body, format="json"), 400, "invalid_fallback_policy")
    assert api.get(SETTINGS).json() == {"fallback": None}

    saved = _policy(owner, max_price_per_image="0.09")
    assert saved == {
        "fallback": {"models": ["flash"], "max_price_per_image": "0.09", "after_s": 0.0}
    }
    default = api.put(SETTINGS, {"models": ["flash"], "max_price_per_image": "1"}, format="json")
    assert default.json()["fallback"]["after_s"] == 20.0
    assert api.put(SETTINGS, {"fallback": None}, format="json").json() == {"fallback": None}


def test_a_job_override_naming_a_model_outside_the_plan_is_refused(owner: Actor) -> None:
    plan = owner.tenant.plan
    plan.allowed_tiers = ["lite"]
    plan.save()
    response = owner.api().post(
        GENERATIONS,
        {"prompt": "a cat", "fallback": {"models": ["flash"], "max_price_per_image": "1"}},
        format="json",
    )
    assert_error(response, 400, "invalid_fallback_policy")
    response = owner.api().post(GENERATIONS, {"prompt": "a cat", "fallback": "yes"}, format="json")
    assert_error(response, 400, "validation_error")


def test_another_tenant_policy_is_its_own(owner: Actor, outsider: Actor) -> None:
    _policy(owner)
    assert outsider.api().get(SETTINGS).json() == {"fallback": None}


T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _job(deferrals: int = 0) -> Job:
    return Job(created_at=T0, deferrals=deferrals)


def test_reason_waits_out_a_cooldown_that_ends_before_the_deadline() -> None:
    policy = FallbackPolicy(models=("flash",), max_price_per_image=Decimal(1), after_s=20)
    short = T0 + dt.timedelta(seconds=5)
    assert reason_for(job=_job(), policy=policy, cooling_until=short, now=T0) is None
    long = T0 + dt.timedelta(seconds=30)
    assert reason_for(job=_job(), policy=policy, cooling_until=long, now=T0) == PRIMARY_THROTTLED
    late = T0 + dt.timedelta(seconds=21)
    assert reason_for(job=_job(1), policy=policy, cooling_until=None, now=late) == DEADLINE
    # Late but never throttled: a busy queue is not a reason to pay more.
    assert reason_for(job=_job(0), policy=policy, cooling_until=None, now=late) is None


def test_price_object_is_right_for_standard_batch_and_fallback_jobs(owner: Actor) -> None:
    api = owner.api()
    standard = api.post(GENERATIONS, {"prompt": "a mug", "count": 2}, format="json").json()
    price = standard["price"]
    assert (price["model"], price["mode"], price["discount"]) == ("lite", "standard", "0.000000")
    provider, markup = Decimal(price["provider_per_image"]), Decimal(price["markup_per_image"])
    assert markup == owner.tenant.plan.markup_per_image
    assert Decimal(price["per_image"]) == provider + markup
    # Shown to the micro-dollar; the estimate itself is exact to the nano-dollar.
    assert abs(Decimal(standard["estimated_cost"]) - 2 * Decimal(price["per_image"])) <= MICRO
    assert standard["fallback_price"] is None  # no policy

    batch = api.post(
        GENERATIONS, {"prompt": "a mug", "count": 2, "priority": "economy"}, format="json"
    ).json()
    half = batch["price"]
    assert (half["model"], half["mode"]) == ("lite", "batch")
    # The Batch API's half price: $0.0168 for the image plus the bounded thinking and text
    # allowance (the estimate is an upper bound); the discount says what it saved.
    assert abs(Decimal(half["provider_per_image"]) * 2 - provider) <= MICRO
    assert (
        abs(Decimal(half["discount"]) - (provider - Decimal(half["provider_per_image"]))) <= MICRO
    )
    assert Decimal("0.0168") <= Decimal(half["provider_per_image"]) < Decimal("0.0175")
    assert abs(Decimal(batch["estimated_cost"]) - 2 * Decimal(half["per_image"])) <= MICRO

    _policy(owner, after_s=15)
    offered = api.post(GENERATIONS, {"prompt": "a mug"}, format="json").json()
    fallback = offered["fallback_price"]
    assert (fallback["model"], fallback["mode"], fallback["after_s"]) == ("flash", "standard", 15)
    assert Decimal(fallback["per_image"]) == Decimal(fallback["provider_per_image"]) + markup
    assert Decimal(fallback["per_image"]) <= Decimal(ABOVE_FLASH)
    # Above the cap, no fallback is offered.
    _policy(owner, max_price_per_image=UNDER_FLASH)
    assert (
        api.post(GENERATIONS, {"prompt": "a mug"}, format="json").json()["fallback_price"] is None
    )
