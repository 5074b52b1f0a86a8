"""Sign-in lock-out: after 5 failed sign-ins for one account name from one address within
15 minutes, that pair is locked until the oldest of those failures is 15 minutes old.

Failures are the audit log's `login.failed` entries (recorded from Django's
`user_login_failed` signal, so the dashboard's and the admin's sign-in both count), which
every web process shares through the database. While locked, the password is not even
checked: a right guess looks exactly like a wrong one. Other addresses can still sign in
to the same account, so a stranger cannot lock its owner out from elsewhere.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.services import two_factor_active
from accounts.signin import pending_sign_in
from audit.context import client_ip
from audit.models import AuditEvent
from audit.services import audit_record


def normalized(username: str) -> str:
    return username.strip().lower()[:254]


def locked_for(
    *, username: str, ip: str | None, now: dt.datetime | None = None
) -> dt.timedelta | None:
    """How long the (account name, address) pair stays locked, or None."""
    now = now or timezone.now()
    window = dt.timedelta(seconds=settings.BUNCH_LOGIN_LOCKOUT_S)
    limit = settings.BUNCH_LOGIN_FAILURE_LIMIT
    failures = list(
        AuditEvent.objects.filter(
            action=AuditEvent.Action.LOGIN_FAILED,
            username=normalized(username),
            ip=ip,
            created_at__gt=now - window,
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(failures) < limit:
        return None
    return failures[-1] + window - now


class LockoutFormMixin:
    """Refuses a locked pair before the password is checked, in words."""

    request: HttpRequest | None
    locked = False

    def clean(self) -> dict[str, Any]:
        username = self.data.get("username", "")  # type: ignore[attr-defined]
        if self.request is not None and username:
            ip = client_ip(self.request)
            remaining = locked_for(username=username, ip=ip)
            if remaining is not None:
                self.locked = True
                audit_record(
                    action=AuditEvent.Action.LOGIN_LOCKED_OUT, username=normalized(username)
                )
                minutes = max(1, math.ceil(remaining.total_seconds() / 60))
                raise forms.ValidationError(
                    f"Too many failed sign-ins for this account from your address. Try again "
                    f"in {minutes} minute{'s' if minutes != 1 else ''}, or reset your password.",
                    code="locked_out",
                )
        return super().clean()  # type: ignore[misc, no-any-return]


class LoginForm(LockoutFormMixin, AuthenticationForm):
    pass


class AdminLoginForm(LockoutFormMixin, AdminAuthenticationForm):
    pass


class LoginView(auth_views.LoginView):
    """Django's sign-in page with the lock-out (a locked answer is a 429), then the second
    factor for users who have it on."""

    authentication_form = LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form: Any) -> HttpResponse:
        user = form.get_user()
        if two_factor_active(user):  # not signed in yet: the code comes first
            return pending_sign_in(self.request, user, self.get_success_url())
        return super().form_valid(form)

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        if getattr(form, "locked", False):
            response.status_code = 429
        return response


# API keys -----------------------------------------------------------------------------
# Counted in Django's cache: shared by every process when CACHES is Redis (set with
# REDIS_URL), per process with the default local-memory cache. A failure is rare for an
# honest client, so the count stays out of the database and off the hot path.


def _key_failures_name(ip: str | None) -> str:
    return f"bunch:api-key-failures:{ip or 'unknown'}"


def api_key_failures_exceeded(request: HttpRequest) -> bool:
    from django.core.cache import cache

    count = cache.get(_key_failures_name(client_ip(request)), 0)
    return int(count) >= settings.BUNCH_API_KEY_FAILURES_PER_MINUTE


def api_key_failure_record(request: HttpRequest) -> None:
    from django.core.cache import cache

    name = _key_failures_name(client_ip(request))
    if cache.add(name, 1, timeout=60):
        return
    try:
        cache.incr(name)
    except ValueError:  # expired between add and incr
        cache.add(name, 1, timeout=60)


# Password reset and invitation links -------------------------------------------------


def rate_limited(scope: str, *, per_minute: int, field: str | None = None) -> Any:
    """A view decorator: at most `per_minute` POSTs (all methods when `field` is None and
    the view reads a token from its URL) per address, and per value of form `field`,
    else a 429 page that says when to try again."""
    from functools import wraps

    from django.shortcuts import render

    from tenants import ratelimit

    def decorate(view: Any) -> Any:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            counts = request.method == "POST" or field is None
            if counts:
                keys = [f"{scope}:ip:{client_ip(request)}"]
                value = request.POST.get(field, "") if field else ""
                if value:
                    keys.append(f"{scope}:{field}:{normalized(value)}")
                results = ratelimit.hit_many(keys, per_minute).values()
                if not all(r.allowed for r in results):
                    wait = max(r.reset_seconds for r in results)
                    response = render(
                        request, "registration/rate_limited.html", {"wait": wait}, status=429
                    )
                    response["Retry-After"] = str(wait)
                    return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


class AdminLoginView(LoginView):
    """The admin's sign-in: the same lock-out and second factor as the dashboard's."""

    authentication_form = AdminLoginForm  # type: ignore[assignment]
    template_name = "admin/login.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        from django.contrib import admin

        return {**admin.site.each_context(self.request), **super().get_context_data(**kwargs)}
