"""Dashboard sessions end after 30 idle minutes (`SESSION_COOKIE_AGE`, renewed by every
request) and at the latest 12 hours after sign-in, whatever the activity."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

SIGNED_IN_AT = "bunch_signed_in_at"


class AbsoluteSessionLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            started = float(request.session.setdefault(SIGNED_IN_AT, now))
            if now - started > settings.BUNCH_SESSION_MAX_AGE_S:
                logout(request)  # flushes the session; request.user is now anonymous
                if not request.path.startswith("/api/"):
                    return redirect_to_login(request.get_full_path())
        return self.get_response(request)


def mark_signed_in(sender: object, request: HttpRequest, **kwargs: object) -> None:
    """`user_logged_in`: the 12 hours count from here (login() has already rotated the
    session key, so a session fixed before sign-in is not the one signed in)."""
    if request is not None and hasattr(request, "session"):
        request.session[SIGNED_IN_AT] = time.time()
