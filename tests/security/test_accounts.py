"""Accounts that resist attack: sign-in lock-out, rate-limited reset and invitation links
and API-key guessing, password rules, session lifetimes, cookies and the CSP."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import time_machine
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from audit.models import AuditEvent
from tests.plugins.actors import PASSWORD, Actor, assert_error

ROOT = Path(__file__).resolve().parents[2]
ATTACKER = "203.0.113.66"
HOME = "198.51.100.7"
START = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)


def _sign_in(client: Client, username: str, password: str) -> Any:
    return client.post("/login/", {"username": username, "password": password})


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# Sign-in lock-out ------------------------------------------------------------------------


def test_five_failures_lock_that_account_from_that_address_even_for_the_right_password(
    owner: Actor,
) -> None:
    attacker = Client(REMOTE_ADDR=ATTACKER)
    with time_machine.travel(START, tick=False) as clock:
        for _ in range(5):
            assert _sign_in(attacker, owner.user.username, "wrong-guess").status_code == 200
        locked = _sign_in(attacker, owner.user.username, PASSWORD)

        assert locked.status_code == 429
        assert b"Too many failed sign-ins for this account from your address" in locked.content
        assert b"Try again in 15 minutes" in locked.content
        assert not _signed_in(attacker)
        # The owner, elsewhere, is not locked out by a stranger.
        home = Client(REMOTE_ADDR=HOME)
        assert _sign_in(home, owner.user.username, PASSWORD).status_code == 302

        clock.shift(dt.timedelta(minutes=14, seconds=59))
        assert _sign_in(attacker, owner.user.username, PASSWORD).status_code == 429
        clock.shift(dt.timedelta(seconds=2))
        assert _sign_in(attacker, owner.user.username, PASSWORD).status_code == 302
    assert AuditEvent.objects.filter(action="login.failed", ip=ATTACKER).count() == 5
    assert AuditEvent.objects.filter(action="login.locked_out", ip=ATTACKER).count() == 2


def test_the_lockout_ignores_the_case_of_the_account_name(owner: Actor) -> None:
    attacker = Client(REMOTE_ADDR=ATTACKER)
    name = owner.user.username
    for variant in (name.upper(), name.title(), f" {name}", name, name.swapcase()):
        _sign_in(attacker, variant, "wrong")
    assert _sign_in(attacker, name, PASSWORD).status_code == 429


def test_four_failures_do_not_lock(owner: Actor) -> None:
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(4):
        _sign_in(attacker, owner.user.username, "wrong")
    assert _sign_in(attacker, owner.user.username, PASSWORD).status_code == 302


def test_the_admin_sign_in_has_the_same_lockout(db: None) -> None:
    from django.contrib.auth.models import User

    User.objects.create_superuser("ops", "ops@bunch.test", "ops-password-1")
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(5):
        attacker.post("/admin/login/", {"username": "ops", "password": "nope"})

    response = attacker.post("/admin/login/", {"username": "ops", "password": "ops-password-1"})

    # The same answer as the dashboard's sign-in: the admin signs in through it (2FA too).
    assert response.status_code == 429 and b"Too many failed sign-ins" in response.content
    assert not _signed_in(attacker)


# Reset and invitation links ----------------------------------------------------------


def _early_in_a_minute() -> time_machine.travel:
    """The clock 5 s into the current minute, running: the limits count per fixed minute,
    and a run that crossed a minute's end mid-test started counting afresh (CI, once)."""
    return time_machine.travel(dt.datetime.now(dt.UTC).replace(second=5, microsecond=0))


def test_password_reset_requests_are_rate_limited_per_address_and_per_email(
    owner: Actor,
) -> None:
    client = Client(REMOTE_ADDR=ATTACKER)
    with _early_in_a_minute():
        answers = [
            client.post("/password-reset/", {"email": owner.user.email}).status_code
            for _ in range(7)
        ]
        assert answers == [302] * 5 + [429] * 2
        assert len(mail.outbox) == 5
        other = Client(REMOTE_ADDR=HOME)  # same email from elsewhere: the email's limit holds
        assert other.post("/password-reset/", {"email": owner.user.email}).status_code == 429


def test_reset_and_invitation_links_are_rate_limited_per_address(owner: Actor) -> None:
    client = Client(REMOTE_ADDR=ATTACKER)
    uid = urlsafe_base64_encode(force_bytes(owner.user.pk))
    with _early_in_a_minute():
        codes = [client.get(f"/password-reset/{uid}/guess-{i}/").status_code for i in range(12)]
        assert codes[:10] == [200] * 10  # the "link is invalid" page
        assert codes[10:] == [429, 429]
        assert "Retry-After" in client.get(f"/password-reset/{uid}/x/")


def test_weak_passwords_are_refused_when_setting_one(owner: Actor) -> None:
    client = Client()
    uid = urlsafe_base64_encode(force_bytes(owner.user.pk))
    token = default_token_generator.make_token(owner.user)
    form_url = client.get(f"/password-reset/{uid}/{token}/")["Location"]
    refused = {}
    for weak in ("short1", "password123", "12345678901", "owner@acme.test"):
        response = client.post(form_url, {"new_password1": weak, "new_password2": weak})
        refused[weak] = response.status_code == 200 and b"errorlist" in response.content
    assert refused == dict.fromkeys(refused, True)
    owner.user.refresh_from_db()
    assert owner.user.check_password(PASSWORD)


