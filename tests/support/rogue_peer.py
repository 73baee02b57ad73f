"""A member of the cluster that lies: it speaks the supernode's protocol as a peer does, but publishes piece
digests of garbage and serves that garbage (or answers "not here" to every piece request).

It holds the cluster's secret (a rogue process on a member host, or a broken peer), and an identity of its own:
it can lie about itself, not speak for others (supernode/identity.py). Used by tests/faults/test_rogue_feeder.py.

    with RoguePeer(supernode_url, join_token) as rogue:
        rogue.claim(digest, size)          # joins first, becomes the feeder, publishes fake digests, says done
        ...                                # honest hosts pull
        rogue.requests                     # piece requests it was sent
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self

import httpx

from core.pieces import PieceLayout, choose_piece_size
from supernode import routes
from supernode.api import TOKEN_HEADER, mask_to_hex
from supernode.identity import CREDENTIAL_HEADER, PEER_HEADER, bound_peer_id
from tests.support.http_server import BackgroundHTTPServer

PIECE_PATH = re.compile(r"^/pieces/(?P<digest>[^/]+)/(?P<index>\d+)")
HEARTBEAT_EVERY = 1.0


@dataclass
class RoguePeer(BackgroundHTTPServer):
    supernode_url: str
    join_token: str = ""
    # True: every piece request is answered 404 ("not here"), so children get nothing from it.
    withhold: bool = False
    peer_id: str = ""
    credential: str = ""
    # Garbage per blob: its pieces, what the rogue serves and publishes digests of.
    garbage: dict[str, list[bytes]] = field(default_factory=dict)
    requests: int = 0
    _secret: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Self:
        self.start()
        self._secret = secrets.token_urlsafe(32)
        self.peer_id = bound_peer_id("rogue", self._secret)
        port = int(self.base_url.rsplit(":", 1)[1])
        body = {"peer_id": self.peer_id, "upload_port": port, "peer_secret": self._secret}
        answer = self.call("POST", routes.REGISTER.url(), body)
        assert answer.status_code == 200, answer.text
        self.credential = answer.json()["credential"]
        self._beat = threading.Thread(target=self._heartbeats, name="rogue-heartbeat", daemon=True)
        self._beat.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        self.stop()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: str) -> httpx.Response:
        headers = {TOKEN_HEADER: self.join_token} if self.join_token else {}
        if self.credential:
            headers[CREDENTIAL_HEADER] = self.credential
            headers[PEER_HEADER] = self.peer_id
        return httpx.request(
            method, self.supernode_url + path, json=body, params=params or None, headers=headers, timeout=10.0,
            trust_env=False,
        )

    def claim(self, digest: str, size: int, *, done: bool = True) -> httpx.Response:
        """Join the swarm of `digest` (as its feeder if first) and publish the digests of garbage pieces."""
        layout = PieceLayout(size, choose_piece_size(size))
        rng = random.Random(digest)
        pieces = [rng.randbytes(layout.length(i)) for i in range(layout.count)]
        with self._lock:
            self.garbage[digest] = pieces
        join = self.call("POST", routes.JOIN.url(digest=digest), {"peer_id": self.peer_id, "size": size})
        assert join.status_code == 200, join.text
        report = {
            "peer_id": self.peer_id,
            "pieces": mask_to_hex((1 << layout.count) - 1),
            "piece_digests": {str(i): hashlib.sha256(p).hexdigest() for i, p in enumerate(pieces)},
            "done": done,
        }
        return self.call("POST", routes.REPORT.url(digest=digest), report)

    def _heartbeats(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            # The supernode may be restarting; the next beat tries again.
            with contextlib.suppress(httpx.HTTPError):
                self.call("POST", routes.HEARTBEAT.url(peer_id=self.peer_id))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        rogue = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                found = PIECE_PATH.match(self.path)
                with rogue._lock:
                    rogue.requests += 1
                    pieces = rogue.garbage.get(found["digest"]) if found else None
                index = int(found["index"]) if found else -1
                if rogue.withhold or pieces is None or not 0 <= index < len(pieces):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(pieces[index])))
                self.end_headers()
                self.wfile.write(pieces[index])

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
