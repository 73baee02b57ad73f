"""The console's routes, mounted in the manager's app (manager/app.py): `/` leads to it, its pages and forms are
under `/console/`, its scripts and styles under `/console/static/`, all served from the package."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..context import Platform
from . import analysis, pages, session, tasks
from .actions import ACTIONS, endpoint
from .web import Console, Notes, to_login

STATIC = Path(__file__).parent / "static"
PAGES: tuple[tuple[str, pages.Page], ...] = (
    ("/console/", pages.overview),
    ("/console/hosts", pages.hosts),
    ("/console/clusters", pages.clusters),
    ("/console/users", pages.users),
    ("/console/tokens", pages.tokens),
    ("/console/tasks", tasks.task_list),
    ("/console/tasks/new", tasks.new_task),
    ("/console/tasks/{task_id}", tasks.task_page),
    ("/console/analysis", analysis.analysis),
    ("/console/audit", pages.audit),
    ("/console/account", pages.account),
)


def _page(console: Console, page: pages.Page) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        viewer = await console.viewer(request)
        if viewer is None:
            return to_login(request)
        return await page(console, request, viewer, Notes(), 200)

    return serve


def _bound(console: Console, handler: Callable[[Console, Request], Awaitable[Response]]
           ) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return await handler(console, request)

    return serve


def _signed_in(handler: Callable[[Console, Request], Awaitable[Response]]
               ) -> Callable[[Console, Request], Awaitable[Response]]:
    """A stream or a download: without a session, a 401 (not a redirect to the login page a script cannot show)."""
    async def serve(console: Console, request: Request) -> Response:
        if await console.viewer(request) is None:
            return JSONResponse({"code": "unauthenticated", "message": "log in first"}, 401,
                                headers={"Cache-Control": "no-store"})
        return await handler(console, request)

    return serve


async def _home(request: Request) -> Response:
    return RedirectResponse("/console/", 303)


def routes(platform_of: Callable[[], Platform | None], stopping: asyncio.Event) -> list[BaseRoute]:
    console = Console(platform_of, stopping)
    found: list[BaseRoute] = [
        Route("/", _home, methods=["GET"]),
        Route("/console", _home, methods=["GET"]),
        Route("/console/login", _bound(console, session.login_page), methods=["GET"]),
        Route("/console/login", _bound(console, session.login), methods=["POST"]),
        Route("/console/logout", _bound(console, session.logout), methods=["POST"]),
        Route("/console/tasks", _bound(console, tasks.create), methods=["POST"]),
        Route("/console/tasks/{task_id}/stream", _bound(console, _signed_in(tasks.stream)), methods=["GET"]),
        Route("/console/analysis/traffic.csv", _bound(console, _signed_in(analysis.download)), methods=["GET"]),
        Mount("/console/static", StaticFiles(directory=STATIC), name="console-static"),
    ]
    found += [Route(path, _page(console, page), methods=["GET"]) for path, page in PAGES]
    found += [Route(path, endpoint(console, action), methods=["POST"]) for path, action in (*ACTIONS, *tasks.ACTIONS)]
    return found
