"""The audit log: what is recorded (actor, address, time, object), who can read it, and
that nothing can change or delete an entry."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AppendOnly, AuditEvent
from tenants.models import Membership
from tenants.services import tenant_set_plan
from tests.plugins.actors import PASSWORD, Actor, make_plan

OFFICE = "198.51.100.20"
PUBLIC_HOOK = "https://93.184.215.14/hook"


def _browser(actor: Actor) -> Client:
    client = Client(REMOTE_ADDR=OFFICE)
    client.force_login(actor.user)
    return client


def test_key_member_and_plan_changes_are_recorded_with_actor_address_and_object(
    owner: Actor, member: Actor
) -> None:
    browser = _browser(owner)
    start = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    browser.post("/api-keys/", {"name": "CI", "scopes": ["read"]})
    key = owner.tenant.api_keys.get(name="CI")
    browser.post(f"/api-keys/{key.pk}/revoke/")
    browser.post("/members/", {"email": "new@acme.test", "role": "member"})
    role_of = Membership.objects.get(tenant=owner.tenant, user=member.user)
    browser.post(f"/members/{role_of.pk}/role/", {"role": "admin"})
    browser.post(f"/members/{role_of.pk}/remove/")
    tenant_set_plan(tenant=owner.tenant, plan=make_plan(slug="pro", name="Pro"))

    events = list(AuditEvent.objects.filter(tenant=owner.tenant, id__gt=start).order_by("id"))
    rows = [(e.action, e.actor_label, e.ip, e.object_label) for e in events]
    assert rows[:5] == [
        ("api_key.created", owner.user.username, OFFICE, f"CI ({key.prefix}…)"),
        ("api_key.revoked", owner.user.username, OFFICE, f"CI ({key.prefix}…)"),
        ("member.invited", owner.user.username, OFFICE, "new@acme.test"),
        ("member.role_changed", owner.user.username, OFFICE, member.user.email),
        ("member.removed", owner.user.username, OFFICE, member.user.email),
    ]
    assert events[3].detail == {"from": "member", "to": "admin"}
    assert (events[5].action, events[5].detail) == (
        "plan.changed",
        {"from": "test-plan", "to": "pro"},
    )
    assert all(e.created_at is not None for e in events)


def test_webhook_changes_through_the_api_name_the_key_that_made_them(
    owner: Actor, settings: Any
) -> None:
    api = Client(REMOTE_ADDR=OFFICE, HTTP_AUTHORIZATION=f"Bearer {owner.key}")
    created = api.post(
        "/api/v1/webhook-endpoints", {"url": PUBLIC_HOOK}, content_type="application/json"
    ).json()
    path = f"/api/v1/webhook-endpoints/{created['id']}"
    api.patch(path, {"enabled": False}, content_type="application/json")
    rotated = api.post(f"{path}/rotate-secret", {}, content_type="application/json")
    assert rotated.status_code == 200, rotated.content
    api.delete(path)

    events = AuditEvent.objects.filter(action__startswith="webhook.").order_by("id")
    assert [(e.action, e.ip, e.object_id) for e in events] == [
        ("webhook.created", OFFICE, created["id"]),
        ("webhook.changed", OFFICE, created["id"]),
        ("webhook.secret_rotated", OFFICE, created["id"]),
        ("webhook.deleted", OFFICE, created["id"]),
    ]
    assert {e.actor_label for e in events} == {f"API key {owner.api_key.prefix}… (owner key)"}
    assert events[1].detail == {"enabled": {"from": True, "to": False}}
    assert created["secret"] not in str([e.detail for e in events])


def test_owners_see_sign_in_failures_and_lockouts_of_their_members(
    owner: Actor, member: Actor, outsider: Actor
) -> None:
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(6):
        attacker.post("/login/", {"username": member.user.username, "password": "nope"})
    attacker.post("/login/", {"username": outsider.user.username, "password": "nope"})

    page = _browser(owner).get("/audit/")

    assert page.status_code == 200
    text = page.content.decode()
    assert text.count("login.failed") == 5 and text.count("login.locked_out") == 1
    assert "203.0.113.9" in text and member.user.username in text
    assert outsider.user.username not in text  # another tenant's member


def test_the_audit_page_is_for_owners_and_admins_and_shows_only_the_tenant(
    owner: Actor, member: Actor, outsider: Actor
) -> None:
    _browser(outsider).post("/api-keys/", {"name": "Globex CI", "scopes": ["read"]})
    _browser(owner).post("/api-keys/", {"name": "Acme CI", "scopes": ["read"]})

    mine = _browser(owner).get("/audit/").content.decode()

    assert "Acme CI" in mine and "Globex CI" not in mine
    assert _browser(member).get("/audit/").status_code == 403


def test_entries_cannot_be_changed_or_deleted(owner: Actor) -> None:
    event = AuditEvent.objects.filter(tenant=owner.tenant).order_by("id").first()
    assert event is not None
    event.action = "api_key.revoked"
    attempts = {
        "save": lambda: event.save(),
        "delete": lambda: event.delete(),
        "queryset update": lambda: AuditEvent.objects.filter(pk=event.pk).update(action="x"),
        "queryset delete": lambda: AuditEvent.objects.filter(pk=event.pk).delete(),
    }
    refused = []
    for name, attempt in attempts.items():
        with pytest.raises(AppendOnly):
            attempt()
        refused.append(name)
    assert len(refused) == 4
    assert AuditEvent.objects.get(pk=event.pk).action == "member.invited"


def test_operators_read_the_log_in_admin_but_cannot_change_it(owner: Actor) -> None:
    User.objects.create_superuser("ops", "ops@bunch.test", PASSWORD)
    admin = Client()
    admin.force_login(User.objects.get(username="ops"))
    event = AuditEvent.objects.filter(tenant=owner.tenant).order_by("id").first()
    assert event is not None

    listing = admin.get("/admin/audit/auditevent/")
    change = admin.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "x"})
    delete = admin.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"})
    add = admin.get("/admin/audit/auditevent/add/")

    assert listing.status_code == 200 and b"member.invited" in listing.content
    assert (change.status_code, delete.status_code, add.status_code) == (403, 403, 403)
    assert AuditEvent.objects.filter(pk=event.pk).exists()
