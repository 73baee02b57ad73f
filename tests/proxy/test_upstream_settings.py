"""The peer's upstream settings reach the registry client: as many attempts as configured, each failure retried
by one loop only (never the client's attempts times the download's), and the configured read timeout.

The mirror (proxy app and peer, in-process under the product's uvicorn) talks to a stand-in upstream that
counts every request and answers 503, or holds its answer back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from peer.config import PeerConfig
from peer.service import PeerService
from proxy.app import create_app
from proxy.config import ProxyConfig
from tests.faults.helpers import oci_error_code
from tests.faults.servers import asgi_server
from tests.support.http_server import BackgroundHTTPServer
from upstream.config import UpstreamConfig
from upstream.registry import UpstreamRegistry

REPO = "team/app"
# The access check (HEAD) of this blob is granted; its body (GET) always meets a 503.
GRANTED = "sha256:" + "a" * 64
# Even the access check of this one meets a 503.
REFUSED = "sha256:" + "b" * 64
# The access check of this one is answered only after `hold` seconds.
SLOW = "sha256:" + "c" * 64


@dataclass
class FailingUpstream(BackgroundHTTPServer):
    """A registry that fails: records `METHOD path` of every request."""

    hold: float = 10.0
    requests: list[str] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def count(self, method: str, path: str) -> int:
        return self.requests.count(f"{method} {path}")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer()

            def do_GET(self) -> None:
                self._answer()

            def _answer(self) -> None:
                upstream.requests.append(f"{self.command} {self.path}")
                if self.path.endswith(SLOW):
                    upstream.released.wait(upstream.hold)
                if self.command == "HEAD" and self.path.endswith((GRANTED, SLOW)):
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                else:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def stop(self) -> None:
        self.released.set()
        super().stop()


@pytest.fixture
def upstream() -> Iterator[FailingUpstream]:
    with FailingUpstream() as server:
        yield server


@contextlib.contextmanager
def mirror(data_dir: Path, upstream: FailingUpstream, settings: UpstreamConfig) -> Iterator[str]:
    """The mirror's base URL, its peer configured with `settings` and the stand-in as its only registry."""
    name = upstream.base_url.removeprefix("http://")
    proxy_config = ProxyConfig(
        listen_host="127.0.0.1", listen_port=0, default_registry=name,
        registries={name: UpstreamRegistry(name=name, url=upstream.base_url)}, prefetch=False,
    )
    peer = PeerService(PeerConfig(data_dir=data_dir, upload_host="127.0.0.1", upload_port=0, upstream=settings))
    with asgi_server(create_app(proxy_config, peer), cleanup=peer.close) as port:
        yield f"http://127.0.0.1:{port}"


def test_each_request_is_tried_as_often_as_configured_once(tmp_path: Path, upstream: FailingUpstream) -> None:
    settings = UpstreamConfig(attempts=2, backoff=0.01)
    with mirror(tmp_path, upstream, settings) as url, httpx.Client(base_url=url, timeout=30.0) as client:
        manifest = client.get(f"/v2/{REPO}/manifests/v1")
        refused = client.get(f"/v2/{REPO}/blobs/{REFUSED}")
        granted = client.get(f"/v2/{REPO}/blobs/{GRANTED}")
    assert manifest.status_code == 503, manifest.text
    assert upstream.count("GET", f"/v2/{REPO}/manifests/v1") == 2
    # The access check meets a 503 each time: the upstream's unavailability is passed on.
    assert (refused.status_code, oci_error_code(refused.content)) == (503, "UNAVAILABLE")
    assert upstream.count("HEAD", f"/v2/{REPO}/blobs/{REFUSED}") == 2
    assert upstream.count("GET", f"/v2/{REPO}/blobs/{REFUSED}") == 0
    # The body's GET is tried twice by the client and not once more by the download's own loop.
    assert (granted.status_code, oci_error_code(granted.content)) == (502, "UPSTREAM_FAILED")
    assert upstream.count("HEAD", f"/v2/{REPO}/blobs/{GRANTED}") == 1
    assert upstream.count("GET", f"/v2/{REPO}/blobs/{GRANTED}") == 2


def test_an_upstream_silent_past_the_read_timeout_fails_the_request(
    tmp_path: Path, upstream: FailingUpstream
) -> None:
    settings = UpstreamConfig(attempts=1, read_timeout=0.5)
    # Shorter than the upstream's hold: a mirror that ignored the setting leaves this client to time out.
    with mirror(tmp_path, upstream, settings) as url, httpx.Client(base_url=url, timeout=8.0) as client:
        started = time.monotonic()
        slow = client.get(f"/v2/{REPO}/blobs/{SLOW}")
        took = time.monotonic() - started
    assert (slow.status_code, oci_error_code(slow.content)) == (502, "UPSTREAM_FAILED")
    assert upstream.count("HEAD", f"/v2/{REPO}/blobs/{SLOW}") == 1
    # Well before the upstream answers (10 s), let alone the 30 s the client once waited whatever was configured.
    assert took < 5.0, took
