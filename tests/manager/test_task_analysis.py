"""A task's figures from its per-host rows: duration, per-host percentiles, success rate, bytes and egress saved."""

from __future__ import annotations

from manager.models import Task, TaskHost
from manager.task_analysis import percentile, summary, task_figures


def _task(state: str, started: float | None = 100.0, finished: float | None = 160.0) -> Task:
    return Task(id=7, kind="image", state=state, created_at=90.0, started_at=started, finished_at=finished,
                spec={}, targets={})


def _host(name: str, state: str, seconds: float | None, upstream: int = 0, peers: int = 0, error: str = "") -> TaskHost:
    finished = None if seconds is None else 100.0 + seconds
    return TaskHost(task_id=7, host_id=name, state=state, started_at=100.0, finished_at=finished,
                    from_upstream=upstream, from_peers=peers, error=error)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 1.0)) == (10.0, 19.0, 20.0)
    assert percentile([], 0.5) is None and percentile([3.0], 0.95) == 3.0


def test_a_task_with_a_failed_host_says_which_and_counts_only_finished_hosts_in_the_percentiles() -> None:
    rows = [_host("a", "succeeded", 10.0, upstream=100), _host("b", "succeeded", 20.0, peers=100),
            _host("c", "failed", 30.0, peers=50, error="disk full"), _host("d", "running", None, peers=10)]
    figures = task_figures(_task("running", finished=None), rows, now=130.0)
    assert figures["duration"] == 30.0  # running: up to now
    assert (figures["hosts"], figures["succeeded"], figures["failed"], figures["success_rate"]) == (4, 2, 1, 0.5)
    assert (figures["host_p50"], figures["host_p95"], figures["host_max"]) == (20.0, 30.0, 30.0)
    assert (figures["from_upstream"], figures["from_peers"], figures["saved_ratio"]) == (100, 160, 0.6154)
    assert figures["failed_hosts"] == [{"host": "c", "error": "disk full"}]


def test_a_task_that_moved_nothing_has_no_saved_ratio_and_one_not_started_no_duration() -> None:
    figures = task_figures(_task("pending", started=None, finished=None), [], now=500.0)
    assert (figures["duration"], figures["success_rate"], figures["saved_ratio"], figures["host_max"]) == (
        None, None, None, None)


def test_the_summary_counts_finished_tasks_only_in_the_success_rate() -> None:
    done = task_figures(_task("succeeded"), [_host("a", "succeeded", 5.0, upstream=10)])
    failed = task_figures(_task("failed"), [_host("a", "failed", 5.0, peers=30)])
    running = task_figures(_task("running", finished=None), [], now=200.0)
    total = summary([done, failed, running])
    assert (total["tasks"], total["finished"], total["succeeded"], total["success_rate"]) == (3, 2, 1, 0.5)
    assert (total["duration_p50"], total["duration_max"]) == (60.0, 60.0)
    assert (total["from_upstream"], total["from_peers"], total["saved_ratio"]) == (10, 30, 0.75)
