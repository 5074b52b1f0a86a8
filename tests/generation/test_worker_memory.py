"""config.memory, which the runner calls: freed C-heap pages go back to the system."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh process: a long-lived test process's heap has holes that the small
# blocks below would fill, so how much stays resident would depend on earlier tests.
SCRIPT = """
import os
from config.memory import release_free_memory

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

size = 1_900_000  # a model response
first = os.urandom(size)
del first  # glibc now serves blocks this size from its heap, not from mmap
buffers, pins = [], []
for _ in range(100):
    buffers.append(os.urandom(size))
    pins.append(bytearray(1024))  # a small malloc block after each: the heap cannot shrink
buffers.clear()
before = rss_mb()
released = release_free_memory()
print(released, round(before), round(rss_mb()))
"""


def test_freed_response_sized_buffers_are_returned_to_the_system() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    released, before, after = run.stdout.split()

    assert released == "True"
    assert int(before) - int(after) > 100  # MB, of the 190 MB freed
