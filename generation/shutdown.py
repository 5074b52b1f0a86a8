"""A worker host's graceful stop: SIGTERM to `manage.py qcluster`'s main process.

django-q2 stops a cluster on SIGTERM (or SIGINT) to its main process: the pusher stops
taking tasks from the broker and each worker process finishes the tasks it holds
(`shared/reference/django-q2.md`). A runner task would meanwhile keep claiming jobs for
up to `BUNCH_TASK_BUDGET_S`, so the cluster's stop also marks the host as *draining*, in
a word of shared memory made before the cluster forks (so its sentinel and every worker
process, forked from it, read the same word):

- runner loops claim no more jobs and start no new provider calls;
- calls in flight run on until `BUNCH_WORKER_STOP_S` after the stop began; those still
  running then are cancelled, which releases their provider-budget slots;
- every job not finished goes back to the head of its tenant's queue with its stored
  images, its attempts and deferrals unchanged (`runner.hand_back`), and a doorbell is
  rung for it so another worker (or this host's next cluster) takes it;
- a doorbell that the host's broker consumer took in its last moment is rung again by the
  loop it starts, which claims nothing (the sweep would find the job anyway, later).

Only the fork start method shares the word (Linux, where django-q2 uses it).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import threading
import time
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from django.conf import settings

# Epoch seconds at which the stop began; 0 while running. None until a cluster starts here.
_began: Synchronized[float] | Any = None


def arm() -> None:
    """Make the shared word (in the process that is about to fork the cluster)."""
    global _began
    if _began is None:
        _began = multiprocessing.get_context("fork").RawValue(ctypes.c_double, 0.0)


def begin(*, now: float | None = None) -> None:
    """The cluster was told to stop: every process of it starts draining."""
    if _began is not None and not _began.value:
        _began.value = now if now is not None else time.time()


def draining() -> bool:
    return _began is not None and bool(_began.value)


def deadline() -> float | None:
    """Epoch seconds by which calls still in flight are cut off (None: not draining)."""
    if not draining():
        return None
    return float(_began.value) + float(settings.BUNCH_WORKER_STOP_S)


def install() -> None:
    """Arm before django-q2 forks a cluster, and begin draining when it is told to stop
    (its SIGTERM/SIGINT handler calls `Cluster.stop`, as `--run-once` and tests do)."""
    from django_q.cluster import Cluster

    if getattr(Cluster, "_bunch_drains", False):
        return
    start, stop = Cluster.start, Cluster.stop

    def start_armed(self: Cluster) -> int:
        arm()
        return start(self)

    def stop_draining(self: Cluster) -> bool:
        begin()
        return stop(self)

    Cluster.start = start_armed  # type: ignore[method-assign]
    Cluster.stop = stop_draining  # type: ignore[method-assign]
    Cluster._bunch_drains = True  # type: ignore[attr-defined]


# How soon a worker's background thread (heartbeat, sweeper) notices that it is stopping.
DRAIN_CHECK_S = 0.5


def rest(seconds: float, stop: threading.Event) -> bool:
    """A background thread's pause of up to `seconds`, cut short when the worker starts
    draining; True when `stop` was set, and the thread should end."""
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0 and not draining():
        if stop.wait(min(left, DRAIN_CHECK_S)):
            return True
    return False
