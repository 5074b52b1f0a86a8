"""The image page's edit conversation in a real browser, turns run by a real worker: a
sent turn shows as running, is followed live, and its image appears when it is done."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from generation.images import image_upload
from generation.models import ConversationTurn
from tests.dashboard.conftest import png
from tests.e2e.conftest import screenshot, sign_in
from tests.plugins.actors import Actor
from tests.plugins.cluster import Cluster
from tests.plugins.gemini import GeminiEmulator

pytestmark = [pytest.mark.browser, pytest.mark.cluster]


def test_a_member_converses_with_an_image_and_watches_each_turn_arrive(
    page: Page,
    live_server: Any,
    cluster_factory: Callable[..., Cluster],
    gemini: GeminiEmulator,
    member: Actor,
) -> None:
    gemini.configure(latency=2.0)  # long enough to see a turn run
    cluster_factory()
    site = str(live_server.url)
    source = image_upload(tenant=member.tenant, data=png("teal", (96, 64)))
    sign_in(page, site, member)
    page.goto(f"{site}/images/{source.pk}/")
    page.get_by_test_id("conversation-start").click()
    expect(page.get_by_test_id("turn-estimate")).to_contain_text("sends 1 image and")

    for n, prompt in enumerate(["make it a poster", "now make it dusk"], start=1):
        page.get_by_test_id("turn-prompt").fill(prompt)
        page.get_by_test_id("turn-submit").click()
        # Back on the page at once, the turn still running, followed live...
        expect(page.locator("[data-live-job]")).to_have_count(1)
        expect(page.get_by_test_id("turn-submit")).to_be_disabled()
        # ...and once it is done the page shows its image.
        expect(page.get_by_test_id("turn-image")).to_have_count(n, timeout=40_000)
        expect(page.locator("[data-live-job]")).to_have_count(0)
    expect(page.get_by_test_id("turn-status")).to_have_text(["succeeded", "succeeded"])
    expect(page.get_by_test_id("turn-estimate")).to_contain_text("sends 3 images and")
    screenshot(page, "image-conversation")
    assert ConversationTurn.objects.filter(job__status="succeeded").count() == 2
    assert len(gemini.requests()) == 2
