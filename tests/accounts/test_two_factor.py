"""Two-factor sign-in: set up with an authenticator app, asked for after the password,
recovery codes that work once, and owners who require it of every member."""

from __future__ import annotations

import base64
import re
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts import services
from accounts.models import TwoFactor
from audit.models import AuditEvent
from core import totp
from tests.plugins.actors import PASSWORD, Actor

SETTINGS = "/account/two-factor/"


def _code(user: User, offset_steps: int = 0) -> str:
    secret = TwoFactor.objects.get(user=user).secret
    return totp.code_at(secret, totp.step_of(time.time()) + offset_steps)


def _enable(client: Client, user: User) -> list[str]:
    client.post(SETTINGS, {"action": "start"})
    page = client.post(SETTINGS, {"action": "confirm", "code": _code(user)}, follow=True)
    return re.findall(r"[0-9a-f]{8}-[0-9a-f]{8}", page.content.decode())


def _password(client: Client, actor: Actor) -> object:
    return client.post("/login/", {"username": actor.user.email, "password": PASSWORD})


def test_codes_are_rfc_6238s() -> None:
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp.code_at(secret, totp.step_of(59)) == "287082"
    assert totp.code_at(secret, totp.step_of(1111111109)) == "081804"
    assert totp.matching_step(secret, "287 082", unix_time=59 + 30) == 1  # drift of one step
    assert totp.matching_step(secret, "287082", unix_time=59 + 90) is None
    assert totp.matching_step(secret, "28708a", unix_time=59) is None


@pytest.mark.django_db
def test_setting_it_up_shows_a_qr_code_then_needs_a_right_code(owner: Actor) -> None:
    client = Client()
    client.force_login(owner.user)
    page = client.post(SETTINGS, {"action": "start"}, follow=True)
    assert b"<svg" in page.content and b'data-testid="two-factor-secret"' in page.content
    wrong = client.post(SETTINGS, {"action": "confirm", "code": "000000"})
    assert wrong.status_code == 400 and not services.two_factor_active(owner.user)
    codes = client.post(SETTINGS, {"action": "confirm", "code": _code(owner.user)}, follow=True)
    assert len(re.findall(r"[0-9a-f]{8}-[0-9a-f]{8}", codes.content.decode())) == 10
    assert services.two_factor_active(owner.user)
    assert AuditEvent.objects.filter(action="two_factor.enabled", actor_user=owner.user).exists()
    again = client.get(SETTINGS)
    assert b"recovery-codes" not in again.content  # shown once
    assert b"10 recovery codes left" in again.content


@pytest.mark.django_db
def test_sign_in_asks_for_the_code_after_the_password(owner: Actor) -> None:
    setup = Client()
    setup.force_login(owner.user)
    _enable(setup, owner.user)

    client = Client()
    answer = _password(client, owner)
    assert answer.status_code == 302 and answer["Location"] == "/login/verify/"
    assert client.get("/generate/").status_code == 302  # not signed in yet
    assert client.post("/login/verify/", {"code": "123456"}).status_code == 400
    code = _code(owner.user, offset_steps=1)  # the next step: not used by the setup
    signed_in = client.post("/login/verify/", {"code": code})
    assert signed_in.status_code == 302
    assert client.get("/generate/").status_code == 200

    replay = Client()
    _password(replay, owner)
    assert replay.post("/login/verify/", {"code": code}).status_code == 400  # used once


@pytest.mark.django_db
def test_a_recovery_code_signs_in_once(owner: Actor) -> None:
    setup = Client()
    setup.force_login(owner.user)
    recovery = _enable(setup, owner.user)[0]
    first = Client()
    _password(first, owner)
    assert first.post("/login/verify/", {"code": recovery.upper()}).status_code == 302
    second = Client()
    _password(second, owner)
    assert second.post("/login/verify/", {"code": recovery}).status_code == 400
    assert services.recovery_codes_left(owner.user) == 9


@pytest.mark.django_db
def test_five_wrong_codes_send_you_back_to_the_password(owner: Actor) -> None:
    setup = Client()
    setup.force_login(owner.user)
    _enable(setup, owner.user)
    client = Client()
    _password(client, owner)
    for _ in range(4):
        assert client.post("/login/verify/", {"code": "000000"}).status_code == 400
    fifth = client.post("/login/verify/", {"code": "000000"})
    assert fifth.status_code == 302 and fifth["Location"] == "/login/"
    assert client.post("/login/verify/", {"code": _code(owner.user, 1)}).status_code == 302
    assert client.get("/generate/").status_code == 302  # the pending sign-in is gone
    assert (
        AuditEvent.objects.filter(action="login.failed", username=owner.user.email.lower()).count()
        == 5
    )


@pytest.mark.django_db
def test_an_owner_can_require_it_of_every_member(owner: Actor, member: Actor) -> None:
    owners = Client()
    owners.force_login(owner.user)
    members = Client()
    members.force_login(member.user)
    assert members.post("/members/two-factor/", {"require": "on"}).status_code == 403
    owners.post("/members/two-factor/", {"require": "on"})
    owner.tenant.refresh_from_db()
    assert owner.tenant.require_two_factor
    assert AuditEvent.objects.filter(action="two_factor.required").exists()

    blocked = members.get("/gallery/")
    assert blocked.status_code == 302 and blocked["Location"] == f"{SETTINGS}?required=1"
    assert b"two-factor-required" in members.get(f"{SETTINGS}?required=1").content
    _enable(members, member.user)
    assert members.get("/gallery/").status_code == 200


@pytest.mark.django_db
def test_turning_it_off_needs_a_right_code(owner: Actor) -> None:
    client = Client()
    client.force_login(owner.user)
    _enable(client, owner.user)
    assert client.post(SETTINGS, {"action": "disable", "code": "000000"}).status_code == 400
    assert services.two_factor_active(owner.user)
    client.post(SETTINGS, {"action": "disable", "code": _code(owner.user, 1)})
    assert not services.two_factor_active(owner.user)
    assert AuditEvent.objects.filter(action="two_factor.disabled").exists()


@pytest.mark.django_db
def test_the_admin_sign_in_asks_for_the_code_too() -> None:
    User.objects.create_superuser("ops", "ops@bunch.test", PASSWORD)
    staff = User.objects.get(username="ops")
    setup = Client()
    setup.force_login(staff)
    _enable(setup, staff)
    client = Client()
    answer = client.post("/admin/login/", {"username": "ops", "password": PASSWORD})
    assert answer.status_code == 302 and answer["Location"] == "/login/verify/"
    assert client.get("/admin/").status_code == 302
    client.post("/login/verify/", {"code": _code(staff, 1)})
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_the_admin_sign_in_page_still_renders(client: Client) -> None:
    page = client.get("/admin/login/?next=/admin/")
    assert page.status_code == 200 and b'name="username"' in page.content
