"""Two-factor pages: the sign-in's second step, and a user's own two-factor settings."""

from __future__ import annotations

import time
from typing import Any

import segno
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import services
from accounts.models import TwoFactor
from accounts.signin import PENDING, PENDING_FOR_S
from audit.models import AuditEvent
from audit.services import audit_record
from config.errors import BunchError

TRIES = 5
NEW_CODES = "bunch_two_factor_new_codes"


def _pending(request: HttpRequest) -> dict[str, Any] | None:
    pending = request.session.get(PENDING)
    if not pending or time.time() - pending["since"] > PENDING_FOR_S:
        request.session.pop(PENDING, None)
        return None
    return dict(pending)


def two_factor_verify(request: HttpRequest) -> HttpResponse:
    pending = _pending(request)
    if pending is None:
        messages.info(request, "Sign in again: the sign-in waited too long for its code.")
        return redirect("login")
    user = User.objects.filter(pk=pending["user"], is_active=True).first()
    if user is None:
        return redirect("login")
    error = ""
    if request.method == "POST":
        code = request.POST.get("code", "")
        if services.two_factor_check(user=user, code=code):
            del request.session[PENDING]
            login(request, user, backend=pending["backend"])
            target = pending["next"]
            safe = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
            return redirect(target if safe else "dashboard:home")
        pending["tries"] += 1
        audit_record(
            action=AuditEvent.Action.LOGIN_FAILED,
            username=user.get_username().lower(),
            detail={"reason": "two_factor_code"},
        )
        if pending["tries"] >= TRIES:
            del request.session[PENDING]
            messages.error(request, "Too many wrong codes. Sign in again.")
            return redirect("login")
        request.session[PENDING] = pending
        error = "That code is not right. Use the current code from your app, or a recovery code."
    status = 400 if error else 200
    return render(request, "registration/two_factor.html", {"error": error}, status=status)


def _qr_svg(uri: str) -> str:
    return str(segno.make(uri, error="m").svg_inline(scale=5, dark="#111827", light="#ffffff"))


@login_required
def two_factor_settings(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    error = ""
    if request.method == "POST":
        action = request.POST.get("action", "")
        code = request.POST.get("code", "")
        try:
            if action == "start":
                services.two_factor_begin(user=user)
            elif action == "confirm":
                request.session[NEW_CODES] = services.two_factor_confirm(user=user, code=code)
                messages.success(request, "Two-factor sign-in is on.")
            elif action == "disable":
                services.two_factor_disable(user=user, code=code)
                messages.success(request, "Two-factor sign-in is off.")
            elif action == "renew":
                if not services.two_factor_check(user=user, code=code):
                    raise services.TwoFactorError("That code is not right.")
                request.session[NEW_CODES] = services.recovery_codes_renew(user=user)
            return redirect("account-two-factor")
        except BunchError as exc:
            error = exc.message
    device = TwoFactor.objects.filter(user=user).first()
    context = {
        "device": device,
        "active": bool(device and device.active),
        "qr": _qr_svg(services.provisioning_uri(device)) if device and not device.active else "",
        "secret_groups": " ".join(device.secret[i : i + 4] for i in range(0, 32, 4))
        if device and not device.active
        else "",
        "new_codes": request.session.pop(NEW_CODES, None),
        "codes_left": services.recovery_codes_left(user),
        "required": request.GET.get("required") == "1",
        "error": error,
    }
    return render(request, "dashboard/two_factor.html", context, status=400 if error else 200)
