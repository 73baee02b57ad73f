"""Login, logout, and the caller's own account: `/api/v1/login`, `/logout`, `/me`, `/me/password`."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select, update
from starlette.responses import JSONResponse, Response

from . import audit
from .api_errors import ApiError, invalid, too_many, unauthenticated
from .context import Context
from .models import LoginSession, User
from .passwords import WeakPassword, burn_time, check_strength, hash_password, verify_password
from .tokens import SESSION_PREFIX, new_token, token_hash


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


async def login(ctx: Context) -> Response:
    body = await ctx.body("username", "password")
    username = body.text("username", max_length=64)
    password = body.text("password", max_length=1024)
    ctx.target = username
    limiter, now = ctx.platform.limiter, time.monotonic()
    wait = limiter.retry_after(username, ctx.client, now)
    if wait:
        raise too_many(wait)
    async with ctx.platform.sessions.begin() as session:
        user = (await session.execute(select(User).where(User.name == username))).scalar()
        if user is None:
            await burn_time(password)
        if user is None or user.disabled or not await verify_password(user.password_hash, password):
            limiter.failed(username, ctx.client, now)
            # Which of the name or the password was wrong is not told.
            raise unauthenticated("wrong username or password")
        limiter.succeeded(username)
        token = new_token(SESSION_PREFIX)
        expires = time.time() + ctx.platform.config.session_ttl
        session.add(LoginSession(user_id=user.id, token_hash=token_hash(token), created_at=time.time(),
                                 expires_at=expires))
        audit.record(session, audit.Actor(user.name, "password", ctx.client), "login", username, audit.OK)
        ctx.audited = True
    return JSONResponse({"token": token, "expires": iso(expires), "expires_at": expires})


async def logout(ctx: Context) -> Response:
    me = ctx.me()
    if me.kind != "session":
        raise invalid("logout ends a session; an API token is deleted with DELETE /api/v1/tokens/{id}")
    async with ctx.write(me.name) as session:
        await session.execute(update(LoginSession).where(LoginSession.id == me.credential_id).values(revoked=True))
    return Response(status_code=204)


async def whoami(ctx: Context) -> Response:
    me = ctx.me()
    answer: dict[str, Any] = {
        "name": me.name, "role": me.role, "clusters": sorted(me.clusters), "permissions": sorted(me.permissions),
        "via": me.kind,
        "expires": iso(me.expires_at),
    }
    return JSONResponse(answer)


async def change_password(ctx: Context) -> Response:
    me = ctx.me()
    body = await ctx.body("old", "new")
    old, new = body.text("old"), body.text("new")
    try:
        check_strength(new)
    except WeakPassword as exc:
        raise invalid(str(exc)) from None
    async with ctx.write(me.name) as session:
        user = await session.get(User, me.user_id)
        if user is None or not await verify_password(user.password_hash, old):
            raise ApiError(403, "forbidden", "the old password is wrong")
        user.password_hash = await hash_password(new)
        # Every other session of the user ends: whoever knew the old password is logged out.
        others = LoginSession.user_id == me.user_id
        if me.kind == "session":
            others = others & (LoginSession.id != me.credential_id)
        await session.execute(update(LoginSession).where(others).values(revoked=True))
    return Response(status_code=204)
