"""The operators' status page in a real browser, screenshotted."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Browser, expect

from generation.budget import Ask, budget_take, cooldown_start
from ops import tasks
from ops.models import OpsSample
from tests.e2e.conftest import screenshot
from tests.plugins.actors import PASSWORD, Actor
from tests.plugins.gemini import GeminiEmulator

STATUS = "/admin/status/"
LITE, FLASH = "gemini-3.1-flash-lite-image", "gemini-3.1-flash-image"


@pytest.mark.browser
def test_the_status_page_in_a_browser(
    browser: Browser,
    live_server: Any,
    inline_worker: GeminiEmulator,
    owner: Actor,
    settings: Any,
) -> None:
    User.objects.create_superuser("ops", "ops@bunch.test", PASSWORD)
    for minutes, held in ((40, 1), (20, 4)):
        OpsSample.objects.create(
            taken_at=timezone.now() - dt.timedelta(minutes=minutes),
            data={
                "queued": {"scale": minutes},
                "running": {"scale": 2},
                "calls": {},
                "budget_in_use": {LITE: held},
            },
        )
    settings.GEMINI_MAX_IN_FLIGHT = 4
    budget_take(model=LITE, holder="worker-a:7:x", asks=[Ask(owner.tenant.pk)] * 3)
    cooldown_start(model=FLASH, seconds=60)
    tasks.sample()
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{live_server.url}/admin/login/?next={STATUS}")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.get_by_test_id("ops-status")).to_be_visible()
    expect(page.locator("svg.ops-chart")).to_have_count(6)
    budget = page.get_by_test_id("provider-budget")
    expect(budget.locator("tr", has_text=LITE)).to_contain_text("3 / 4")
    expect(budget.locator("tr", has_text=FLASH)).to_contain_text("s left")
    expect(page.get_by_role("img", name="75 % of the budget in use")).to_be_visible()
    screenshot(page, "ops-status")
    page.close()
