"""The operators' status page in a real browser, screenshotted."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Browser, expect

from ops import tasks
from ops.models import OpsSample
from tests.e2e.conftest import screenshot
from tests.plugins.actors import PASSWORD, Actor
from tests.plugins.gemini import GeminiEmulator

STATUS = "/admin/status/"


@pytest.mark.browser
def test_the_status_page_in_a_browser(
    browser: Browser, live_server: Any, inline_worker: GeminiEmulator, owner: Actor
) -> None:
    User.objects.create_superuser("ops", "ops@bunch.test", PASSWORD)
    for minutes in (40, 20):
        OpsSample.objects.create(
            taken_at=timezone.now() - dt.timedelta(minutes=minutes),
            data={"queued": {"scale": minutes}, "running": {"scale": 2}, "calls": {}},
        )
    tasks.sample()
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{live_server.url}/admin/login/?next={STATUS}")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.get_by_test_id("ops-status")).to_be_visible()
    expect(page.locator("svg.ops-chart")).to_have_count(5)
    screenshot(page, "ops-status")
    page.close()
