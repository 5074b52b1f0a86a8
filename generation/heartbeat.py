"""Worker heartbeats: each django-q2 worker process writes a row every `BUNCH_HEARTBEAT_S`,
from a daemon thread, so a dead or stuck-at-start process shows as missing. A worker that
is stopping gracefully (generation/shutdown.py) deletes its row: a deploy's restart is no
lost worker."""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from generation import shutdown
from generation.models import WorkerHeartbeat

FORGET_AFTER = dt.timedelta(days=1)
_started: threading.Thread | None = None


def beat(*, host: str, pid: int, started_at: dt.datetime, now: dt.datetime | None = None) -> None:
    now = now or timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        host=host, pid=pid, started_at=started_at, defaults={"seen_at": now}
    )
    WorkerHeartbeat.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()


def leave(*, host: str, pid: int, started_at: dt.datetime) -> None:
    WorkerHeartbeat.objects.filter(host=host, pid=pid, started_at=started_at).delete()


def start() -> threading.Thread:
    """Beat now and then every `BUNCH_HEARTBEAT_S` for the life of this process (once per
    process, however often django-q2 says the worker spawned)."""
    global _started
    if _started is not None and _started.is_alive():
        return _started
    host, pid, started_at = socket.gethostname(), os.getpid(), timezone.now()
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                close_old_connections()
                if shutdown.draining():
                    leave(host=host, pid=pid, started_at=started_at)
                    return
                beat(host=host, pid=pid, started_at=started_at)
            except Exception:  # a database hiccup must not kill the worker; next beat
                if stop.wait(shutdown.DRAIN_CHECK_S):
                    return
            if shutdown.rest(float(settings.BUNCH_HEARTBEAT_S), stop):
                return

    thread = threading.Thread(target=loop, name="bunch-heartbeat", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    _started = thread
    return thread
