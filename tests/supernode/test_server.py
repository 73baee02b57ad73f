"""The supernode's HTTP API in process, over raw ASGI: the fast path answers exactly as Starlette's routes do.

`FastPath` sends joins, reports, views and heartbeats straight to their endpoints; every request is sent both ways
here (the fast path first, then the Starlette app behind it) and the answers compared byte for byte, for good
requests, for each kind of error, and for requests the fast path must leave to Starlette (a wrong method, a
trailing slash, HEAD). Hosts register with bound ids and carry their credentials (tests/support/identities.py);
what a call without them is answered is tests/supernode/test_identity.py's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message

from supernode.asgi import FastPath
from supernode.config import SupernodeConfig
from supernode.server import create_app
from tests.support.identities import Registered, asgi_headers, register_body, registered

TOKEN = "s3cret"
DIGEST = "sha256:" + hashlib.sha256(b"blob").hexdigest()
SIZE = 10 << 20  # three pieces
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


async def call(
    app: ASGIApp, method: str, path: str, body: Any = None, query: str = "", token: str | None = TOKEN,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    raw_headers = [(b"host", b"supernode"), (b"content-type", b"application/json")]
    if token is not None:
        raw_headers.append((b"x-damselfly-token", token.encode()))
    raw_headers += asgi_headers(headers or {})
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": raw_headers, "client": ("10.1.2.3", 5555), "server": ("127.0.0.1", 8002),
    }
    messages: list[Message] = [{"type": "http.request", "body": raw, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], list(sent[0].get("headers", [])), b"".join(m.get("body", b"") for m in sent[1:])


async def both(app: FastPath, method: str, path: str, **kwargs: Any) -> Answer:
    fast = await call(app, method, path, **kwargs)
    routed = await call(app.app, method, path, **kwargs)
    assert fast == routed, f"{method} {path}: fast path {fast} but Starlette {routed}"
    return fast


def supernode(**config: Any) -> FastPath:
    app = create_app(SupernodeConfig(join_token=TOKEN, view_wait=1.0, **config))
    assert isinstance(app, FastPath)
    return app


async def register(app: ASGIApp, name: str) -> Registered:
    status, _, body = await call(app, "POST", "/api/v1/peers", register_body(name))
    assert status == 200, body
    return registered(name, json.loads(body))


async def test_the_frequent_requests_answer_the_same_either_way() -> None:
    app = supernode()
    p0 = await register(app, "p0")
    p1 = await register(app, "p1")
    swarm = f"/api/v1/swarms/{DIGEST}"
    join = {"peer_id": p0.peer_id, "size": SIZE}
    status, headers, body = await both(app, "POST", f"{swarm}/join", body=join, headers=p0.headers)
    assert status == 200 and json.loads(body)["role"] == "feeder"
    assert headers == [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    join = {"peer_id": p1.peer_id, "size": SIZE}
    status, _, body = await both(app, "POST", f"{swarm}/join", body=join, headers=p1.headers)
    assert json.loads(body)["parents"][0]["peer_id"] == p0.peer_id
    report = {"peer_id": p0.peer_id, "pieces": "1", "piece_digests": {"0": "c" * 64}}
    status, headers, body = await both(app, "POST", f"{swarm}/report", body=report, headers=p0.headers)
    # The source is told how many others still need pieces (it paces its digest reports by it); children not.
    assert (status, json.loads(body)) == (200, {"waiting": 1})
    assert headers == [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    report = {"peer_id": p1.peer_id, "pieces": "1"}
    status, headers, body = await both(app, "POST", f"{swarm}/report", body=report, headers=p1.headers)
    assert (status, headers, body) == (204, [], b"")
    query = f"peer_id={p1.peer_id}&since=-1&wait=0&from=0"
    status, _, body = await both(app, "GET", f"{swarm}/view", query=query, headers=p1.headers)
    assert status == 200 and json.loads(body)["piece_digests"] == ["c" * 64, "", ""]
    status, headers, body = await both(app, "POST", f"/api/v1/peers/{p1.peer_id}/heartbeat", headers=p1.headers)
    assert (status, headers, body) == (204, [], b"")


async def test_errors_answer_the_same_either_way() -> None:
    app = supernode()
    p0 = await register(app, "p0")
    p1 = await register(app, "p1")
    me, swarm, beat = p0.peer_id, f"/api/v1/swarms/{DIGEST}", f"/api/v1/peers/{p0.peer_id}/heartbeat"
    # Every case is sent as p0, with its credential, unless it says otherwise.
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("POST", "/api/v1/peers/nobody/heartbeat", {}, 410),
        ("POST", beat, {"token": "wrong"}, 401),
        ("POST", beat, {"token": None}, 401),
        ("POST", beat, {"headers": {}}, 403),
        ("POST", beat, {"headers": {"X-Damselfly-Peer-Credential": "wrong"}}, 403),
        ("POST", beat, {"headers": p1.headers}, 403),
        ("POST", "/api/v1/swarms/sha256:nothex/join", {"body": {"peer_id": me, "size": 1}}, 400),
        ("POST", f"{swarm}/join", {"body": {"peer_id": "nobody", "size": 1}}, 410),
        ("POST", f"{swarm}/join", {"body": {"peer_id": me, "size": 1}, "headers": p1.headers}, 403),
        ("POST", f"{swarm}/join", {"body": b"{not json"}, 400),
        ("POST", f"{swarm}/join", {"body": [1, 2]}, 400),
        ("POST", f"{swarm}/join", {"body": {"peer_id": me, "size": -1}}, 400),
        ("POST", f"{swarm}/join", {"body": b"{" + b" " * (1 << 20) + b"}"}, 400),
        ("POST", f"{swarm}/report", {"body": {"peer_id": me}}, 404),
        ("POST", f"{swarm}/report", {"body": {"peer_id": me}, "headers": {}}, 403),
        ("GET", f"{swarm}/view", {"query": f"peer_id={me}&since=x"}, 400),
        ("GET", f"{swarm}/view", {"query": f"peer_id={me}&wait=nan"}, 404),
        ("GET", f"{swarm}/view", {"query": f"peer_id={me}"}, 404),
        ("GET", f"{swarm}/view", {"query": f"peer_id={me}", "headers": p1.headers}, 403),
        # Not the fast path's: a wrong method, a trailing slash, HEAD, an empty parameter, an unknown action.
        ("GET", f"{swarm}/join", {}, 405),
        ("POST", f"{swarm}/view", {}, 405),
        ("POST", f"{swarm}/join/", {"body": {"peer_id": me, "size": 1}}, 307),
        ("HEAD", f"{swarm}/view", {"query": f"peer_id={me}"}, 404),
        ("POST", "/api/v1/swarms//join", {"body": {"peer_id": me, "size": 1}}, 404),
        ("POST", f"{swarm}/leave", {}, 404),
    ]
    for method, path, kwargs, expected in cases:
        kwargs = {"headers": p0.headers, **kwargs}
        status, headers, body = await both(app, method, path, **kwargs)
        assert status == expected, f"{method} {path} {kwargs}: {status} {body[:200]!r}"
        if (b"content-type", b"application/json") in headers:
            assert "error" in json.loads(body)


async def test_a_long_poll_returns_as_soon_as_the_source_reports_a_digest() -> None:
    app = supernode()
    p0 = await register(app, "p0")
    p1 = await register(app, "p1")
    swarm = f"/api/v1/swarms/{DIGEST}"
    await call(app, "POST", f"{swarm}/join", {"peer_id": p0.peer_id, "size": SIZE}, headers=p0.headers)
    _, _, body = await call(app, "POST", f"{swarm}/join", {"peer_id": p1.peer_id, "size": SIZE}, headers=p1.headers)
    version = json.loads(body)["version"]
    query = f"peer_id={p1.peer_id}&since={version}&wait=5&from=0"
    started = time.monotonic()
    poll = asyncio.create_task(call(app, "GET", f"{swarm}/view", query=query, headers=p1.headers))
    await asyncio.sleep(0.1)
    assert not poll.done(), "no news yet: the view waits"
    report = {"peer_id": p0.peer_id, "pieces": "1", "piece_digests": {"0": "c" * 64}}
    await call(app, "POST", f"{swarm}/report", report, headers=p0.headers)
    status, _, body = await asyncio.wait_for(poll, 1.0)
    assert status == 200 and json.loads(body)["piece_digests"][0] == "c" * 64
    assert time.monotonic() - started < 1.0
    # A wait that is no number to wait for answers at once.
    for odd in ("nan", "-1", "-inf"):
        started = time.monotonic()
        query = f"peer_id={p1.peer_id}&since={version}&wait={odd}&from=1"
        status, _, _ = await call(app, "GET", f"{swarm}/view", query=query, headers=p1.headers)
        assert status == 200 and time.monotonic() - started < 0.5, odd
    # Without news a long-poll answers once its wait (capped by the supernode's view_wait, 1 s here) is over.
    started = time.monotonic()
    query = f"peer_id={p1.peer_id}&since={version}&wait=30&from=1"
    status, _, _ = await call(app, "GET", f"{swarm}/view", query=query, headers=p1.headers)
    assert status == 200 and 0.9 <= time.monotonic() - started < 3.0
