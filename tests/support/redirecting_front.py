"""A registry that redirects where it should not: a front on loopback for a real registry, and the "internal" service
its redirects point at.

`RedirectingFront` answers manifest and blob requests (the methods in `redirected`) with `307 Location:
<redirect_to><path>`; every other request (the `/v2/` ping, a blob HEAD left alone, and anything under
`/forward`, without that prefix: a redirect to the front's own origin) is forwarded to the real registry behind it
and its answer relayed. `InternalService` stands for what must stay unreachable (a loopback
admin port, a metadata service): it records every request and answers each with `SECRET`.

    with InternalService() as internal, RedirectingFront(registry.url, internal.base_url) as front:
        ...  # an upstream registry at front.base_url
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import httpx

from tests.support.http_server import BackgroundHTTPServer

SECRET = b'{"internal": "the answer of a service no registry client may reach"}'
# Requests under this prefix are forwarded to the registry, never redirected.
FORWARD = "/forward"
HOP_HEADERS = frozenset({"connection", "transfer-encoding", "keep-alive"})


@dataclass
class InternalService(BackgroundHTTPServer):
    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def recorded(self) -> list[str]:
        with self._lock:
            return list(self.requests)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(body=True)

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def _answer(self, *, body: bool) -> None:
                with service._lock:
                    service.requests.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                self.send_header("Content-Length", str(len(SECRET)))
                self.end_headers()
                if body:
                    self.wfile.write(SECRET)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@dataclass
class RedirectingFront(BackgroundHTTPServer):
    # The real registry requests are forwarded to, and the base URL (or full origin) redirects point at.
    registry_url: str
    redirect_to: str
    # Which methods of manifest and blob requests are redirected (the others are forwarded).
    redirected: frozenset[str] = frozenset({"GET", "HEAD"})
    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def redirects(self) -> list[str]:
        """`METHOD path` of each request answered with a redirect."""
        with self._lock:
            return list(self.requests)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer()

            def do_HEAD(self) -> None:
                self._answer()

            def _answer(self) -> None:
                about_content = "/manifests/" in self.path or "/blobs/" in self.path
                if self.path.startswith(FORWARD + "/"):
                    self._forward(self.path.removeprefix(FORWARD))
                elif about_content and self.command in front.redirected:
                    with front._lock:
                        front.requests.append(f"{self.command} {self.path}")
                    self.send_response(307)
                    self.send_header("Location", front.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._forward(self.path)

            def _forward(self, path: str) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS | {"host"}}
                with httpx.Client(base_url=front.registry_url, trust_env=False, timeout=30) as client:
                    answer = client.request(self.command, path, headers=headers)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_HEADERS | {"content-length", "content-encoding"}:
                        self.send_header(name, value)
                length = answer.headers.get("content-length") if self.command == "HEAD" else str(len(answer.content))
                self.send_header("Content-Length", length or "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
