"""How many requests of a web process run synchronous code (a view, a database step) at
once, under ASGI.

Django runs each sync view of an ASGI request in a thread of its own, with no upper
bound: a thousand clients submitting at once were a thousand threads fighting over the
SQLite write lock (measured: 131 of 1,000 answered 500 "database is locked"). A process
therefore gives out `BUNCH_WEB_SYNC_SLOTS` slots (as many threads as the WSGI server
had); a request waits for one on the event loop, holding nothing.

Work that may wait for a long time (`Prefer: wait`, event streams: `generation.streams`)
gives its request's slot back while it awaits, takes one per database step, and may hold
at most all but `BUNCH_WEB_SYNC_SLOTS_KEPT` of them, so a burst of waiting submits never
queues an ordinary request (`GET /api/v1/me`) behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator

from django.conf import settings


class Slots:
    def __init__(self, size: int, kept: int) -> None:
        self.all = asyncio.Semaphore(size)
        self.waits = asyncio.Semaphore(max(1, size - kept))

    @contextlib.asynccontextmanager
    async def step(self, *, waiting: bool) -> AsyncIterator[None]:
        """Hold a slot for one synchronous step; `waiting` work uses its own lane too."""
        async with contextlib.AsyncExitStack() as stack:
            if waiting:
                await stack.enter_async_context(self.waits)
            await stack.enter_async_context(self.all)
            yield


class HeldSlot:
    """The slot a request took on arrival (`config.middleware.SyncSlotsMiddleware`)."""

    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        self.held = False

    async def acquire(self) -> None:
        await self.slots.all.acquire()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.all.release()


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Slots] = weakref.WeakKeyDictionary()


def slots() -> Slots:
    loop = asyncio.get_running_loop()
    found = _per_loop.get(loop)
    if found is None:
        size = int(getattr(settings, "BUNCH_WEB_SYNC_SLOTS", 8))
        kept = int(getattr(settings, "BUNCH_WEB_SYNC_SLOTS_KEPT", 2))
        found = _per_loop[loop] = Slots(size, kept)
    return found
