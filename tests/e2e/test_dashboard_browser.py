"""The dashboard in a real browser: generate, watch, open, edit; keys; roles; usage."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from generation.models import Image
from tests.e2e.conftest import screenshot, sign_in
from tests.plugins.actors import Actor

pytestmark = pytest.mark.browser


def test_owner_generates_an_avatar_watches_it_arrive_then_edits_it_into_version_2(
    page: Page, site: str, owner: Actor
) -> None:
    sign_in(page, site, owner)
    page.check("[data-testid=kind-avatar]", force=True)
    page.get_by_role("button", name="a smiling astronaut").click()
    expect(page.locator("#prompt")).to_have_value("a smiling astronaut")
    expect(page.get_by_test_id("cost")).to_have_text(re.compile(r"^\$0\.0\d+$"))
    screenshot(page, "generate-form")

    page.evaluate("window.__sameDocument = true")  # lost if the page reloads
    page.click("#submit")
    result = page.get_by_test_id("result")
    expect(result).to_have_count(1)
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
    expect(result.locator("img")).to_have_js_property("complete", True)
    assert page.evaluate("window.__sameDocument") is True
    assert page.url == f"{site}/generate/"
    screenshot(page, "generate-result")

    result.click()
    page.wait_for_url(re.compile(r"/images/[0-9a-f-]+/$"))
    expect(page.get_by_test_id("version-label")).to_have_text("Version 1")
    expect(page.get_by_test_id("prompt")).to_have_text("a smiling astronaut")
    expect(page.get_by_test_id("full-image")).to_have_js_property("complete", True)
    first_url = page.url
    screenshot(page, "image")

    page.fill("#instruction", "give the astronaut a red scarf")
    page.click("#edit-submit")
    page.wait_for_url(lambda url: url != first_url and "/images/" in url)
    expect(page.get_by_test_id("version-label")).to_have_text("Version 2, edited from v1")
    expect(page.get_by_test_id("versions").locator("a")).to_have_count(2)
    screenshot(page, "image-version-2")
    assert Image.objects.filter(tenant=owner.tenant, parent__isnull=False).count() == 1

    page.goto(f"{site}/gallery/")
    expect(page.get_by_test_id("thumb")).to_have_count(2)
    screenshot(page, "gallery")

    page.goto(f"{site}/usage/")
    chart = page.get_by_test_id("images-chart")
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("aria-label", "Images per day: 2 this period")
    expect(page.get_by_test_id("images-used")).to_have_text("2")
    assert chart.locator("rect.bar[height]:not([height='0'])").count() >= 1
    screenshot(page, "usage")


def test_new_api_key_is_shown_once_with_a_copy_button_and_gone_after_reload(
    page: Page, site: str, owner: Actor
) -> None:
    sign_in(page, site, owner)
    page.goto(f"{site}/api-keys/")
    page.fill("#id_name", "Production server")
    page.click("text=Create key")
    secret = page.locator("#new-key-value")
    expect(secret).to_have_text(re.compile(r"^bk_live_[0-9a-f]{12}_\S+$"))
    plaintext = secret.inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("[data-copy='#new-key-value']")
    expect(page.locator("[data-copy='#new-key-value']")).to_contain_text("Copied")
    screenshot(page, "api-keys-new")

    page.reload()
    expect(page.locator("#new-key-value")).to_have_count(0)
    assert plaintext not in page.content()
    expect(page.get_by_test_id("key-row").filter(has_text="Production server")).to_be_visible()
    screenshot(page, "api-keys")


def test_member_cannot_open_the_api_keys_page(page: Page, site: str, member: Actor) -> None:
    sign_in(page, site, member)
    expect(page.get_by_role("link", name="API keys")).to_have_count(0)
    response = page.goto(f"{site}/api-keys/")
    assert response is not None and response.status == 403
    expect(page.get_by_test_id("forbidden")).to_contain_text("You don't have access")
    screenshot(page, "forbidden")


def test_management_pages_render_for_an_owner(page: Page, site: str, owner: Actor) -> None:
    page.goto(f"{site}/login/")
    screenshot(page, "login")
    sign_in(page, site, owner)
    for name in ("webhooks", "members"):
        page.goto(f"{site}/{name}/")
        expect(page.locator("h1")).to_be_visible()
        screenshot(page, name)


def test_generate_page_works_on_a_phone(browser: Browser, site: str, owner: Actor) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        sign_in(page, site, owner)
        expect(page.locator(".sidebar")).not_to_be_in_viewport()
        page.click(".hamburger")
        expect(page.locator(".sidebar").get_by_role("link", name="Gallery")).to_be_in_viewport()
        # Tap the dimmed page beside the open menu (the scrim's middle is under the menu).
        page.click(".scrim", position={"x": 370, "y": 420})
        expect(page.locator(".sidebar")).not_to_be_in_viewport()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"horizontal scroll on a phone: {width}px"
        screenshot(page, "generate-phone")
    finally:
        context.close()
