"""The figures of distribution tasks (the seed's "system analysis" per task): how long, how evenly, how surely, and
how much the upstream was spared, from the per-host rows the runner stored (manager/task_runner.py).

- `duration`: the task's start to its end (or to now while it runs), seconds.
- `host_seconds`: p50, p95 and max over the hosts that finished (succeeded or failed) of their job's start to end.
- `success_rate`: hosts succeeded / hosts targeted (null for a task of no hosts).
- `from_upstream`, `from_peers`: bytes the hosts fetched, summed; `saved_ratio` = from_peers / (both) (null when
  nothing was fetched: every blob was already there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from .models import Task, TaskHost

COLUMNS = ("id", "kind", "state", "created", "duration", "hosts", "succeeded", "failed", "success_rate",
           "host_p50", "host_p95", "host_max", "from_upstream", "from_peers", "saved_ratio")


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (`share` in 0..1) of `values`; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def task_figures(task: Task, rows: Sequence[TaskHost], now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    finished = [row.finished_at - row.started_at for row in rows
                if row.state in ("succeeded", "failed") and row.started_at and row.finished_at]
    succeeded = sum(row.state == "succeeded" for row in rows)
    failed = sum(row.state == "failed" for row in rows)
    upstream = sum(row.from_upstream for row in rows)
    peers = sum(row.from_peers for row in rows)
    duration = None
    if task.started_at:
        duration = round((task.finished_at or now) - task.started_at, 3)
    return {
        "id": task.id, "kind": task.kind, "state": task.state, "created": task.created_at, "duration": duration,
        "hosts": len(rows), "succeeded": succeeded, "failed": failed,
        "success_rate": round(succeeded / len(rows), 4) if rows else None,
        "host_p50": _rounded(percentile(finished, 0.5)), "host_p95": _rounded(percentile(finished, 0.95)),
        "host_max": _rounded(max(finished) if finished else None),
        "from_upstream": upstream, "from_peers": peers,
        "saved_ratio": round(peers / (peers + upstream), 4) if peers + upstream else None,
        "failed_hosts": [{"host": row.host_id, "error": row.error} for row in rows if row.state == "failed"],
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def summary(figures: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Over several tasks: how many, the share of the finished ones that succeeded, bytes and egress saved."""
    finished = [f for f in figures if f["state"] in ("succeeded", "failed", "stopped")]
    upstream = sum(f["from_upstream"] for f in figures)
    peers = sum(f["from_peers"] for f in figures)
    durations = [f["duration"] for f in finished if f["duration"] is not None]
    return {
        "tasks": len(figures), "finished": len(finished),
        "succeeded": sum(f["state"] == "succeeded" for f in finished),
        "success_rate": round(sum(f["state"] == "succeeded" for f in finished) / len(finished), 4)
        if finished else None,
        "duration_p50": _rounded(percentile(durations, 0.5)), "duration_p95": _rounded(percentile(durations, 0.95)),
        "duration_max": _rounded(max(durations) if durations else None),
        "from_upstream": upstream, "from_peers": peers,
        "saved_ratio": round(peers / (peers + upstream), 4) if peers + upstream else None,
    }
