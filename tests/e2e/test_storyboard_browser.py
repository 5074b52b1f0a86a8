"""The Storyboard page in a real browser: make a storyboard from an uploaded character
sheet, watch frames change status live, open a frame's versions, regenerate from here."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django_q.conf import Conf
from playwright.sync_api import Page, expect

from generation import tasks
from generation.models import Job
from series.models import Series
from series.services import FrameSpec, SeriesSpec, series_submit
from tests.e2e.conftest import screenshot, sign_in
from tests.plugins.actors import Actor
from tests.series.conftest import png

pytestmark = pytest.mark.browser


def test_owner_makes_a_storyboard_opens_a_frame_and_regenerates_from_there(
    page: Page, site: str, owner: Actor, tmp_path: Any
) -> None:
    sign_in(page, site, owner)
    page.click("[data-testid=nav-storyboards]")
    sheet = tmp_path / "fox.png"
    sheet.write_bytes(png((200, 90, 20)))
    page.fill("#id_name", "Fox goes to town")
    page.set_input_files("#id_references", str(sheet))
    page.fill("#id_frames", "the fox wakes up\nthe fox walks to town\nthe fox buys bread")
    page.click("[data-testid=storyboard-submit]")

    frames = page.locator("[data-testid=frame]")
    expect(frames).to_have_count(3)
    expect(page.locator("[data-testid=series-status]")).to_have_text("Succeeded")
    expect(page.locator("[data-testid=frame-status]")).to_have_text(["succeeded"] * 3)
    expect(page.locator("[data-testid=frame] img")).to_have_count(3)
    screenshot(page, "storyboard")

    frames.nth(1).locator("[data-testid=frame-open]").click()
    panel = page.locator("[data-testid=frame-panel]")
    expect(panel).to_be_visible()
    expect(panel.locator("[data-testid=frame-version]")).to_have_count(1)
    panel.locator("[data-testid=regenerate-from-here]").click()

    expect(page.locator(".flash-success")).to_contain_text("every frame after it")
    series = Series.objects.get(tenant=owner.tenant)
    versions = [f.versions.count() for f in series.frames.order_by("index")]
    assert versions == [1, 2, 2]
    frames.nth(2).locator("[data-testid=frame-open]").click()
    expect(panel.locator("[data-testid=frame-version]")).to_have_text(
        ["Version 1 · initial · succeeded open", "Version 2 · cascade · succeeded open"]
    )
    screenshot(page, "storyboard-versions")


def _run_frames(series_id: Any) -> None:
    from django.db import connection

    while not Series.objects.get(pk=series_id).is_finished:
        for job in Job.objects.filter(status="queued"):
            tasks.run_job(str(job.pk))
    connection.close()


def test_frames_change_status_live_without_a_reload(
    page: Page, site: str, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)  # no worker: the frames wait until run below
    series = series_submit(
        tenant=owner.tenant,
        spec=SeriesSpec(frames=(FrameSpec("a lighthouse"), FrameSpec("a lighthouse at night")),
                        consistency="chain"),
    )  # fmt: skip
    sign_in(page, site, owner)
    page.goto(f"{site}/storyboards/{series.pk}/")
    statuses = page.locator("[data-testid=frame-status]")
    expect(statuses).to_have_text(["queued", "waiting"])
    loaded = page.evaluate("window.performance.timeOrigin")

    worker = threading.Thread(target=_run_frames, args=(series.pk,), daemon=True)
    worker.start()  # its own thread: Playwright's event loop holds this one
    worker.join(60)

    expect(statuses).to_have_text(["succeeded", "succeeded"])
    expect(page.locator("[data-testid=series-status]")).to_have_text("Succeeded")
    assert page.evaluate("window.performance.timeOrigin") == loaded  # the same page, live
