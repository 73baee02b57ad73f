"""The manager as an ASGI app: its routes from the route table, each behind the authentication, the permission
check and the audit the table asks for. A database that cannot be opened leaves it answering 503, logged once,
so that a supernode hosting it keeps coordinating swarms."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import bootstrap, migrate
from .api_errors import STATUS_CODES
from .config import ManagerConfig
from .console.app import routes as console_routes
from .context import Context, Platform
from .cordon_keeper import CordonKeeper
from .database import create_engine, database_url, session_factory, shown
from .dispatch import UNAVAILABLE, dispatch
from .host_source import HostSource, SupernodeApiSource
from .hosts import HostBook
from .job_channel import JobChannel, SupernodeChannel
from .principal import bearer
from .ratelimit import LoginLimiter
from .routes import ROUTES, ApiRoute
from .secret_box import SecretBox
from .task_runner import TaskRunner
from .traffic import TrafficRecorder

log = logging.getLogger(__name__)


class ManagerApp:
    def __init__(self, config: ManagerConfig, hosts: HostSource | None = None, jobs: JobChannel | None = None) -> None:
        """`hosts`, `jobs`: the supernode's own registry and job board when it hosts the platform
        (damselfly/hosting.py); else, with `config.supernodes`, their API is used. Without either, tasks cannot
        run (their endpoints say so)."""
        self.config = config
        self.host_source = hosts
        self.jobs = jobs
        if hosts is None and config.supernodes:
            self.host_source = SupernodeApiSource(
                config.supernodes.split(","), config.supernode_token, timeout=config.supernode_timeout
            )
        if jobs is None and config.supernodes:
            self.jobs = SupernodeChannel(config.supernodes.split(","), config.supernode_token,
                                         timeout=config.supernode_timeout)
        self._runner_task: asyncio.Task[None] | None = None
        self.engine: AsyncEngine | None = None
        self.platform: Platform | None = None
        self.stopping = asyncio.Event()
        self.traffic: TrafficRecorder | None = None
        self.cordons: CordonKeeper | None = None
        self.app = Starlette(
            routes=[
                *(Route(r.path, self._endpoint(r), methods=[r.method]) for r in ROUTES),
                *console_routes(lambda: self.platform, self.stopping),
            ],
            exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        )

    def begin_stop(self) -> None:
        """The server begins to stop (damselfly/cli.py, on SIGTERM): the console's event streams end now."""
        self.stopping.set()

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
            box = SecretBox.in_dir(self.config.data_dir)
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
        if isinstance(self.host_source, SupernodeApiSource):
            # In the supernode's own process, its restart is ours: the push above is enough there.
            self.cordons = CordonKeeper(book, sessions, self.config.cordon_every)
            self.cordons.start()
        runner = None
        if self.jobs is not None:
            runner = TaskRunner(sessions, self.jobs, book, box, interval=self.config.task_round,
                                call_timeout=self.config.supernode_timeout, lease=self.config.task_lease)
            # Its first round puts again the jobs of the running tasks: nothing of them is lost by our restart.
            self._runner_task = asyncio.create_task(runner.run(), name="task-runner")
        self.platform = Platform(self.config, sessions, limiter, ROUTES, book, self.traffic, box, runner)
        log.info("the platform is up: database %s", shown_url)
        return True

    async def shutdown(self) -> None:
        if self._runner_task is not None:
            if self.platform is not None and self.platform.runner is not None:
                self.platform.runner.stop()
            # The round under way ends on its own (its calls are bounded); cancelled only if it does not.
            await asyncio.wait({self._runner_task}, timeout=2 * self.config.supernode_timeout + 5)
            self._runner_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner_task
            self._runner_task = None
            if self.platform is not None and self.platform.runner is not None:
                try:
                    await self.platform.runner.release()
                except Exception as exc:  # the database is away: the lease runs out by itself
                    log.warning("the tasks this manager held could not be handed back: %s",
                                _reason(exc, self.config.database))
        if self.jobs is not None:
            await self.jobs.close()
        if self.traffic is not None:
            await self.traffic.close()
            self.traffic = None
        if self.cordons is not None:
            await self.cordons.close()
            self.cordons = None
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
            return await dispatch(ctx, lambda: bearer(request.headers.get("authorization", "")))

        return serve


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
