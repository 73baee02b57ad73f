"""The machine a benchmark ran on, and how busy it was: figures mean little without both."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .procs import CommandFailed, run


@dataclass(frozen=True, slots=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gib: float
    kernel: str
    python: str
    tools: dict[str, str]

    def describe(self) -> str:
        tools = ", ".join(f"{name} {version}" for name, version in self.tools.items())
        return (
            f"{self.cpus} CPUs ({self.cpu_model}), {self.memory_gib:.1f} GiB memory, Linux {self.kernel}, "
            f"Python {self.python}; {tools}"
        )


def machine() -> Machine:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return Machine(
        cpus=len(os.sched_getaffinity(0)),
        cpu_model=model,
        memory_gib=mem_kib / (1 << 20),
        kernel=platform.release(),
        python=platform.python_version(),
        tools={
            "docker-registry": _version(["docker-registry", "--version"]),
            "skopeo": _version(["skopeo", "-v"]),
            "podman": _version(["podman", "--version"]),
            "containerd": _version(["containerd", "--version"]),
        },
    )


def _version(args: list[str]) -> str:
    try:
        text = run(args, timeout=10.0, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return text.split()[-1] if text else "?"


def code_version() -> str:
    """The commit the measured code is at, and whether the tree had uncommitted changes (read-only git). Changes
    under docs/ do not count: the report pages a run writes are changed by that run itself."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], timeout=10.0).stdout.strip()
        dirty = run(
            # --no-optional-locks: never write the index of a tree other people work in.
            ["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
             ".", ":(exclude)docs"],
            timeout=10.0,
        ).stdout
    except (OSError, subprocess.TimeoutExpired, CommandFailed):
        return "unknown (not a git checkout)"
    return f"{commit}{' with uncommitted changes' if dirty.strip() else ''}"


def load_average() -> float:
    return os.getloadavg()[0]


class CpuMeter:
    """Share of all CPUs' time that was busy between construction and `busy()` (from /proc/stat)."""

    def __init__(self) -> None:
        self._start = _cpu_times()

    def busy(self) -> float:
        end = _cpu_times()
        total = end[0] - self._start[0]
        idle = end[1] - self._start[1]
        return 1.0 - idle / total if total > 0 else 0.0


def _cpu_times() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    total = sum(fields[:8])
    return total, fields[3] + fields[4]
