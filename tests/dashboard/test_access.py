"""Who may open which dashboard page: sign-in, roles, tenants, CSRF."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from tests.dashboard.conftest import csrf_token, signed_in, uploaded
from tests.plugins.actors import Actor
from webhooks.services import endpoint_create

MEMBER_PAGES = ["/generate/", "/gallery/"]
MANAGER_PAGES = ["/usage/", "/api-keys/", "/webhooks/", "/members/"]


@pytest.mark.parametrize("url", ["/", *MEMBER_PAGES, *MANAGER_PAGES])
def test_every_page_sends_anonymous_visitors_to_sign_in(db: None, url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/login/?next={url}")


@pytest.mark.parametrize("url", MEMBER_PAGES + MANAGER_PAGES)
def test_owner_opens_every_page(owner: Actor, url: str) -> None:
    response = signed_in(owner).get(url)
    assert response.status_code == 200
    assert b"Acme" in response.content  # the current tenant is always visible


@pytest.mark.parametrize("url", MEMBER_PAGES)
def test_member_generates_and_browses(member: Actor, url: str) -> None:
    assert signed_in(member).get(url).status_code == 200


@pytest.mark.parametrize("url", MANAGER_PAGES)
def test_member_gets_a_friendly_403_on_management_pages(member: Actor, url: str) -> None:
    response = signed_in(member).get(url)
    assert response.status_code == 403
    assert b"Only owners and admins" in response.content


def test_member_does_not_see_management_links(member: Actor) -> None:
    body = signed_in(member).get("/generate/").content
    assert b"API keys" not in body and b"/members/" not in body


def test_member_cannot_create_an_api_key_by_posting(member: Actor) -> None:
    response = signed_in(member).post("/api-keys/", {"name": "sneaky", "scopes": ["read"]})
    assert response.status_code == 403
    assert not member.tenant.api_keys.filter(name="sneaky").exists()


def test_user_without_a_workspace_is_told_so(django_user_model: type) -> None:
    django_user_model.objects.create_user("lonely@x.test", "lonely@x.test", "pw-lonely-123")
    client = Client()
    client.login(username="lonely@x.test", password="pw-lonely-123")
    response = client.get("/generate/")
    assert response.status_code == 403
    assert b"not in a workspace" in response.content


def test_root_redirects_to_generate(owner: Actor) -> None:
    assert signed_in(owner).get("/")["Location"] == "/generate/"


# Wrong tenant -------------------------------------------------------------------------


def test_another_tenants_image_is_404(owner: Actor, outsider: Actor) -> None:
    theirs = uploaded(outsider.tenant)
    assert signed_in(owner).get(f"/images/{theirs.pk}/").status_code == 404
    assert signed_in(outsider).get(f"/images/{theirs.pk}/").status_code == 200


def test_unknown_and_malformed_image_ids_are_404(owner: Actor) -> None:
    client = signed_in(owner)
    assert client.get(f"/images/{uuid.uuid4()}/").status_code == 404
    assert client.get("/images/not-a-uuid/").status_code == 404


def test_another_tenants_webhook_endpoint_is_404(owner: Actor, outsider: Actor) -> None:
    theirs, _ = endpoint_create(
        tenant=outsider.tenant, url="https://example.com/hook", event_types=[]
    )
    client = signed_in(owner)
    assert client.get(f"/webhooks/{theirs.pk}/").status_code == 404
    assert client.post(f"/webhooks/{theirs.pk}/rotate/").status_code == 404
    assert client.post(f"/webhooks/{theirs.pk}/delete/").status_code == 404
    theirs.refresh_from_db()  # still there


def test_revoking_another_tenants_api_key_is_404(owner: Actor, outsider: Actor) -> None:
    response = signed_in(owner).post(f"/api-keys/{outsider.api_key.pk}/revoke/")
    assert response.status_code == 404
    outsider.api_key.refresh_from_db()
    assert outsider.api_key.revoked_at is None


def test_removing_another_tenants_member_is_404(owner: Actor, outsider: Actor) -> None:
    theirs = outsider.user.memberships.get()
    assert signed_in(owner).post(f"/members/{theirs.pk}/remove/").status_code == 404
    assert (
        signed_in(owner).post(f"/members/{theirs.pk}/role/", {"role": "member"}).status_code == 404
    )
    assert outsider.user.memberships.filter(role="owner").exists()


def test_switching_to_a_tenant_you_do_not_belong_to_is_404(owner: Actor, outsider: Actor) -> None:
    client = signed_in(owner)
    response = client.post("/switch/", {"tenant": outsider.tenant.pk})
    assert response.status_code == 404
    assert b"Globex" not in client.get("/generate/").content


def test_switching_tenant_changes_what_every_page_shows(owner: Actor, outsider: Actor) -> None:
    # The owner of Acme is also a member of Globex.
    from tenants.services import membership_set

    membership_set(tenant=outsider.tenant, user=owner.user, role="member")
    theirs = uploaded(outsider.tenant)
    client = signed_in(owner)
    assert client.get(f"/images/{theirs.pk}/").status_code == 404
    response = client.post("/switch/", {"tenant": outsider.tenant.pk, "next": "/gallery/"})
    assert response["Location"] == "/gallery/"
    assert client.get(f"/images/{theirs.pk}/").status_code == 200
    assert client.get("/api-keys/").status_code == 403  # only a member there


def test_switch_ignores_an_offsite_next(owner: Actor) -> None:
    client = signed_in(owner)
    response = client.post("/switch/", {"tenant": owner.tenant.pk, "next": "https://evil.test/"})
    assert response["Location"] == "/"


# CSRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/api-keys/", {"name": "k", "scopes": ["read"]}),
        ("/members/", {"email": "new@acme.test", "role": "member"}),
        ("/webhooks/", {"url": "https://example.com/h"}),
        ("/switch/", {"tenant": "1"}),
        ("/logout/", {}),
    ],
)
def test_posts_without_a_csrf_token_are_refused(owner: Actor, url: str, data: dict) -> None:
    client = signed_in(owner, csrf=True)
    assert client.post(url, data).status_code == 403


def test_posts_with_the_csrf_token_go_through(owner: Actor) -> None:
    client = signed_in(owner, csrf=True)
    token = csrf_token(client, "/api-keys/")
    response = client.post(
        "/api-keys/", {"name": "ci", "scopes": ["read"], "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


def test_member_and_key_mutations_need_csrf(owner: Actor, member: Actor) -> None:
    client = signed_in(owner, csrf=True)
    target = member.user.memberships.get()
    assert client.post(f"/members/{target.pk}/remove/").status_code == 403
    assert client.post(f"/api-keys/{member.api_key.pk}/revoke/").status_code == 403
    assert member.user.memberships.exists()


def test_dashboard_javascript_reaches_the_api_with_the_session_and_csrf(owner: Actor) -> None:
    client = signed_in(owner, csrf=True)
    image = uploaded(owner.tenant)
    assert client.get(f"/api/v1/images/{image.pk}").status_code == 200
    no_token = client.post(f"/api/v1/images/{image.pk}/edits", {"instruction": "x"})
    assert no_token.status_code == 403
    assert no_token.json()["error"]["code"] == "permission_denied"
