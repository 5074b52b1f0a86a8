"""`audit_record`: the one way an entry is written."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import models

from audit.context import client_ip, current_request
from audit.models import AuditEvent


def _actor_from_request() -> tuple[Any, str]:
    request = current_request()
    if request is None:
        return None, ""
    auth = getattr(request, "auth", None)  # DRF sets it on the Django request too
    if auth is not None and hasattr(auth, "prefix"):
        return None, f"API key {auth.prefix}… ({auth.name})"
    user = getattr(request, "user", None)
    if user is not None and not isinstance(user, AnonymousUser) and user.is_authenticated:
        return user, user.get_username()
    return None, ""


def audit_record(
    *,
    action: str,
    tenant: Any = None,
    actor: User | None = None,
    api_key: Any = None,
    obj: models.Model | None = None,
    object_label: str = "",
    username: str = "",
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append one entry. The actor is `actor`, else `api_key`, else whoever the current
    request is authenticated as; the IP is the current request's."""
    if actor is not None:
        actor_user, label = actor, actor.get_username()
    elif api_key is not None:
        actor_user, label = None, f"API key {api_key.prefix}… ({api_key.name})"
    else:
        actor_user, label = _actor_from_request()
    request = current_request()
    if ip is None and request is not None:
        ip = client_ip(request)
    return AuditEvent.objects.create(
        action=action,
        tenant=tenant,
        actor_user=actor_user,
        actor_label=label[:254],
        ip=ip,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_label=(object_label or (str(obj) if obj is not None else ""))[:254],
        username=username[:254],
        detail=detail or {},
    )
