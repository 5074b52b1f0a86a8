"""Make a fresh web process ready before its first real request.

Django imports the URLconf, every view and DRF's machinery on the first request; a new
gunicorn worker under load has all of its threads wait for that at once (measured: the
first ~0.4 s of requests took 300–400 ms instead of ~6 ms). `warm_up` does that work at
start-up with one unauthenticated API request answered in-process (no database query).

`freeze_startup_objects` then moves everything loaded so far out of the cyclic garbage
collector's sight (`gc.freeze`): a full collection of a web process walked its ~105,000
start-up objects, 40–50 ms with every thread of the process stopped. Used by the web
(`config/wsgi.py`) and by each django-q2 worker process (`generation/apps.py`).

`collect_young_objects_less_often` (the web only) raises the youngest generation's
threshold. A page of 200 jobs allocates ~100,000 container objects; at the default
threshold (700) the collector ran ~16 times during it, each time promoting the request's
still-live objects, which are cyclic garbage once the answer is sent (DRF's request and
its parser context, model instances and their state), until the oldest generation's
collection walked everything the process had made since start-up: 0.2–0.5 s in one read
in eight or so, the p95 of the long pages (docs/performance.md, third pass). At 50,000 a
page is collected once or twice and its garbage dies young.
"""

from __future__ import annotations

import gc
import io
import logging
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.urls import get_resolver

logger = logging.getLogger(__name__)


def warm_up(application: WSGIHandler) -> None:
    get_resolver().url_patterns  # noqa: B018  (imports every view)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/v1/me",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    request_log = logging.getLogger("django.request")  # its 401 is expected, not news
    was_disabled, request_log.disabled = request_log.disabled, True
    try:
        for _ in application(environ, start_response):  # type: ignore[arg-type]
            pass
    except Exception:  # a warm-up must never stop the server from starting
        logger.warning("Warm-up request failed", exc_info=True)
    finally:
        request_log.disabled = was_disabled
    if statuses and not statuses[0].startswith("401"):
        logger.warning("Warm-up request answered %s, expected 401", statuses[0])


def freeze_startup_objects() -> None:
    """Leave what start-up loaded (modules, URLconf, models) out of future collections."""
    gc.collect()
    gc.freeze()


# The youngest generation's threshold for a web process; the older two as Python's.
WEB_GC_THRESHOLDS = (50_000, 10, 10)


def collect_young_objects_less_often() -> None:
    gc.set_threshold(*WEB_GC_THRESHOLDS)
