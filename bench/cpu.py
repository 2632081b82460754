"""How much CPU the bench had: its own processes' share, and everyone else's, during a run.

The machine is shared: a test suite started by someone else during a run takes cores from
the worker and the dev server, and moves every number. Counting the busy time of the whole
machine (``/proc/stat``) and of the bench's own process tree (this process, the dev server,
the worker) over the same window tells the two apart, so a result says what it ran under.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Snapshot:
    machine_busy: int  # ticks, all CPUs
    ours: dict[int, int]  # pid -> ticks, the bench's process tree


@dataclass(frozen=True)
class Usage:
    """Cores used on average over a window: 1.0 is one core busy the whole time."""

    ours: float
    others: float
    process_seconds: float  # CPU time of the one process asked for (the worker)


def snapshot() -> Snapshot:
    return Snapshot(_machine_busy(), _tree_ticks(os.getpid()))


def usage(before: Snapshot, after: Snapshot, seconds: float, process: int) -> Usage:
    # A process of the tree started during the window counts from zero.
    ours = sum(ticks - before.ours.get(pid, 0) for pid, ticks in after.ours.items())
    others = after.machine_busy - before.machine_busy - ours
    own = after.ours.get(process, 0) - before.ours.get(process, 0)
    return Usage(ours / TICKS / seconds, max(others, 0) / TICKS / seconds, own / TICKS)


def _machine_busy() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq + steal


def _tree_ticks(root: int) -> dict[int, int]:
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        rest = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(rest[1])
        ticks[pid] = int(rest[11]) + int(rest[12])  # utime + stime, all threads
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: ticks[pid] for pid in tree if pid in ticks}
