from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from config.errors import json_or_html_404


def _queue_status() -> dict[str, object]:
    try:
        if settings.REDIS_URL:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
            return {"status": "ok", "broker": "redis"}
        from django_q.models import OrmQ

        return {"status": "ok", "broker": "orm", "queued_tasks": OrmQ.objects.count()}
    except Exception as exc:
        return {"status": "error", "error": type(exc).__name__}


def healthz(request: HttpRequest) -> JsonResponse:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        database: dict[str, object] = {"status": "ok", "vendor": connection.vendor}
    except Exception as exc:
        database = {"status": "error", "error": type(exc).__name__}
    queue = (
        _queue_status()
        if database["status"] == "ok" or settings.REDIS_URL
        else {"status": "unknown"}
    )
    healthy = database["status"] == "ok"
    body = {
        "status": "ok" if healthy else "unavailable",
        "database": database,
        "queue": queue,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    return JsonResponse(body, status=200 if healthy else 503)


@csrf_exempt  # any method, any client: the answer is the same JSON 404
def api_not_found(request: HttpRequest) -> JsonResponse:
    return json_or_html_404(request)
