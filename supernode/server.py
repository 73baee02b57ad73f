"""The supernode's HTTP API: handlers only translate between HTTP and the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.digest import Digest, InvalidDigest

from .api import (
    API_PREFIX,
    TOKEN_HEADER,
    BadRequest,
    JoinRequest,
    RegisterRequest,
    RegisterResponse,
    ReportRequest,
    hex_to_mask,
)
from .config import SchedulerConfig, SupernodeConfig
from .scheduler import Scheduler, UnknownPeer, UnknownTask

MAX_BODY = 1 << 20
Handler = Callable[[Request], Awaitable[Response]]


class TaskNotifier:
    """Wakes the sync requests waiting on a task when its version or its known digests move."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, digest: str) -> None:
        event = self._events.pop(digest, None)
        if event is not None:
            event.set()

    def notify_all(self) -> None:
        for digest in list(self._events):
            self.notify(digest)

    async def wait(self, digest: str, timeout: float) -> None:
        event = self._events.setdefault(digest, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(config: SupernodeConfig, scheduler: Scheduler | None = None) -> Starlette:
    scheduler = scheduler or Scheduler(config.scheduler or SchedulerConfig())
    notifier = TaskNotifier()
    metrics = CollectorRegistry()
    peers_gauge = Gauge("damselfly_supernode_peers", "Registered live peers", registry=metrics)
    tasks_gauge = Gauge("damselfly_supernode_tasks", "Swarms the supernode tracks", registry=metrics)
    expired = Counter("damselfly_supernode_peers_expired", "Peers expired for missed heartbeats", registry=metrics)

    def guarded(handler: Handler) -> Handler:
        """Join-token check and translation of domain errors into HTTP answers."""

        async def wrapped(request: Request) -> Response:
            if config.join_token:
                offered = request.headers.get(TOKEN_HEADER, "")
                if not hmac.compare_digest(offered.encode(), config.join_token.encode()):
                    return _error(401, "a valid join token is required")
            try:
                return await handler(request)
            except BadRequest as exc:
                return _error(400, str(exc))
            except InvalidDigest as exc:
                return _error(400, str(exc))
            except UnknownPeer:
                return _error(410, "unknown peer: register again")
            except UnknownTask:
                return _error(404, "unknown task: join first")
            except ClientDisconnect:
                # The caller hung up mid-body: nobody is left to answer, and it is no server error.
                return _error(400, "client disconnected")

        return wrapped

    async def body_of(request: Request) -> dict[str, Any]:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise BadRequest("body too large")
        try:
            body = json.loads(raw) if raw else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest("body is not JSON") from exc
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body

    def digest_of(request: Request) -> str:
        return str(Digest.parse(request.path_params["digest"]))

    async def register(request: Request) -> Response:
        req = RegisterRequest.parse(await body_of(request))
        host = req.advertise_host or (request.client.host if request.client else "127.0.0.1")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        url = f"http://{host}:{req.upload_port}"
        scheduler.register(req.peer_id, url, req.labels, time.monotonic())
        response = RegisterResponse(req.peer_id, url, scheduler.config.heartbeat_interval)
        return JSONResponse(response.to_json())

    async def heartbeat(request: Request) -> Response:
        scheduler.heartbeat(request.path_params["peer_id"], time.monotonic())
        return Response(status_code=204)

    async def leave(request: Request) -> Response:
        scheduler.remove_peer(request.path_params["peer_id"])
        notifier.notify_all()
        return Response(status_code=204)

    async def join(request: Request) -> Response:
        digest = digest_of(request)
        req = JoinRequest.parse(await body_of(request))
        before = scheduler.progress(digest) if digest in scheduler.tasks else None
        view = scheduler.join(digest, req.peer_id, req.size, hex_to_mask(req.pieces), time.monotonic())
        if scheduler.progress(digest) != before:
            notifier.notify(digest)
        return JSONResponse(view.to_json())

    async def report(request: Request) -> Response:
        digest = digest_of(request)
        req = ReportRequest.parse(await body_of(request))
        before = scheduler.progress(digest)
        scheduler.report(
            digest,
            req.peer_id,
            pieces=hex_to_mask(req.pieces),
            piece_digests=req.piece_digests,
            done=req.done,
            failed=req.failed,
            bad_parents=req.bad_parents,
            now=time.monotonic(),
        )
        if scheduler.progress(digest) != before:
            notifier.notify(digest)
        return Response(status_code=204)

    async def view(request: Request) -> Response:
        digest = digest_of(request)
        peer_id = request.query_params.get("peer_id", "")
        try:
            since = int(request.query_params.get("since", "-1"))
            digests_from = int(request.query_params.get("from", "0"))
            wait = min(max(float(request.query_params.get("wait", "0")), 0.0), config.sync_wait)
        except ValueError as exc:
            raise BadRequest("'since' and 'wait' must be numbers") from exc
        deadline = time.monotonic() + wait
        while not scheduler.news_for(digest, since, digests_from) and (left := deadline - time.monotonic()) > 0:
            await notifier.wait(digest, left)
        return JSONResponse(scheduler.view(digest, peer_id, time.monotonic(), digests_from).to_json())

    async def list_tasks(request: Request) -> Response:
        tasks = [
            {
                "digest": t.digest,
                "size": t.layout.blob_size,
                "pieces": t.layout.count,
                "members": len(t.members),
                "completed": t.completed_members,
                "source": t.source,
            }
            for t in scheduler.tasks.values()
        ]
        return JSONResponse({"tasks": tasks})

    async def list_peers(request: Request) -> Response:
        peers = [{"peer_id": p.peer_id, "url": p.url, "labels": p.labels} for p in scheduler.peers.values()]
        return JSONResponse({"peers": peers})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics_endpoint(request: Request) -> Response:
        peers_gauge.set(len(scheduler.peers))
        tasks_gauge.set(len(scheduler.tasks))
        return Response(generate_latest(metrics), media_type="text/plain; version=0.0.4")

    async def expiry_loop() -> None:
        while True:
            await asyncio.sleep(1.0)
            dead = scheduler.expire(time.monotonic())
            if dead:
                expired.inc(len(dead))
                notifier.notify_all()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The expiry loop is owned by the app's lifespan: it starts and stops with the server.
        task = asyncio.create_task(expiry_loop(), name="supernode-expiry")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    p = API_PREFIX
    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route(f"{p}/peers", guarded(register), methods=["POST"]),
        Route(f"{p}/peers", guarded(list_peers), methods=["GET"]),
        Route(f"{p}/peers/{{peer_id}}/heartbeat", guarded(heartbeat), methods=["POST"]),
        Route(f"{p}/peers/{{peer_id}}", guarded(leave), methods=["DELETE"]),
        Route(f"{p}/tasks", guarded(list_tasks), methods=["GET"]),
        Route(f"{p}/tasks/{{digest}}/join", guarded(join), methods=["POST"]),
        Route(f"{p}/tasks/{{digest}}/report", guarded(report), methods=["POST"]),
        Route(f"{p}/tasks/{{digest}}/view", guarded(view), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.scheduler = scheduler
    return app
