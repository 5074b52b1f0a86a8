"""Gunicorn's worker class for the web: uvicorn (uvloop, httptools) serving `config.asgi`."""

from typing import Any

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    # Django has no lifespan handler; "off" spares the start-up message saying so.
    CONFIG_KWARGS: dict[str, Any] = {"loop": "auto", "http": "auto", "lifespan": "off"}
