"""Each worker process sweeps from a thread of its own, every `BUNCH_SWEEP_EVERY_S`.

The `generation.sweep` schedule is a task on the broker's queue like the job doorbells:
while the workers run long loops through a backlog it waited behind them for minutes
(docs/reliability.md), and so did the jobs of killed workers. A thread in every worker
process needs no queue: as long as one worker process lives, a dead worker's job is back
in the queue within its lease plus `BUNCH_SWEEP_EVERY_S`. The shared cache elects one
sweep per period across the processes (with the in-process cache of a Redis-less host,
one per process); the schedule stays, for a host whose workers are all gone and back.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

from generation import shutdown

logger = logging.getLogger(__name__)
_started: threading.Thread | None = None


def start() -> threading.Thread | None:
    """Sweep when due, for the life of this process (once per process); None when off."""
    global _started
    every = float(settings.BUNCH_SWEEP_EVERY_S)
    if every <= 0:
        return None
    if _started is not None and _started.is_alive():
        return _started
    stop = threading.Event()

    def loop() -> None:
        from generation.tasks import sweep_if_due

        while not shutdown.draining():
            try:
                close_old_connections()
                sweep_if_due()
            except Exception:  # a sweep must never end the thread; the next one tries
                logger.warning("The worker's sweep failed", exc_info=True)
            if shutdown.rest(min(every, 1.0), stop):  # (one cache round trip a look)
                return

    thread = threading.Thread(target=loop, name="bunch-sweeper", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    _started = thread
    return thread
