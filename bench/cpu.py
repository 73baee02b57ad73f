"""CPU seconds a storm's daemons spent, per GB they received and served: where a 2-core machine's time goes.

A daemon is a `Proc` leading a session of its own, so its CPU is the sum over every process of that session
(user + system, from /proc/PID/stat, children it reaped included), sampled as the pulls start and as they end:
the start-up (Python's imports) is not counted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .procs import Proc
from .results import CpuPerByte

_TICK = os.sysconf("SC_CLK_TCK")


def session_cpu_seconds(leader: int) -> float:
    """User plus system CPU of every live process in the session `leader` leads, with its reaped children's."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may hold spaces and parentheses: the fields start after the last ")".
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields[0] is the state (stat's 3rd field): session is stat's 6th, utime..cstime its 14th to 17th.
        if int(fields[3]) == leader:
            total += sum(int(v) for v in fields[11:15])
    return total / _TICK


class StormCpu:
    """The CPU each kind of daemon used from construction (the pulls' start) to `per_byte`."""

    def __init__(self, daemons: dict[str, list[Proc]]) -> None:
        self._before = {p.pid: session_cpu_seconds(p.pid) for procs in daemons.values() for p in procs}

    def used(self, procs: Sequence[Proc]) -> float:
        # A daemon started during the storm (a restarted supernode) counts from zero; a killed one, whose CPU can no
        # longer be read, counts nothing rather than less than nothing.
        return sum(max(0.0, session_cpu_seconds(p.pid) - self._before.get(p.pid, 0.0)) for p in procs)

    def per_byte(self, kind: str, procs: Sequence[Proc], received: float, served: float) -> CpuPerByte:
        return CpuPerByte(kind, self.used(procs), int(received), int(served))
