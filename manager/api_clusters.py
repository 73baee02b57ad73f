"""Clusters: `/api/v1/clusters`, `/api/v1/clusters/{name}` and its join token (`.../token` rotates it).

A cluster's join token is made at create and at each rotation, shown in that answer only, and stored as its sha256.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse, Response

from .api_errors import conflict, invalid, not_found
from .api_session import iso
from .clusters import NAME, BadScope, Scopes
from .context import Context
from .models import Cluster
from .pagination import page_of
from .request_body import JsonObject
from .scopes import beyond
from .tokens import new_token, token_hash

# Says what a leaked token is, as the session and API tokens' prefixes do.
CLUSTER_TOKEN_PREFIX = "dfc_"
_FIELDS = ("description", "labels", "cidrs", "hostnames")


def cluster_json(cluster: Cluster) -> dict[str, Any]:
    return {
        "name": cluster.name, "description": cluster.description, "labels": dict(cluster.labels),
        "cidrs": list(cluster.cidrs), "hostnames": list(cluster.hostnames), "created": iso(cluster.created_at),
    }


def _labels(body: JsonObject) -> dict[str, str] | None:
    value = body.data.get("labels")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid("labels must be an object of strings (a selector: every KEY=VALUE must match)")
    return dict(value)


def _scopes(body: JsonObject, current: Cluster | None = None) -> Scopes:
    labels = _labels(body)
    cidrs = body.texts("cidrs", max_items=128)
    hostnames = body.texts("hostnames", max_items=128)
    try:
        return Scopes.of(
            labels if labels is not None else dict(current.labels if current else {}),
            cidrs if cidrs is not None else list(current.cidrs if current else []),
            hostnames if hostnames is not None else list(current.hostnames if current else []),
        )
    except BadScope as exc:
        raise invalid(str(exc)) from None


def _store(cluster: Cluster, scopes: Scopes, cidrs: list[str]) -> None:
    cluster.labels = dict(scopes.labels)
    cluster.cidrs = cidrs
    cluster.hostnames = list(scopes.hostnames)


def _name(ctx: Context) -> str:
    name = str(ctx.request.path_params["name"])
    ctx.target = f"cluster:{name[:64]}"
    return name


async def _cluster(session: AsyncSession, name: str, scope: frozenset[str] = frozenset()) -> Cluster:
    cluster = (await session.execute(select(Cluster).where(Cluster.name == name))).scalar()
    # Outside a scoped role's clusters, a cluster is not there at all: its name says nothing to the role.
    if cluster is None or (scope and name not in scope):
        raise not_found(f"no cluster {name[:64]!r}")
    return cluster


def _unscoped(ctx: Context) -> None:
    """Changing clusters moves hosts into scopes: a scoped role could widen its own."""
    scope = ctx.me().clusters
    if scope:
        raise beyond(scope, "clusters are changed by unscoped roles only")


async def list_clusters(ctx: Context) -> Response:
    page = page_of(ctx.request)
    scope = ctx.me().clusters
    query = select(Cluster).where(Cluster.name.in_(scope)) if scope else select(Cluster)
    async with ctx.read() as session:
        clusters = list((await session.execute(page.of(query, Cluster.id))).scalars())
    return JSONResponse(page.answer([cluster_json(c) for c in clusters], [c.id for c in clusters]))


async def create_cluster(ctx: Context) -> Response:
    body = await ctx.body("name", *_FIELDS)
    name = body.text("name", max_length=64)
    ctx.target = f"cluster:{name}"
    _unscoped(ctx)
    if not NAME.match(name):
        raise invalid("name: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, up to 63")
    description = body.text("description", default="", max_length=1024)
    scopes = _scopes(body)
    token = new_token(CLUSTER_TOKEN_PREFIX)
    try:
        async with ctx.write(ctx.target) as session:
            cluster = Cluster(name=name, description=description, token_hash=token_hash(token), created_at=time.time())
            _store(cluster, scopes, [str(c) for c in scopes.cidrs])
            session.add(cluster)
            await session.flush()
    except IntegrityError:
        raise conflict(f"cluster {name!r} exists") from None
    # The join token is in this answer only: it is stored as its hash.
    return JSONResponse({**cluster_json(cluster), "token": token}, 201)


async def show_cluster(ctx: Context) -> Response:
    name = _name(ctx)
    async with ctx.read() as session:
        return JSONResponse(cluster_json(await _cluster(session, name, ctx.me().clusters)))


async def patch_cluster(ctx: Context) -> Response:
    name = _name(ctx)
    _unscoped(ctx)
    body = await ctx.body(*_FIELDS)
    changed = [f for f in _FIELDS if f in body]
    async with ctx.write(ctx.target, f"changed {', '.join(changed) or 'nothing'}") as session:
        cluster = await _cluster(session, name)
        scopes = _scopes(body, cluster)
        if "description" in body:
            cluster.description = body.text("description", max_length=1024)
        _store(cluster, scopes, [str(c) for c in scopes.cidrs])
    return JSONResponse(cluster_json(cluster))


async def delete_cluster(ctx: Context) -> Response:
    name = _name(ctx)
    _unscoped(ctx)
    async with ctx.write(ctx.target) as session:
        await session.delete(await _cluster(session, name))
    return Response(status_code=204)


async def rotate_token(ctx: Context) -> Response:
    name = _name(ctx)
    _unscoped(ctx)
    token = new_token(CLUSTER_TOKEN_PREFIX)
    async with ctx.write(ctx.target, "join token rotated") as session:
        cluster = await _cluster(session, name)
        cluster.token_hash = token_hash(token)
    return JSONResponse({**cluster_json(cluster), "token": token})
