"""Hosts: `/api/v1/hosts` (filters: cluster, label, state), `/api/v1/hosts/{host_id}`, and its cordon."""

from __future__ import annotations

import time

from sqlalchemy import select
from starlette.responses import JSONResponse, Response

from .api_errors import invalid, not_found
from .clusters import BadScope, parse_label
from .context import Context
from .hosts import STATES, HostView
from .models import Cluster, Host
from .pagination import page_of
from .scopes import hosts_in


async def _views(ctx: Context) -> list[HostView]:
    """The hosts the principal's role reaches: a role scoped to clusters sees no others (manager/scopes.py)."""
    return hosts_in(ctx.me().clusters, await ctx.platform.hosts.views(ctx.platform.sessions))


async def list_hosts(ctx: Context) -> Response:
    page = page_of(ctx.request)
    query = ctx.request.query_params
    state = query.get("state", "")
    if state and state not in STATES:
        raise invalid(f"state must be one of {', '.join(STATES)}")
    try:
        selector = [parse_label(text) for text in query.getlist("label")]
    except BadScope as exc:
        raise invalid(str(exc)) from None
    cluster = query.get("cluster", "")
    if cluster:
        async with ctx.read() as session:
            if (await session.execute(select(Cluster.id).where(Cluster.name == cluster))).scalar() is None:
                raise not_found(f"no cluster {cluster[:64]!r}")
    views = [
        view for view in await _views(ctx)
        if (not state or view.state == state)
        and all(view.row.labels.get(k) == v for k, v in selector)
        and (not cluster or cluster in view.clusters)
        and (page.cursor is None or view.row.id > page.cursor)
    ][: page.limit + 1]
    return JSONResponse(page.answer([v.to_json() for v in views], [v.row.id for v in views]))


async def _one(ctx: Context) -> HostView:
    host_id = str(ctx.request.path_params["host_id"])
    ctx.target = host_id[:64]
    for view in await _views(ctx):
        if view.row.host_id == host_id:
            return view
    raise not_found(f"no host {host_id[:80]!r}")


async def show_host(ctx: Context) -> Response:
    return JSONResponse((await _one(ctx)).to_json())


async def cordon_host(ctx: Context) -> Response:
    return await _set_cordon(ctx, True)


async def uncordon_host(ctx: Context) -> Response:
    return await _set_cordon(ctx, False)


async def _set_cordon(ctx: Context, cordoned: bool) -> Response:
    # Read first: a host the supernode knows but the database does not yet is written now.
    view = await _one(ctx)
    pushed = True
    async with ctx.write(view.row.host_id) as session:
        row = (await session.execute(select(Host).where(Host.host_id == view.row.host_id))).scalar_one()
        row.cordoned = cordoned
        row.cordoned_by = ctx.me().name if cordoned else ""
        row.cordoned_at = time.time() if cordoned else None
    pushed = await ctx.platform.hosts.push_cordons(ctx.platform.sessions)
    view.row.cordoned, view.row.cordoned_by, view.row.cordoned_at = row.cordoned, row.cordoned_by, row.cordoned_at
    # Whether the supernode heard it: a standalone manager cannot tell the supernodes yet (docs/platform.md).
    return JSONResponse({**view.to_json(), "scheduler_told": pushed})
