"""What every console page and form does: call a route of the table in-process (manager/dispatch.py, the API's own
checks and audit), learn who is looking, and render a template."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..api_errors import ApiError, unauthenticated
from ..context import Context, Platform
from ..dispatch import dispatch
from ..request_body import JsonObject
from ..routes import ROUTES, ApiRoute
from .cookies import SESSION_COOKIE, csrf_of

ROUTES_BY_NAME: dict[str, ApiRoute] = {route.name: route for route in ROUTES}
TEMPLATES = Path(__file__).parent / "templates"
# Pages are per user and hold CSRF tokens: never cached, never framed, no script but ours.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """A route's answer, as the console reads it."""

    status: int
    data: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        if isinstance(self.data, dict) and isinstance(self.data.get("message"), str):
            return str(self.data["message"])
        return f"the request failed ({self.status})"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at a page: what the page shows, and which of its controls, follows their permissions."""

    name: str
    role: str
    permissions: frozenset[str]
    csrf: str
    # The clusters the role holds in; empty: all (manager/scopes.py).
    clusters: frozenset[str] = frozenset()

    def may(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(slots=True)
class Notes:
    """What a page says above its content: an error, or a secret shown this once."""

    error: str = ""
    secret: dict[str, str] = field(default_factory=dict)


class Console:
    def __init__(self, platform_of: Callable[[], Platform | None], stopping: asyncio.Event) -> None:
        self._platform_of = platform_of
        # Set as the server begins to stop: the open event streams end, so that the stop need not wait them out.
        self.stopping = stopping
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(size=size, rate=rate, when=when)

    @property
    def platform(self) -> Platform:
        platform = self._platform_of()
        assert platform is not None, "the manager answers 503 itself until the platform is up"
        return platform

    async def call(self, request: Request, name: str, fields: dict[str, Any] | None = None,
                   early_error: ApiError | None = None, query: dict[str, str] | None = None) -> Outcome:
        """Route `name`'s handler, for the caller of the session cookie, with `fields` as its body; `query`, when
        given, in place of the page's own query string."""
        if query is not None:
            request = Request({**request.scope, "query_string": urlencode(query).encode()}, request.receive)
        response = await self.respond(request, name, fields, early_error)
        body = bytes(response.body)
        return Outcome(response.status_code, json.loads(body) if body else None)

    async def respond(self, request: Request, name: str, fields: dict[str, Any] | None = None,
                      early_error: ApiError | None = None) -> Response:
        """As `call`, the handler's response as it is (a CSV download)."""
        route = ROUTES_BY_NAME[name]
        ctx = Context(request, route, self.platform, None,
                      target=",".join(str(v)[:64] for v in request.path_params.values()),
                      form=JsonObject(fields or {}), early_error=early_error)

        def credential() -> str:
            token = request.cookies.get(SESSION_COOKIE, "")
            if not token:
                raise unauthenticated("log in first")
            return token

        return await dispatch(ctx, credential)

    async def viewer(self, request: Request) -> Viewer | None:
        me = await self.call(request, "me")
        if not me.ok:
            return None
        return Viewer(me.data["name"], me.data["role"], frozenset(me.data["permissions"]),
                      csrf_of(request.cookies.get(SESSION_COOKIE, "")), frozenset(me.data.get("clusters", ())))

    def render(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        html = self.env.get_template(template).render(path=request.url.path, **values)
        return HTMLResponse(html, status, headers=HEADERS)


def to_login(request: Request) -> Response:
    return RedirectResponse(f"/console/login?next={request.url.path}", 303)


def size(value: int) -> str:
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def rate(value: int) -> str:
    return f"{size(value)}/s"


def when(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))
