"""Analysis: the hosts' traffic over time (`/api/v1/analysis/traffic`, JSON or CSV) and as Prometheus metrics
(`/api/v1/analysis/metrics`), from what manager/traffic.py recorded.

`saved_ratio` is fetched_peers / (fetched_peers + fetched_upstream): the share of the bytes the hosts fetched that
did not come from the upstream (null when nothing was fetched).
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from starlette.responses import JSONResponse, Response

from . import traffic
from .api_errors import invalid, not_found
from .context import Context
from .models import Cluster, Host
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


async def _host_ids(ctx: Context, cluster: str, host: str) -> list[str] | None:
    """The hosts the series is of: a cluster's, one host, or None (every host)."""
    if cluster and host:
        raise invalid("give cluster or host, not both")
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


async def traffic_series(ctx: Context) -> Response:
    query = ctx.request.query_params
    try:
        since = parse_duration(query.get("since", "24h"), "since")
    except BadDuration as exc:
        raise invalid(str(exc)) from None
    step = query.get("step", "hour")
    if step not in traffic.STEPS:
        raise invalid(f"step must be one of {', '.join(traffic.STEPS)}")
    shape = query.get("format", "json")
    if shape not in ("json", "csv"):
        raise invalid("format must be json or csv")
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
    lines: list[str] = []
    for name in NAMES:
        metric = f"damselfly_host_{name}_bytes_total"
        lines += [f"# HELP {metric} {_METRIC_HELP[name]}, as the platform sampled it.", f"# TYPE {metric} counter"]
        lines += [f'{metric}{{host="{_label(host)}"}} {getattr(c, name)}' for host, c in totals.items()]
    return Response("\n".join(lines) + "\n", media_type=PROMETHEUS)
