"""The sign-in's second step: a user whose password was right but who has two-factor on is
remembered in the session, not signed in, until the code (accounts/views.py)."""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

PENDING = "bunch_two_factor_pending"
PENDING_FOR_S = 300


def pending_sign_in(request: HttpRequest, user: Any, next_url: str) -> HttpResponse:
    """The password was right; the second factor is still to come (tenants.lockout)."""
    request.session.cycle_key()
    request.session[PENDING] = {
        "user": user.pk,
        "backend": user.backend,
        "next": next_url,
        "since": time.time(),
        "tries": 0,
    }
    return redirect("login-verify")
