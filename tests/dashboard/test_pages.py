"""What each dashboard page shows and does."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client

from generation.models import Job
from generation.services import JobParams, image_edit_submit, job_submit
from tenants.models import ApiKey, Membership
from tests.dashboard.conftest import signed_in, uploaded
from tests.plugins.actors import Actor, make_plan
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_create


def _generate(actor: Actor, prompt: str, *, kind: str = "avatar", count: int = 1) -> Job:
    job = job_submit(
        tenant=actor.tenant,
        params=JobParams(prompt=prompt, kind=kind, count=count),
        user=actor.user,
    )
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error_message
    return job


# Sign in, password reset, invitations ---------------------------------------------------


def test_sign_in_lands_on_generate_and_shows_the_tenant(owner: Actor) -> None:
    client = Client()
    response = client.post(
        "/login/", {"username": owner.user.username, "password": "correct-horse-battery-staple"}
    )
    assert response["Location"] == "/"
    page = client.get("/generate/")
    assert b"Acme" in page.content and b"Owner" in page.content


def test_wrong_password_gets_a_plain_words_error(owner: Actor) -> None:
    response = Client().post("/login/", {"username": owner.user.username, "password": "nope"})
    assert response.status_code == 200
    assert b"match an account" in response.content


def test_sign_out_ends_the_session(owner: Actor) -> None:
    client = signed_in(owner)
    assert client.post("/logout/")["Location"] == "/login/"
    assert client.get("/generate/").status_code == 302


def test_password_reset_mails_a_link_that_sets_a_new_password(owner: Actor) -> None:
    client = Client()
    response = client.post("/password-reset/", {"email": owner.user.email})
    assert response["Location"] == "/password-reset/sent/"
    link = re.search(r"http://testserver(/password-reset/\S+/)", mail.outbox[0].body).group(1)
    form_url = client.get(link)["Location"]
    new = "a-brand-new-password-9"
    done = client.post(form_url, {"new_password1": new, "new_password2": new})
    assert done["Location"] == "/password-reset/done/"
    assert Client().login(username=owner.user.username, password=new)


def test_invite_creates_a_user_without_password_and_mails_a_set_password_link(
    owner: Actor,
) -> None:
    client = signed_in(owner)
    response = client.post("/members/", {"email": "New.Person@acme.test", "role": "member"})
    assert response["Location"] == "/members/"
    membership = Membership.objects.get(tenant=owner.tenant, user__email="new.person@acme.test")
    assert membership.role == "member"
    assert not membership.user.has_usable_password()
    [email] = mail.outbox
    assert email.to == ["new.person@acme.test"] and "Acme" in email.subject
    link = re.search(r"http://testserver(/password-reset/\S+/)", email.body).group(1)
    invited = Client()
    form_url = invited.get(link)["Location"]
    invited.post(
        form_url, {"new_password1": "pick-a-good-one-42", "new_password2": "pick-a-good-one-42"}
    )
    assert invited.login(username="new.person@acme.test", password="pick-a-good-one-42")
    assert invited.get("/gallery/").status_code == 200


def test_inviting_an_existing_member_is_refused_with_a_message(owner: Actor, member: Actor) -> None:
    response = signed_in(owner).post("/members/", {"email": member.user.email, "role": "admin"})
    assert response.status_code == 200
    assert b"already a member" in response.content


def test_owner_changes_a_role_and_removes_a_member(owner: Actor, member: Actor) -> None:
    client = signed_in(owner)
    target = member.user.memberships.get()
    client.post(f"/members/{target.pk}/role/", {"role": "admin"})
    target.refresh_from_db()
    assert target.role == "admin"
    assert signed_in(member).get("/api-keys/").status_code == 200
    client.post(f"/members/{target.pk}/remove/")
    assert not Membership.objects.filter(pk=target.pk).exists()


def test_nobody_removes_or_demotes_themselves(owner: Actor) -> None:
    client = signed_in(owner)
    mine = owner.user.memberships.get()
    client.post(f"/members/{mine.pk}/remove/")
    response = client.post(f"/members/{mine.pk}/role/", {"role": "member"}, follow=True)
    mine.refresh_from_db()
    assert mine.role == "owner"
    assert b"your own role" in response.content


def test_an_admin_cannot_touch_an_owner_or_make_one(owner: Actor, actor_factory) -> None:
    admin = actor_factory(owner.tenant, "admin@acme.test", "admin")
    client = signed_in(admin)
    theirs = owner.user.memberships.get()
    client.post(f"/members/{theirs.pk}/remove/")
    client.post(f"/members/{theirs.pk}/role/", {"role": "member"})
    theirs.refresh_from_db()
    assert theirs.role == "owner"
    response = client.post("/members/", {"email": "boss@acme.test", "role": "owner"})
    assert b"Only an owner" in response.content


# API keys -------------------------------------------------------------------------------


def test_new_api_key_secret_is_shown_once_and_works(owner: Actor) -> None:
    client = signed_in(owner)
    response = client.post("/api-keys/", {"name": "Production", "scopes": ["read"]}, follow=True)
    secret = re.search(rb"bk_live_[0-9a-f]{12}_[\w-]+", response.content).group(0).decode()
    key = ApiKey.objects.get(tenant=owner.tenant, name="Production")
    assert key.scopes == ["read"] and secret.startswith(key.prefix)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/generations").status_code == 200
    assert secret.encode() not in client.get("/api-keys/").content  # gone after a reload


def test_revoked_key_stops_working(owner: Actor) -> None:
    client = signed_in(owner)
    client.post(f"/api-keys/{owner.api_key.pk}/revoke/")
    owner.api_key.refresh_from_db()
    assert owner.api_key.revoked_at is not None
    assert owner.api().get("/api/v1/generations").status_code == 401
    assert b"Revoked" in client.get("/api-keys/").content


def test_api_key_needs_a_name_and_a_scope(owner: Actor) -> None:
    response = signed_in(owner).post("/api-keys/", {"name": "", "scopes": []})
    assert response.status_code == 200
    assert response.content.count(b"This field is required") == 2


# Webhooks -------------------------------------------------------------------------------


def test_webhook_endpoint_secret_is_shown_once_then_rotated(owner: Actor, settings) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True  # no DNS lookups in tests
    client = signed_in(owner)
    page = client.post(
        "/webhooks/",
        {"url": "https://hooks.example.com/bunch", "event_types": ["job.succeeded"]},
        follow=True,
    )
    endpoint = owner.tenant.webhook_endpoints.get()
    assert endpoint.secret.encode() in page.content
    assert endpoint.secret.encode() not in client.get(f"/webhooks/{endpoint.pk}/").content
    rotated = client.post(f"/webhooks/{endpoint.pk}/rotate/", follow=True)
    old = endpoint.secret
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret.encode() in rotated.content


def test_webhook_to_a_private_address_is_refused_in_words(owner: Actor, settings) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    response = signed_in(owner).post("/webhooks/", {"url": "http://127.0.0.1:9/x"})
    assert response.status_code == 200
    assert not owner.tenant.webhook_endpoints.exists()
    assert b"must be http(s) and resolve to public internet addresses" in response.content


def test_delivery_log_lists_deliveries_and_redelivers(owner: Actor) -> None:
    endpoint, _ = endpoint_create(tenant=owner.tenant, url="https://example.com/h", event_types=[])
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id="evt_1",
        event_type="job.succeeded",
        payload={},
        status=WebhookDelivery.Status.FAILED,
        response_code=500,
    )
    client = signed_in(owner)
    assert b"evt_1" in client.get(f"/webhooks/{endpoint.pk}/").content
    client.post(f"/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/redeliver/")
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING
    client.post(f"/webhooks/{endpoint.pk}/toggle/")
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    client.post(f"/webhooks/{endpoint.pk}/delete/")
    assert not owner.tenant.webhook_endpoints.exists()


# Generate, gallery, image -----------------------------------------------------------------


def test_generate_offers_only_the_plans_models_with_their_cost(owner: Actor) -> None:
    owner.tenant.plan = make_plan(slug="lite-only", allowed_tiers=["lite"])
    owner.tenant.save()
    body = signed_in(owner).get("/generate/").content.decode()
    assert re.search(r'value="flash"[^>]*disabled', body)
    assert re.search(r'value="lite" checked', body)
    assert '"lite": {"base": "0.0' in body and '"flash"' not in body.split("price-sheet")[1]
    assert body.count('name="aspect_ratio"') == 14
    assert "a smiling astronaut" in body


def test_empty_gallery_invites_a_first_generation(owner: Actor) -> None:
    assert b"Generate your first image" in signed_in(owner).get("/gallery/").content


def test_gallery_pages_newest_first(owner: Actor) -> None:
    images = [uploaded(owner.tenant) for _ in range(26)]
    client = signed_in(owner)
    first = client.get("/gallery/").content.decode()
    assert first.count('data-testid="thumb"') == 24
    assert first.index(str(images[-1].pk)) < first.index(str(images[-2].pk))
    second = client.get("/gallery/?page=2").content.decode()
    assert second.count('data-testid="thumb"') == 2 and str(images[0].pk) in second


@pytest.mark.usefixtures("inline_worker")
def test_gallery_filters_by_prompt_kind_and_status(owner: Actor) -> None:
    _generate(owner, "a wise old owl")
    _generate(owner, "a matte black bottle", kind="mockup")
    client = signed_in(owner)

    def shown(query: str) -> str:
        return client.get(f"/gallery/?{query}").content.decode()

    assert "owl" in shown("q=owl") and "bottle" not in shown("q=owl")
    assert "bottle" in shown("kind=mockup") and "owl" not in shown("kind=mockup")
    assert "Nothing matches" in shown("status=failed")
    assert "Nothing matches" in shown("date_from=2099-01-01")


@pytest.mark.usefixtures("inline_worker")
def test_image_page_shows_facts_and_the_version_chain(owner: Actor) -> None:
    job = _generate(owner, "a red-haired barista")
    first = job.images.get()
    edit = image_edit_submit(tenant=owner.tenant, image=first, instruction="add a hat")
    second = edit.images.get()
    client = signed_in(owner)
    body = client.get(f"/images/{second.pk}/").content.decode()
    assert "Version 2" in body and "a red-haired barista" not in body  # its prompt is the edit
    assert "add a hat" in body and "Nano Banana 2 Lite" in body and "1,120 out" in body
    assert f"/images/{first.pk}/" in body  # v1 is linked from v2
    assert "download=1" in body
    assert "Version 1" in client.get(f"/images/{first.pk}/").content.decode()


@pytest.mark.usefixtures("inline_worker")
def test_usage_page_charts_this_periods_images_and_spend(owner: Actor) -> None:
    _generate(owner, "a smiling astronaut", count=3)
    body = signed_in(owner).get("/usage/").content.decode()
    assert 'data-testid="images-chart"' in body and "3 this period" in body
    assert "Nano Banana 2 Lite" in body and "3 images" in body
    assert re.search(r'<rect class="bar"[^>]*height="[1-9]', body)
    plan_price = owner.tenant.plan.monthly_price
    assert f"${plan_price + Decimal('0.12'):.2f}" in body or "Total so far" in body
