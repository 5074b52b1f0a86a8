"""Sign-ins, from Django's own signals (the dashboard's and the admin's sign-in page)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from audit.models import AuditEvent
from audit.services import audit_record


@receiver(user_login_failed)
def _failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    if request is None:  # not a request's sign-in (the test client's login(), a script)
        return
    username = str(credentials.get("username", "")).strip().lower()
    audit_record(action=AuditEvent.Action.LOGIN_FAILED, username=username)


@receiver(user_logged_in)
def _succeeded(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is None:
        return
    audit_record(action=AuditEvent.Action.LOGIN_SUCCEEDED, actor=user, username=user.get_username())
