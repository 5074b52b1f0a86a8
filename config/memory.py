"""Giving freed C-heap memory back to the operating system.

A worker handles 1.9 MB model responses by the thousand (JSON text, base64, decoded
image). glibc serves blocks that size from its heaps once one has been freed (its mmap
threshold adapts upwards), and a heap only shrinks from its top: the worker's resident
size crept up in steps of tens of MB although the objects were gone
(docs/performance.md). `malloc_trim` returns every whole free page, wherever it sits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)  # glibc only
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where that is not possible
    (no glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
