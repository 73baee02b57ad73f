"""One call of a route of the table, whoever made it (the API, manager/app.py; the console, manager/console/): the
caller's authentication, the route's permission check, its handler, and the audit of a write refused or failed.
The console calls the very same handlers, so a write through it is checked and audited exactly as the API's."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from . import audit
from .api_errors import ApiError, forbidden
from .context import Context
from .principal import authenticate

log = logging.getLogger(__name__)
UNAVAILABLE = ApiError(503, "unavailable", "the platform's database is unavailable: see the manager's log")
_REFUSALS = {401, 403, 429}


async def dispatch(ctx: Context, credential: Callable[[], str]) -> Response:
    """`credential()` is the caller's token (raising the 401 ApiError if there is none), read only if the route
    needs one."""
    route, platform, request = ctx.route, ctx.platform, ctx.request
    try:
        if route.authenticated:
            token = credential()
            async with platform.sessions.begin() as session:
                ctx.principal = await authenticate(session, token)
            if route.permission is not None and route.permission not in ctx.principal.permissions:
                raise forbidden(route.permission.value)
        if ctx.early_error is not None:
            raise ctx.early_error
        response = await route.handler(ctx)
    except ApiError as exc:
        if route.writes and not ctx.audited:
            result = audit.REFUSED if exc.status in _REFUSALS else audit.FAILED
            if not ctx.target:
                ctx.target = await _named_in_body(ctx, request, platform.config.max_body)
            await _audit_unwritten(ctx, result, exc.message)
        return exc.response()
    except DBAPIError:
        log.warning("the platform's database failed a request to %s %s", route.method, route.path, exc_info=True)
        return UNAVAILABLE.response()
    if route.writes and not ctx.audited:
        log.error("bug: %s wrote without an audit entry", route.name)
    return response


async def _audit_unwritten(ctx: Context, result: str, detail: str) -> None:
    """A refused or failed write: its entry in a transaction of its own, as the write's was rolled back."""
    try:
        async with ctx.platform.sessions.begin() as session:
            audit.record(session, ctx.actor, ctx.route.name, ctx.target, result, detail)
    except SQLAlchemyError:
        log.warning("could not audit the %s %s of %s", result, ctx.route.name, ctx.actor.name or "anonymous")


async def _named_in_body(ctx: Context, request: Request, max_body: int) -> str:
    """What a write refused before its body was read was about: the `name` (or `username`) it carries, if any."""
    if ctx.form is not None:
        body = ctx.form.data
    else:
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > max_body:
            return ""
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError, ClientDisconnect, RuntimeError):
            return ""
    if not isinstance(body, dict):
        return ""
    name = body.get("name", body.get("username", ""))
    return name[:64] if isinstance(name, str) else ""
