"""The manager as an ASGI app: its routes from the route table, each behind the authentication, the permission
check and the audit the table asks for. A database that cannot be opened leaves it answering 503, logged once,
so that a supernode hosting it keeps coordinating swarms."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import audit, bootstrap, migrate
from .api_errors import STATUS_CODES, ApiError, forbidden
from .config import ManagerConfig
from .context import Context, Platform
from .database import create_engine, database_url, session_factory, shown
from .host_source import HostSource, SupernodeApiSource
from .hosts import HostBook
from .principal import authenticate, bearer
from .ratelimit import LoginLimiter
from .routes import ROUTES, ApiRoute
from .traffic import TrafficRecorder

log = logging.getLogger(__name__)
UNAVAILABLE = ApiError(503, "unavailable", "the platform's database is unavailable: see the manager's log")
# Starlette's own answers (no route, wrong method) as the API's errors.
_REFUSALS = {401, 403, 429}


class ManagerApp:
    def __init__(self, config: ManagerConfig, hosts: HostSource | None = None) -> None:
        """`hosts`: the supernode's own registry when it hosts the platform (damselfly/hosting.py); else, with
        `config.supernodes`, their API is read."""
        self.config = config
        self.host_source = hosts
        if hosts is None and config.supernodes:
            self.host_source = SupernodeApiSource(
                config.supernodes.split(","), config.supernode_token, timeout=config.supernode_timeout
            )
        self.engine: AsyncEngine | None = None
        self.platform: Platform | None = None
        self.traffic: TrafficRecorder | None = None
        self.app = Starlette(
            routes=[Route(r.path, self._endpoint(r), methods=[r.method]) for r in ROUTES],
            exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        )

    async def startup(self) -> bool:
        """Open and migrate the database, create the first admin; False (logged, one line) if that failed."""
        shown_url = "?"
        try:
            url = database_url(self.config.database, self.config.data_dir)
            shown_url = shown(url)
            engine = create_engine(url)
            self.engine = engine
            await migrate.upgrade(engine)
            sessions = session_factory(engine)
            await bootstrap.ensure_admin(sessions)
        except Exception as exc:
            # Whatever the driver raises (a refused connection, a wrong password, a full disk, a bad URL): the
            # platform is unavailable, said once, and the process hosting it goes on.
            log.error("the platform is unavailable: database %s: %s", shown_url, _reason(exc, self.config.database))
            await self.shutdown()
            return False
        limiter = LoginLimiter(
            self.config.login_failures_per_user, self.config.login_failures_per_address, self.config.login_window
        )
        book = HostBook(self.host_source, self.config)
        try:
            # The cordons the database keeps reach a scheduler that started without them (its restart, or ours).
            await book.push_cordons(sessions)
        except Exception as exc:
            log.warning("the cordoned hosts could not be told to the scheduler: %s", _reason(exc, self.config.database))
        self.traffic = TrafficRecorder(book, sessions, self.config.traffic_every)
        self.traffic.start()
        self.platform = Platform(self.config, sessions, limiter, ROUTES, book, self.traffic)
        log.info("the platform is up: database %s", shown_url)
        return True

    async def shutdown(self) -> None:
        if self.traffic is not None:
            await self.traffic.close()
            self.traffic = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None
        if self.host_source is not None:
            await self.host_source.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.platform is None:
            if scope["type"] == "http":
                await UNAVAILABLE.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # `damselfly manager` starts it before serving, to exit at once if the database cannot be opened.
                if self.platform is None:
                    await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _endpoint(self, route: ApiRoute) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            platform = self.platform
            assert platform is not None, "requests reach the routes only once the platform is up"
            ctx = Context(request, route, platform, None,
                          target=",".join(str(v)[:64] for v in request.path_params.values()))
            try:
                if route.authenticated:
                    token = bearer(request.headers.get("authorization", ""))
                    async with platform.sessions.begin() as session:
                        ctx.principal = await authenticate(session, token)
                    if route.permission is not None and route.permission not in ctx.principal.permissions:
                        raise forbidden(route.permission.value)
                response = await route.handler(ctx)
            except ApiError as exc:
                if route.writes and not ctx.audited:
                    result = audit.REFUSED if exc.status in _REFUSALS else audit.FAILED
                    if not ctx.target:
                        ctx.target = await _named_in_body(request, platform.config.max_body)
                    await _audit_unwritten(ctx, result, exc.message)
                return exc.response()
            except DBAPIError:
                log.warning("the platform's database failed a request to %s %s", route.method, route.path,
                            exc_info=True)
                return UNAVAILABLE.response()
            if route.writes and not ctx.audited:
                log.error("bug: %s wrote without an audit entry", route.name)
            return response

        return serve


async def _audit_unwritten(ctx: Context, result: str, detail: str) -> None:
    """A refused or failed write: its entry in a transaction of its own, as the write's was rolled back."""
    try:
        async with ctx.platform.sessions.begin() as session:
            audit.record(session, ctx.actor, ctx.route.name, ctx.target, result, detail)
    except SQLAlchemyError:
        log.warning("could not audit the %s %s of %s", result, ctx.route.name, ctx.actor.name or "anonymous")


async def _named_in_body(request: Request, max_body: int) -> str:
    """What a write refused before its body was read was about: the `name` (or `username`) it carries, if any."""
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


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = STATUS_CODES.get(exc.status_code, "error")
    return JSONResponse({"code": code, "message": str(exc.detail)}, exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"code": "internal", "message": "internal error: see the manager's log"}, 500)


def _reason(exc: BaseException, database: str) -> str:
    """One line about why; a password in the operator's URL never appears, even if a driver echoed it."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]
    if "://" in database and "@" in database:
        secret = database.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
        if secret:
            text = text.replace(secret, "***")
    return text or type(orig).__name__


def create_app(config: ManagerConfig) -> ManagerApp:
    return ManagerApp(config)
