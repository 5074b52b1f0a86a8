"""Dashboard correctness: versions as a tree, checkout return, workspace switch, designed
error pages, failed jobs with retry, gallery filters and words, the edit form."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.test import Client

from generation.images import image_upload
from generation.models import Image, Job
from tenants.services import membership_set, tenant_create
from tests.dashboard.conftest import png, signed_in
from tests.plugins.actors import Actor, make_plan


def _edit_of(parent: Image, color: str) -> Image:
    child = image_upload(tenant=parent.tenant, data=png(color))
    Image.objects.filter(pk=child.pk).update(parent=parent, source=Image.Source.GENERATED)
    child.refresh_from_db()
    return child


def _failed_job(actor: Actor, **fields: Any) -> Job:
    values: dict[str, Any] = {
        "tenant": actor.tenant,
        "prompt": "a fox in the snow",
        "model_prompt": "a fox in the snow",
        "aspect_ratio": "1:1",
        "tier": "lite",
        "count": 2,
        "status": Job.Status.FAILED,
        "error_code": "image_refused",
        "error_message": "The model refused to create this image (IMAGE_SAFETY).",
        "estimated_cost": Decimal("0.0872"),
    }
    return Job.objects.create(**{**values, **fields})


def test_versions_are_numbered_in_the_order_made_across_branches(owner: Actor) -> None:
    v1 = image_upload(tenant=owner.tenant, data=png("red"))
    v2 = _edit_of(v1, "green")
    _edit_of(v2, "blue")
    client = signed_in(owner)

    promised = client.get(f"/images/{v1.pk}/").content.decode()
    v4 = _edit_of(v1, "yellow")  # v1 edited again, after v2 and v3
    branch = client.get(f"/images/{v4.pk}/").content.decode()
    listing = client.get(f"/images/{v1.pk}/").content.decode()

    assert "the result becomes version 4, edited from v1" in promised
    assert "Version 4, edited from v1" in branch
    assert branch.count('data-testid="version"') == 4
    assert [f"v{n}" in listing for n in (1, 2, 3, 4)] == [True] * 4
    assert listing.index(f"/images/{v4.pk}/") > listing.index(f"/images/{v2.pk}/")


def test_checkout_return_confirms_and_offers_no_second_payment(owner: Actor) -> None:
    make_plan(slug="scale", name="Scale", monthly_price=Decimal("499.00"))
    client = signed_in(owner)

    paid = client.get("/usage/?checkout=success&session_id=cs_test_1").content.decode()
    canceled = client.get("/usage/?checkout=canceled").content.decode()
    plain = client.get("/usage/").content.decode()

    assert "Payment received — your plan is being updated" in paid
    assert 'data-billing="checkout"' not in paid and "Payment pending" in paid
    assert "Checkout canceled — nothing was charged" in canceled
    assert 'data-billing="checkout"' in plain


def test_switching_workspace_on_an_object_page_lands_on_that_sections_index(
    owner: Actor,
) -> None:
    other = tenant_create(name="Second", slug="second", plan=owner.tenant.plan)
    membership_set(tenant=other, user=owner.user, role="owner")
    image = image_upload(tenant=owner.tenant, data=png())
    client = signed_in(owner)

    def switch(next_url: str) -> str:
        response = client.post("/switch/", {"tenant": other.pk, "next": next_url})
        return str(response["Location"])

    assert switch(f"/images/{image.pk}/") == "/gallery/"
    assert switch(f"/webhooks/{uuid.uuid4()}/") == "/webhooks/"
    assert switch(f"/batches/{uuid.uuid4()}/") == "/batches/"
    assert switch("/usage/") == "/usage/"


def test_error_pages_are_the_designed_ones_even_with_debug_on(
    owner: Actor, member: Actor, settings: Any
) -> None:
    settings.DEBUG = True
    client = signed_in(owner)

    missing_object = client.get(f"/images/{uuid.uuid4()}/")
    missing_page = client.get("/no-such-page/")
    forbidden = signed_in(member).get("/usage/")

    for response, status in ((missing_object, 404), (missing_page, 404), (forbidden, 403)):
        body = response.content.decode()
        assert response.status_code == status
        assert "Using the URLconf" not in body and 'class="error-page card"' in body
    assert "see usage and billing" in forbidden.content.decode()
    assert client.get("/api/v1/nothing-here").json()["error"]["code"] == "not_found"


def test_failed_jobs_are_listed_with_why_nothing_charged_and_a_retry(
    owner: Actor, member: Actor, outsider: Actor
) -> None:
    job = _failed_job(owner)
    _failed_job(owner, status=Job.Status.SUCCEEDED, prompt="a finished one")
    client = signed_in(member)

    page = client.get("/jobs/?status=failed").content.decode()
    retried = client.post(f"/jobs/{job.pk}/retry/", follow=True)
    stolen = signed_in(outsider).post(f"/jobs/{job.pk}/retry/")

    assert page.count('data-testid="job-row"') == 1
    assert "IMAGE_SAFETY" in page and "Nothing charged" in page and 'data-testid="retry"' in page
    assert "a finished one" not in page
    new = Job.objects.exclude(pk=job.pk).get(metadata__retry_of=str(job.pk))
    assert new.status == Job.Status.QUEUED and new.count == 2
    assert "Retrying as a new job (2 images, up to $0." in retried.content.decode()
    assert stolen.status_code == 404


def test_gallery_words_filters_and_a_reversed_date_range(owner: Actor) -> None:
    image_upload(tenant=owner.tenant, data=png())
    client = signed_in(owner)

    one = client.get("/gallery/?source=upload").content.decode()
    none = client.get("/gallery/?source=generated").content.decode()
    reversed_range = client.get("/gallery/?date_from=2026-03-10&date_to=2026-03-01").content
    failed = client.get("/gallery/?status=failed").content.decode()

    assert "1 image matches your filters" in one
    assert "0 images match your filters" in none
    assert "is after “To”" in reversed_range.decode()
    assert 'href="/jobs/?status=failed"' in failed


def test_edit_form_defaults_to_the_originals_model_and_has_its_estimate(owner: Actor) -> None:
    image = image_upload(tenant=owner.tenant, data=png())
    job = _failed_job(owner, status=Job.Status.SUCCEEDED, tier="pro")
    Image.objects.filter(pk=image.pk).update(job=job)

    page = signed_in(owner).get(f"/images/{image.pk}/").content.decode()

    assert '<option value="pro" selected>' in page
    assert 'id="price-sheet"' in page and 'data-testid="edit-cost"' in page


def test_anonymous_retry_goes_to_sign_in() -> None:
    response = Client().post(f"/jobs/{uuid.uuid4()}/retry/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_small_things_favicon_just_now_and_admin_suspend(owner: Actor, settings: Any) -> None:
    from django.contrib.auth.models import User
    from django.utils import timezone

    from tenants.models import ApiKey, Tenant

    ApiKey.objects.filter(pk=owner.api_key.pk).update(last_used_at=timezone.now())
    keys = signed_in(owner).get("/api-keys/").content.decode()
    favicon = Client().get("/favicon.ico")
    staff = User.objects.create_superuser("ops", "ops@bunch.test", "ops-password-123")
    admin = Client()
    admin.force_login(staff)
    suspended = admin.post(
        "/admin/tenants/tenant/",
        {"action": "suspend", "_selected_action": [owner.tenant.pk]},
        follow=True,
    )

    assert "Just now" in keys and "0 minutes ago" not in keys
    assert favicon.status_code == 302 and favicon["Location"].endswith("favicon.svg")
    assert "Suspended 1 tenant(s)." in suspended.content.decode()
    owner.tenant.refresh_from_db()
    assert owner.tenant.status == Tenant.Status.SUSPENDED


def test_the_charts_last_axis_label_ends_inside_the_chart(owner: Actor) -> None:
    import re

    page = signed_in(owner).get("/usage/").content.decode()
    labels = re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="(start|end)">', page)

    assert labels, "no axis labels"
    for x, anchor in labels:  # a label is about 48 px wide; the chart 900
        assert (float(x) + 48 if anchor == "start" else float(x)) <= 900, (x, anchor)
