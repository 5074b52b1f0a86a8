"""/metrics (Prometheus, bearer token), /readyz (dependencies), and the operators' status
page (staff only)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

import requests
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.errors import json_or_html_404
from ops import collectors, status


def _token_ok(request: HttpRequest) -> bool:
    token = settings.BUNCH_METRICS_TOKEN
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(sent.encode(), token.encode())


def metrics(request: HttpRequest) -> HttpResponse:
    # 404, not 401, so that an unconfigured or unauthorised scrape learns nothing.
    if not _token_ok(request):
        return json_or_html_404(request)
    return HttpResponse(
        generate_latest(collectors.host_registry()), content_type=CONTENT_TYPE_LATEST
    )


def _check(probe: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = probe() or {}
        result: dict[str, Any] = {"status": "ok", **detail}
    except Exception as exc:
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:200]}
    result["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _broker() -> dict[str, Any]:
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
        return {"broker": "redis"}
    from django_q.models import OrmQ

    OrmQ.objects.exists()
    return {"broker": "orm"}


def _storage() -> dict[str, Any]:
    default_storage.exists("readyz-probe")
    return {"backend": type(default_storage).__name__}


def _provider() -> dict[str, Any]:
    """Reachable without calling a model: any HTTP answer from the API's model list."""
    base = (settings.GEMINI_BASE_URL or "https://generativelanguage.googleapis.com").rstrip("/")
    answer = requests.get(
        f"{base}/v1beta/models",
        headers={"x-goog-api-key": settings.GEMINI_API_KEY},
        timeout=(2, 3),
        allow_redirects=False,
    )
    if answer.status_code >= 500:
        raise ConnectionError(f"the model API answered {answer.status_code}")
    return {"http_status": answer.status_code}


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": _check(_database),
        "broker": _check(_broker),
        "storage": _check(_storage),
        "provider": _check(_provider),
    }
    down = [name for name, result in checks.items() if result["status"] != "ok"]
    try:
        alive = collectors.workers_alive(timezone.now())
    except Exception:
        alive = None
    body = {
        "status": "ok" if not down else "unavailable",
        "reason": f"{', '.join(down)} unavailable" if down else "",
        **checks,
        # Shown, not judged: a web host is ready to serve whether or not workers run.
        "workers": {"alive": alive, "status": "ok" if alive else "missing"},
    }
    return JsonResponse(body, status=503 if down else 200)


@staff_member_required
def status_page(request: HttpRequest) -> HttpResponse:
    return render(request, "ops/status.html", status.snapshot())
