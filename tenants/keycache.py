"""API keys as this process last read them, with their tenant and plan: at most
`BUNCH_API_KEY_CACHE_S` old.

Authentication was a third of a submit's time (one query joining key, tenant and plan on
every request). A web process now reads a key at most once per window; every request gets
fresh model instances built from the remembered row, so nothing one request changes leaks
into another.

What the window means: a key revoked, a tenant suspended or moved to another plan, takes
effect at once in the process that made the change (it forgets everything it remembers,
see `forget_all`, wired to the models' signals and called by the services that write
with `update()`) and within the window in every other process. Set the window to 0 to
read the key on every request.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from django.conf import settings
from django.db import models

from tenants.models import ApiKey, Plan, Tenant

_MAX_ENTRIES = 10_000  # distinct keys remembered before the whole map is dropped
_lock = threading.Lock()
# prefix → (read at, monotonic s; the three rows as value tuples, or None: no such key)
_rows: dict[str, tuple[float, tuple[tuple[Any, ...], ...] | None]] = {}
_clock = time.monotonic  # tests move it
_MODELS: tuple[type[models.Model], ...] = (ApiKey, Tenant, Plan)


def _names(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


def _read(prefix: str) -> tuple[tuple[Any, ...], ...] | None:
    api_key = ApiKey.objects.select_related("tenant__plan").filter(prefix=prefix).first()
    if api_key is None:
        return None
    instances = (api_key, api_key.tenant, api_key.tenant.plan)
    return tuple(tuple(getattr(obj, name) for name in _names(type(obj))) for obj in instances)


def _build(rows: tuple[tuple[Any, ...], ...]) -> ApiKey:
    key_row, tenant_row, plan_row = (
        # JSON values (lists, dicts) are copied: a request may change its own instance.
        tuple(copy.deepcopy(v) if isinstance(v, list | dict) else v for v in row)
        for row in rows
    )
    api_key = ApiKey.from_db("default", _names(ApiKey), key_row)
    tenant = Tenant.from_db("default", _names(Tenant), tenant_row)
    tenant.plan = Plan.from_db("default", _names(Plan), plan_row)
    api_key.tenant = tenant
    return api_key


def api_key_by_prefix(prefix: str) -> ApiKey | None:
    """The key with this public prefix, its tenant and plan loaded; None if there is none."""
    window = float(settings.BUNCH_API_KEY_CACHE_S)
    if window <= 0:
        rows = _read(prefix)
        return _build(rows) if rows else None
    now = _clock()
    entry = _rows.get(prefix)
    if entry is None or now - entry[0] >= window:
        entry = (now, _read(prefix))
        with _lock:
            if len(_rows) >= _MAX_ENTRIES:
                _rows.clear()
            _rows[prefix] = entry
    return _build(entry[1]) if entry[1] else None


def forget_all(**_signal_kwargs: Any) -> None:
    """Read every key again on its next use (a key, tenant or plan changed)."""
    with _lock:
        _rows.clear()
