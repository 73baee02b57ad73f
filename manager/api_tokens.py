"""API tokens: `/api/v1/tokens` (one's own; an admin sees and deletes everyone's) and `/api/v1/tokens/{id}`."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from starlette.responses import JSONResponse, Response

from .api_errors import forbidden, invalid, not_found
from .api_session import iso
from .context import Context
from .models import ApiToken, User
from .pagination import page_of
from .permissions import Permission, parse_scopes
from .principal import Principal
from .tokens import API_PREFIX, BadDuration, new_token, parse_duration, token_hash

DEFAULT_EXPIRY = "30d"


def token_json(token: ApiToken, user: str) -> dict[str, Any]:
    return {
        "id": token.id, "name": token.name, "user": user, "scopes": sorted(token.scopes),
        "created": iso(token.created_at), "expires": iso(token.expires_at),
        "last_used": iso(token.last_used_at) if token.last_used_at else None,
    }


def _sees_all(me: Principal) -> bool:
    return Permission.USERS_WRITE in me.permissions


async def list_tokens(ctx: Context) -> Response:
    me, page = ctx.me(), page_of(ctx.request)
    query = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id)
    if not _sees_all(me):
        query = query.where(ApiToken.user_id == me.user_id)
    async with ctx.read() as session:
        rows = [(row[0], row[1]) for row in await session.execute(page.of(query, ApiToken.id))]
    return JSONResponse(page.answer([token_json(t, name) for t, name in rows], [t.id for t, _ in rows]))


async def create_token(ctx: Context) -> Response:
    me = ctx.me()
    body = await ctx.body("name", "scopes", "expires")
    name = body.text("name", default="", max_length=128)
    ctx.target = name
    try:
        seconds = parse_duration(body.text("expires", default=DEFAULT_EXPIRY, max_length=16))
    except BadDuration as exc:
        raise invalid(str(exc)) from None
    asked = body.texts("scopes")
    try:
        scopes = me.permissions if asked is None else parse_scopes(asked)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    # A token holds at most what its creator holds: no one mints themselves more.
    beyond = sorted(scopes - me.permissions)
    if beyond:
        raise forbidden(beyond[0])
    if not scopes:
        raise invalid("scopes: at least one")
    token = new_token(API_PREFIX)
    now = time.time()
    async with ctx.write(name, f"scopes {','.join(sorted(scopes))}") as session:
        row = ApiToken(user_id=me.user_id, name=name, token_hash=token_hash(token), scopes=sorted(scopes),
                       created_at=now, expires_at=now + seconds)
        session.add(row)
        await session.flush()
        ctx.target = f"token:{row.id}"
    # The token itself is in this answer only: it is stored as its hash.
    return JSONResponse({**token_json(row, me.name), "token": token}, 201)


async def delete_token(ctx: Context) -> Response:
    me = ctx.me()
    text = str(ctx.request.path_params["token_id"])
    ctx.target = f"token:{text[:32]}"
    if not text.isdigit() or len(text) > 18:
        raise not_found("no such token")
    async with ctx.write(ctx.target) as session:
        row = await session.get(ApiToken, int(text))
        if row is None or (row.user_id != me.user_id and not _sees_all(me)):
            # Another user's token is not there, for whoever may not see it.
            raise not_found("no such token")
        await session.delete(row)
    return Response(status_code=204)
