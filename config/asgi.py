"""The web's entry point: gunicorn with uvicorn workers (Procfile, `make run`, the bench).

ASGI lets a request that waits (`Prefer: wait`, an event stream) await the job's news
instead of holding one of a fixed number of threads; ordinary views still run in a
thread each, as Django runs sync views under ASGI.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("BUNCH_ASGI", "true")  # settings: PostgreSQL through a pool
application = get_asgi_application()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402

from config.warmup import freeze_startup_objects, warm_up  # noqa: E402  (needs settings)

# The same URLconf, views and middleware the ASGI handler uses, loaded through one
# in-process request before the first real one.
warm_up(WSGIHandler())
freeze_startup_objects()
