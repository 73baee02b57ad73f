"""The supernode's requests and answers as plain ASGI, and a fast path past Starlette for the frequent ones.

Views, reports, heartbeats and joins are nearly all a supernode answers: about 36,000 a second for 10,000 hosts
(docs/benchmarks.md). Under load, Starlette's layers around a handler (two middlewares, a router that tries each
route's regex in turn, a Request, a Response and their headers) cost more CPU than the scheduler's own work for
these requests. So every endpoint here is a plain ASGI app: Starlette still routes to it (its 404, 405, trailing
slash redirect and HEAD handling stay as they are), and `FastPath` sends the frequent requests, when method and
path match exactly, straight to the same endpoint. Both are built from one table (supernode/routes.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from .api import API_PREFIX, BadRequest
from .routes import ApiRoute

MAX_BODY = 1 << 20
JSON_TYPE = b"application/json"


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: bytes = b""


# As Starlette's JSONResponse renders JSON; built once, as json.dumps with options builds an encoder per call.
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode


def json_answer(payload: Any, status: int = 200) -> Answer:
    return Answer(status, _encode(payload).encode(), JSON_TYPE)


def error_answer(status: int, message: str) -> Answer:
    return json_answer({"error": message}, status)


NO_CONTENT = Answer(204)


class Call:
    """One request as a handler sees it: the path parameter, headers, query and body."""

    __slots__ = ("param", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive, param: str) -> None:
        self.scope = scope
        self.receive = receive
        self.param = param

    def header(self, name: bytes) -> str:
        """The first value of a header (`name` in lower case), as Starlette's Headers.get gives it."""
        for key, value in self.scope["headers"]:
            if key == name:
                return str(value.decode("latin-1"))
        return ""

    def query(self) -> dict[str, str]:
        """Query parameters, the last of repeated ones winning, as Starlette's QueryParams.get does."""
        text = self.scope["query_string"].decode("latin-1")
        if "%" in text or "+" in text:
            return dict(parse_qsl(text, keep_blank_values=True))
        # Nothing to unquote (what peers send): parse_qsl's split, without its unquoting of every name and value.
        query = {}
        for pair in text.split("&"):
            if pair:
                name, _, value = pair.partition("=")
                query[name] = value
        return query

    async def body(self) -> bytes:
        raw = b""
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk: bytes = message.get("body", b"")
            raw += chunk
            if len(raw) > MAX_BODY:
                raise BadRequest("body too large")
            if not message.get("more_body", False):
                return raw

    async def disconnected(self) -> None:
        """Returns once the client has gone (its connection closed or reset); for a request without a body."""
        while (await self.receive())["type"] != "http.disconnect":
            pass

    async def json(self) -> dict[str, Any]:
        raw = await self.body()
        try:
            body = json.loads(raw) if raw else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest("body is not JSON") from exc
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body


Handler = Callable[[Call], Awaitable[Answer]]


class Endpoint:
    """A handler as an ASGI app (an object, not a function, so that Starlette routes to it as to an app)."""

    def __init__(self, handler: Handler, param: str = "") -> None:
        self.handler = handler
        self.param = param

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        param = scope["path_params"][self.param] if self.param else ""
        await self.serve(scope, receive, send, param)

    async def serve(self, scope: Scope, receive: Receive, send: Send, param: str) -> None:
        answer = await self.handler(Call(scope, receive, param))
        headers = []
        # As Starlette's Response: no length (and no type) on a 204.
        if answer.status != 204:
            headers.append((b"content-length", str(len(answer.body)).encode()))
        if answer.content_type:
            headers.append((b"content-type", answer.content_type))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


class FastPath:
    """Requests to `API_PREFIX/<collection>/<param>/<action>` go straight to their endpoint; all else to `app`.

    Of `endpoints`, those whose route has that shape (`ApiRoute.fast_key`) are taken: heartbeats, joins, reports
    and views, the frequent ones. They are kept by (method, collection, action), one dict lookup per request. The
    parameter matches as Starlette's `{param}` does (one non-empty path segment), so an exact match here is one
    Starlette would route to the same endpoint.
    """

    def __init__(
        self, app: ASGIApp, endpoints: Mapping[ApiRoute, Endpoint], begin_stop: Callable[[], None] | None = None
    ) -> None:
        self.app = app
        # Called by the process runner on SIGTERM before the server stops accepting (damselfly/cli.py).
        self.begin_stop = begin_stop or (lambda: None)
        self.routes: dict[tuple[str, str, str], Endpoint] = {}
        for route, endpoint in endpoints.items():
            if (key := route.fast_key) is not None:
                self.routes[key] = endpoint
        self.prefix = API_PREFIX + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(self.prefix) and not scope.get("root_path"):
                parts = path[len(self.prefix) :].split("/")
                if len(parts) == 3 and parts[1]:
                    endpoint = self.routes.get((scope["method"], parts[0], parts[2]))
                    if endpoint is not None:
                        await endpoint.serve(scope, receive, send, parts[1])
                        return
        await self.app(scope, receive, send)
