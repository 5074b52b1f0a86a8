"""CPU time and memory of process trees, read from /proc (psutil is not installed).

A sampler thread walks each root's tree about once a second. CPU of a process that has
exited is kept at its last sample, so recycled workers still count (less ≤ 1 s each).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def server_pid(name: str) -> int | None:
    """The top process named `name` (e.g. the postmaster), or None: its tree is sampled too.

    Shared servers also serve other work on the machine; their figures are an upper bound.
    """
    comms: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            comms[int(entry.name)] = (comm, int(stat.rsplit(")", 1)[1].split()[1]))
    for pid, (comm, ppid) in comms.items():
        if comm.startswith(name) and not comms.get(ppid, ("", 0))[0].startswith(name):
            return pid
    return None


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def _rss_kb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in kB."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat), to see other load."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


@dataclass
class RoleStats:
    ticks: dict[int, int] = field(default_factory=dict)
    peak_rss_kb: dict[int, int] = field(default_factory=dict)
    rss_series: list[tuple[float, int]] = field(default_factory=list)  # (t, total kB)

    def cpu_seconds(self) -> float:
        return sum(self.ticks.values()) / TICKS

    def peak_process_rss_mb(self) -> float:
        return max(self.peak_rss_kb.values(), default=0) / 1024


class Sampler:
    def __init__(self, roots: dict[str, int], interval: float = 1.0) -> None:
        self.roots = roots
        self.interval = interval
        self.roles = {role: RoleStats() for role in roots}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.started = time.monotonic()

    def start(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        children = _children()
        now = time.monotonic() - self.started
        for role, root in self.roots.items():
            stats = self.roles[role]
            total_rss = 0
            for pid in _tree(root, children):
                ticks = _cpu_ticks(pid)
                if ticks is None:
                    continue
                stats.ticks[pid] = ticks
                rss, hwm = _rss_kb(pid)
                total_rss += rss
                stats.peak_rss_kb[pid] = max(stats.peak_rss_kb.get(pid, 0), hwm, rss)
            stats.rss_series.append((round(now, 1), total_rss))

    def snapshot(self) -> dict[str, float]:
        """CPU seconds per role so far (subtract two snapshots for an interval)."""
        return {role: stats.cpu_seconds() for role, stats in self.roles.items()}
