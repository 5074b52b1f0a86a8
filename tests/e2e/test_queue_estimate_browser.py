"""A queued job on the dashboard says when it should start ("starts in about N s"), from
the scheduler's estimate in its API representation (`queue`)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from generation import queue, scheduler
from generation.models import Job
from generation.services import JobParams, job_submit
from tests.e2e.conftest import screenshot, sign_in
from tests.plugins.actors import Actor

pytestmark = pytest.mark.browser


def test_a_queued_job_shows_when_it_should_start_and_how_many_jobs_are_ahead(
    page: Page, site: str, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = owner.tenant.plan
    plan.max_concurrent_jobs = 1
    plan.save()
    # The tenant at its cap (one job running, on no worker) and two dashboard jobs queued.
    with monkeypatch.context() as quiet:  # no doorbells: nothing runs them
        quiet.setattr(queue, "enqueue_job", lambda *args, **kwargs: None)
        for i in range(3):
            params = JobParams(prompt=f"earlier {i}")
            job_submit(tenant=owner.tenant, params=params, user=owner.user)
    assert len(scheduler.claim_jobs(limit=5)) == 1

    sign_in(page, site, owner)
    page.fill("#prompt", "a lighthouse at dusk")
    page.click("#submit")

    expect(page.get_by_test_id("job-status")).to_have_text("queued")
    # 2 ahead at a share of 1 running job, ~4 s a job (none measured yet): about 12 s.
    text = page.locator("#job-text")
    expect(text).to_have_text(re.compile(r"^Starts in about 1[0-2] s · 2 of your jobs ahead$"))
    screenshot(page, "generate-queued-estimate")
    mine = Job.objects.get(prompt="a lighthouse at dusk")
    assert mine.status == "queued"
    estimate = scheduler.queue_estimate(mine)
    assert estimate is not None and estimate["position"] == 2