# API keys ------------------------------------------------------------------------------


def test_an_address_sending_bad_keys_is_refused_even_a_good_key_for_a_minute(
    owner: Actor,
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        guesses = [
            Client(REMOTE_ADDR=ATTACKER, HTTP_AUTHORIZATION=f"Bearer bk_live_guess{i}_xx")
            .get("/api/v1/me")
            .status_code
            for i in range(22)
        ]
        good_from_attacker = Client(
            REMOTE_ADDR=ATTACKER, HTTP_AUTHORIZATION=f"Bearer {owner.key}"
        ).get("/api/v1/me")
        good_from_home = Client(REMOTE_ADDR=HOME, HTTP_AUTHORIZATION=f"Bearer {owner.key}")

        assert guesses == [401] * 20 + [429] * 2
        error = assert_error(good_from_attacker, 429, "too_many_failed_authentications")
        assert "invalid API key" in error["message"]
        assert good_from_attacker["Retry-After"] == "60"
        assert good_from_home.get("/api/v1/me").status_code == 200
        clock.shift(dt.timedelta(seconds=61))
        again = Client(REMOTE_ADDR=ATTACKER, HTTP_AUTHORIZATION=f"Bearer {owner.key}")
        assert again.get("/api/v1/me").status_code == 200


# Sessions ------------------------------------------------------------------------------


def test_signing_in_gives_a_new_session_key(owner: Actor) -> None:
    client = Client()
    client.get("/login/")
    session = client.session
    session["planted"] = "by an attacker"
    session.save()
    client.cookies["sessionid"] = session.session_key
    before = session.session_key

    assert _sign_in(client, owner.user.username, PASSWORD).status_code == 302

    assert client.cookies["sessionid"].value != before


def test_a_session_ends_after_30_idle_minutes(owner: Actor) -> None:
    client = Client()
    with time_machine.travel(START, tick=False) as clock:
        _sign_in(client, owner.user.username, PASSWORD)
        clock.shift(dt.timedelta(minutes=29))
        assert client.get("/gallery/").status_code == 200  # activity renews the session
        clock.shift(dt.timedelta(minutes=29))
        assert client.get("/gallery/").status_code == 200
        clock.shift(dt.timedelta(minutes=31))
        response = client.get("/gallery/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_session_ends_12_hours_after_sign_in_however_active(owner: Actor) -> None:
    client = Client()
    with time_machine.travel(START, tick=False) as clock:
        _sign_in(client, owner.user.username, PASSWORD)
        for _ in range(36):  # a request every 20 minutes for 12 hours
            clock.shift(dt.timedelta(minutes=20))
            assert client.get("/gallery/").status_code == 200
        clock.shift(dt.timedelta(minutes=1))
        response = client.get("/gallery/")
        api = client.get("/api/v1/me")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert api.status_code in (401, 403)
    assert not _signed_in(client)


# Production settings ------------------------------------------------------------------

PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "bunch.example",
    "DJANGO_SECRET_KEY": "s3cr3t-" + "abcdefghij" * 6,
    "PATH": "/usr/bin:/bin",
}
SETTINGS_SCRIPT = """
from django.conf import settings as s
print(s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,
      s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE,
      s.CSRF_COOKIE_SAMESITE, s.SESSION_COOKIE_AGE, s.BUNCH_SESSION_MAX_AGE_S,
      len(s.AUTH_PASSWORD_VALIDATORS))
"""


def _manage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=PRODUCTION,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_cookies_are_host_only_secure_httponly_and_lax() -> None:
    run = _manage("shell", "-c", SETTINGS_SCRIPT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].split() == [
        "__Host-sessionid", "__Host-csrftoken", "True", "True", "True", "True", "Lax", "Lax",
        "1800", "43200", "4",
    ]  # fmt: skip


def test_check_deploy_is_clean_with_production_settings() -> None:
    run = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no issues" in run.stdout


# Content-Security-Policy ----------------------------------------------------------------

INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
INLINE_HANDLER = re.compile(rb"<[^>]+\son[a-z]+\s*=", re.I)
JS_URL = re.compile(rb"""(href|src|action)\s*=\s*["']\s*javascript:""", re.I)


def test_templates_have_no_inline_script_or_event_handler() -> None:
    found = []
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_bytes()
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, JS_URL):
            found += [f"{template.name}: {m.group(0)[:60]!r}" for m in pattern.finditer(text)]
    assert found == []


def test_every_dashboard_page_has_a_csp_without_inline_script(owner: Actor) -> None:
    client = Client()
    client.force_login(owner.user)
    pages = ["/login/", "/gallery/", "/generate/", "/usage/", "/api-keys/", "/webhooks/",
             "/members/", "/batches/", "/admin/login/", "/api/docs/"]  # fmt: skip
    for page in pages:
        response = client.get(page, follow=True)
        policy = response["Content-Security-Policy"]
        script_src = next(p for p in policy.split("; ") if p.startswith("script-src"))
        assert script_src == "script-src 'self'", page
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        assert not INLINE_SCRIPT.search(response.content), page
        assert not INLINE_HANDLER.search(response.content), page
