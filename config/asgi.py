"""The web's entry point: gunicorn with uvicorn workers (Procfile, `make run`, the bench).

ASGI lets a request that waits (`Prefer: wait`, an event stream) await the job's news
instead of holding one of a fixed number of threads; every other request runs whole in
one thread of a fixed pool, as under a threaded WSGI server (`config/asgi_front.py`).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("BUNCH_ASGI", "true")  # settings: PostgreSQL through a pool
waiting = get_asgi_application()

from django.conf import settings  # noqa: E402

from config.asgi_front import FrontApplication, SyncViewsHandler  # noqa: E402
from config.warmup import (  # noqa: E402  (needs settings)
    collect_young_objects_less_often,
    freeze_startup_objects,
    warm_up,
)
from generation.streams import wait_answer  # noqa: E402

# Event streams go through Django's ASGI handler; every other request runs whole in one
# thread of the process's sync slots, and a submit that waits then awaits its job on the
# event loop (config/asgi_front.py).
handler = SyncViewsHandler()
application = FrontApplication(
    waiting, handler, threads=settings.BUNCH_WEB_SYNC_SLOTS, answer_wait=wait_answer
)
# The same URLconf, views and middleware, loaded through one in-process request before
# the first real one.
warm_up(handler)
freeze_startup_objects()
collect_young_objects_less_often()
