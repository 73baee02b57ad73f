"""Analysis: the hosts' traffic over time (`/api/v1/analysis/traffic`, JSON or CSV) and as Prometheus metrics
(`/api/v1/analysis/metrics`), from what manager/traffic.py recorded; and the distribution tasks' figures
(`/api/v1/analysis/tasks`, `/api/v1/analysis/tasks/{task_id}`: manager/task_analysis.py).

`saved_ratio` is fetched_peers / (fetched_peers + fetched_upstream): the share of the bytes the hosts fetched that
did not come from the upstream (null when nothing was fetched).
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from starlette.datastructures import QueryParams
from starlette.responses import JSONResponse, Response

from . import task_analysis, traffic
from .api_errors import invalid, not_found
from .api_tasks import TASK_STATES, load_task, task_id_of, tasks_with_hosts
from .context import Context
from .models import Cluster, Host, Task
from .scopes import hosts_in, task_held
from .tokens import BadDuration, parse_duration
from .traffic import NAMES, Counters

CSV_COLUMNS = ("start", *NAMES, "saved_ratio")
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_METRIC_HELP = {
    "fetched_upstream": "Bytes the host fetched from the upstream",
    "fetched_peers": "Bytes the host fetched from other peers",
    "served_peers": "Bytes the host served to other peers",
    "served_clients": "Bytes the host served to its local clients",
}


def _start(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _scoped_hosts(ctx: Context) -> set[str] | None:
    """The hosts a role scoped to clusters reaches; None for an unscoped one (every host)."""
    scope = ctx.me().clusters
    if not scope:
        return None
    return {view.row.host_id for view in hosts_in(scope, await ctx.platform.hosts.views(ctx.platform.sessions))}


async def _host_ids(ctx: Context, cluster: str, host: str) -> list[str] | None:
    """The hosts the series is of: a cluster's, one host, or None (every host); within the principal's scope."""
    if cluster and host:
        raise invalid("give cluster or host, not both")
    reach = await _scoped_hosts(ctx)
    if reach is not None:
        if cluster and cluster not in ctx.me().clusters:
            raise not_found(f"no cluster {cluster[:64]!r}")
        if host and host not in reach:
            raise not_found(f"no host {host[:80]!r}")
        ids = await _host_ids_unscoped(ctx, cluster, host)
        return sorted(reach) if ids is None else [i for i in ids if i in reach]
    return await _host_ids_unscoped(ctx, cluster, host)


async def _host_ids_unscoped(ctx: Context, cluster: str, host: str) -> list[str] | None:
    if host:
        async with ctx.read() as session:
            known = (await session.execute(select(Host.id).where(Host.host_id == host))).scalar()
        if known is None and host not in {h for h in (await ctx.platform.hosts.snapshot()).hosts}:
            raise not_found(f"no host {host[:80]!r}")
        return [host]
    if cluster:
        async with ctx.read() as session:
            if (await session.execute(select(Cluster.id).where(Cluster.name == cluster))).scalar() is None:
                raise not_found(f"no cluster {cluster[:64]!r}")
        views = await ctx.platform.hosts.views(ctx.platform.sessions)
        return [view.row.host_id for view in views if cluster in view.clusters]
    return None


def _window_and_shape(query: QueryParams) -> tuple[float, str]:
    """`since` (a duration, 24h by default) in seconds and `format` (json or csv) of an analysis request."""
    try:
        since = parse_duration(query.get("since", "24h"), "since")
    except BadDuration as exc:
        raise invalid(str(exc)) from None
    shape = query.get("format", "json")
    if shape not in ("json", "csv"):
        raise invalid("format must be json or csv")
    return since, shape


async def traffic_series(ctx: Context) -> Response:
    query = ctx.request.query_params
    since, shape = _window_and_shape(query)
    step = query.get("step", "hour")
    if step not in traffic.STEPS:
        raise invalid(f"step must be one of {', '.join(traffic.STEPS)}")
    ids = await _host_ids(ctx, query.get("cluster", ""), query.get("host", ""))
    now = time.time()
    buckets = await traffic.series(ctx.platform.sessions, now - since, step, ids, now)
    total = sum((counters for _, counters in buckets), Counters())
    if shape == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for at, counters in buckets:
            ratio = counters.saved_ratio
            writer.writerow([_start(at), *counters.values(), "" if ratio is None else ratio])
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8")
    answer: dict[str, Any] = {
        "since": _start(int(now - since)), "step": step,
        "series": [{"start": _start(at), **counters.to_json()} for at, counters in buckets],
        "totals": total.to_json(),
    }
    return JSONResponse(answer)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def traffic_metrics(ctx: Context) -> Response:
    totals = await traffic.totals_by_host(ctx.platform.sessions)
    reach = await _scoped_hosts(ctx)
    if reach is not None:
        totals = {host: counters for host, counters in totals.items() if host in reach}
    lines: list[str] = []
    for name in NAMES:
        metric = f"damselfly_host_{name}_bytes_total"
        lines += [f"# HELP {metric} {_METRIC_HELP[name]}, as the platform sampled it.", f"# TYPE {metric} counter"]
        lines += [f'{metric}{{host="{_label(host)}"}} {getattr(c, name)}' for host, c in totals.items()]
    async with ctx.read() as session:
        if reach is None:
            states = dict((await session.execute(select(Task.state, func.count()).group_by(Task.state))).all())
        else:
            states = {}
            for task, rows in (await tasks_with_hosts(session, select(Task))):
                if task_held(ctx.me().clusters, rows):
                    states[task.state] = states.get(task.state, 0) + 1
    lines += ["# HELP damselfly_tasks Distribution tasks by state.", "# TYPE damselfly_tasks gauge"]
    lines += [f'damselfly_tasks{{state="{state}"}} {states.get(state, 0)}' for state in TASK_STATES]
    return Response("\n".join(lines) + "\n", media_type=PROMETHEUS)


async def task_figures(ctx: Context) -> Response:
    """One task's figures (manager/task_analysis.py)."""
    task_id = task_id_of(ctx)
    async with ctx.read() as session:
        task, rows = await load_task(session, task_id, ctx.me().clusters)
    return JSONResponse(task_analysis.task_figures(task, rows))


MAX_TASKS = 1000


async def tasks_figures(ctx: Context) -> Response:
    """The figures of the tasks created in `since` (at most the newest MAX_TASKS), their summary; JSON or CSV."""
    since, shape = _window_and_shape(ctx.request.query_params)
    now = time.time()
    scope = ctx.me().clusters
    async with ctx.read() as session:
        held = [
            (task, rows) for task, rows in await tasks_with_hosts(
                session, select(Task).where(Task.created_at >= now - since).order_by(Task.id.desc()).limit(MAX_TASKS)
            )
            if task_held(scope, rows)
        ]
    figures = [task_analysis.task_figures(task, rows, now) for task, rows in held]
    if shape == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(task_analysis.COLUMNS)
        for figure in figures:
            values = {**figure, "created": _start(int(figure["created"]))}
            writer.writerow(["" if values[c] is None else values[c] for c in task_analysis.COLUMNS])
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8")
    shown = [{**f, "created": _start(int(f["created"]))} for f in figures]
    return JSONResponse({"since": _start(int(now - since)), "tasks": shown,
                         "summary": task_analysis.summary(figures)})
