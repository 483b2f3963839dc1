"""CPU seconds used by this process and everything it started, and by the whole machine
(Linux /proc; no psutil).

:func:`cpu_seconds` counts this process, its finished children (terraform and, through terraform,
the provider plugins) and its live descendants (the moto server, the Prefect test server): take a
reading when no terraform is running, e.g. before and after a timed pass. :func:`machine_seconds`
is the busy CPU time of every process on the machine, so the difference is what OTHER processes
(another test run on a shared machine) took from the cores meanwhile.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == pid]
        found += kids
        frontier += kids
    return found


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and all its descendants, so far."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    for pid in _descendants(os.getpid()):
        fields = _stat(pid)
        if fields:  # utime, stime, cutime, cstime are fields 14-17 (index 11-14 here)
            total += sum(int(v) for v in fields[11:15]) / _TICKS
    return total


def machine_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores, idle and iowait excluded)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def load_average() -> str:
    """The 1/5/15-minute load averages, as /proc/loadavg says."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
