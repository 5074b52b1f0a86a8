"""The dashboard in a real browser: money shown one way, failed jobs, every page on a phone."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image as PILImage
from playwright.sync_api import Browser, Page, expect

from generation.images import image_upload
from tests.e2e.conftest import screenshot, sign_in
from tests.plugins.actors import Actor
from webhooks.services import endpoint_create

pytestmark = pytest.mark.browser

PAGES = (
    "generate",
    "gallery",
    "usage",
    "api-keys",
    "webhooks",
    "members",
    "batches",
    "jobs",
)


def _png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (64, 48), "teal").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def test_the_cost_card_and_the_cost_line_agree_and_a_refused_count_shows_no_estimate(
    page: Page, site: str, owner: Actor
) -> None:
    sign_in(page, site, owner)
    page.check("input[name=model][value=pro]", force=True)
    page.fill("#prompt", "a lighthouse at dusk")
    page.fill("#count", "6")
    page.dispatch_event("#count", "input")

    card = page.locator("label.choice:has(input[value=pro]) small").inner_text()
    each = re.search(r"up to (\$0\.\d{4}) per image", card)
    assert each, card
    detail = page.locator("#cost-detail")
    expect(detail).to_contain_text(f"6 × {each.group(1)} per image")
    total = float(each.group(1)[1:]) * 6
    expect(page.get_by_test_id("cost")).to_have_text(re.compile(r"^\$\d+\.\d{2}$"))
    assert float(page.get_by_test_id("cost").inner_text()[1:]) >= total - 1e-9
    screenshot(page, "generate-estimate-1366")

    page.fill("#count", "20")
    page.dispatch_event("#count", "input")

    expect(page.get_by_test_id("cost")).to_have_text("—")
    expect(detail).to_have_text("Choose 1 to 8 images per job.")


def test_a_failed_job_says_why_that_nothing_was_charged_and_offers_a_retry(
    page: Page, site: str, owner: Actor
) -> None:
    sign_in(page, site, owner)
    page.fill("#prompt", "a fox [[safety]]")
    page.click("#submit")

    expect(page.get_by_test_id("job-status")).to_have_text("failed")
    expect(page.get_by_test_id("job-error")).to_contain_text("refused")
    expect(page.locator("#job-cost")).to_have_text("Nothing was charged")
    expect(page.locator("#job-text")).to_have_text("The job failed.")
    expect(page.get_by_test_id("job-retry")).to_be_visible()
    assert page.locator("#job-progress").evaluate("el => el.style.width") == "0%"
    screenshot(page, "generate-failed-1366")

    page.get_by_test_id("job-retry").click()
    expect(page.get_by_test_id("job-status")).to_have_text("failed")


def test_every_page_fits_a_phone_without_sideways_scrolling(
    phone: Page, site: str, owner: Actor, member: Actor, settings: Any
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    endpoint_create(
        tenant=owner.tenant,
        url="https://hooks.example.com/bunch/a-rather-long-path/that-keeps-going",
        event_types=["job.succeeded", "job.failed"],
        description="Production receiver",
    )
    image = image_upload(tenant=owner.tenant, data=_png())
    sign_in(phone, site, owner)
    phone.fill("#prompt", "a very long banner prompt " * 12)
    phone.check("input[name=aspect_ratio][value='8:1']", force=True)
    phone.click("#submit")
    expect(phone.get_by_test_id("result")).to_have_count(1)
    generated = str(phone.get_by_test_id("result").get_attribute("href")).strip("/")
    wide = {}
    for name in (*PAGES, f"images/{image.pk}", generated, "gallery"):
        phone.goto(f"{site}/{name}/")
        expect(phone.locator("h1").first).to_be_attached()
        width = phone.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            wide[name] = width
        if name == generated:  # an 8:1 banner keeps its shape on a phone
            box = phone.get_by_test_id("full-image").bounding_box()
            assert box and abs(box["width"] / box["height"] - 8) < 0.2, box
        screenshot(phone, f"{name.split('/')[0]}-390")
    assert wide == {}, f"pages wider than a 390 px phone: {wide}"


def test_every_page_at_1366_for_the_record(page: Page, site: str, owner: Actor) -> None:
    page.set_viewport_size({"width": 1366, "height": 900})
    image = image_upload(tenant=owner.tenant, data=_png())
    sign_in(page, site, owner)
    for name in (*PAGES, f"images/{image.pk}"):
        page.goto(f"{site}/{name}/")
        expect(page.locator("h1").first).to_be_attached()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, f"{name} is {width}px wide"
        screenshot(page, f"{name.split('/')[0]}-1366")
