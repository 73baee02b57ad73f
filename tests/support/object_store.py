"""A stand-in for the object storage a registry redirects blob downloads to (307 to S3, GCS, a CDN).

The real registry does the redirecting: docker-registry's `redirect` storage middleware answers blob GETs and
HEADs with `307 Location: <baseurl><path in storage>`. This server serves that storage directory read-only,
with single Range requests, and records every request (path, status, bytes, headers) so a test can count the
bytes it sent and check that no `Authorization` meant for the registry followed the redirect here.

    with ObjectStore(registry.storage_dir) as store:
        RegistryServer(..., extra_config=store.registry_middleware())
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.support.http_server import BackgroundHTTPServer

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class ObjectRequest:
    method: str
    path: str
    status: int
    written: int
    authorization: str | None


@dataclass
class ObjectStore(BackgroundHTTPServer):
    root: Path
    requests: list[ObjectRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{self.base_url}/"

    def registry_middleware(self) -> dict[str, Any]:
        """`extra_config` for RegistryServer: redirect blob downloads here."""
        return {"middleware": {"storage": [{"name": "redirect", "options": {"baseurl": self.url}}]}}

    def served_bytes(self) -> int:
        with self._lock:
            return sum(r.written for r in self.requests if r.method == "GET")

    def recorded(self) -> list[ObjectRequest]:
        with self._lock:
            return list(self.requests)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def _record(self, request: ObjectRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _handler_for(store: ObjectStore) -> type[BaseHTTPRequestHandler]:
    root = store.root.resolve()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            path = (root / self.path.split("?", 1)[0].lstrip("/")).resolve()
            if not path.is_relative_to(root) or not path.is_file():
                self._finish(404, b"not found\n", body)
                return
            data = path.read_bytes()
            status, start, end = 200, 0, len(data) - 1
            match = _RANGE.match(self.headers.get("Range", ""))
            if match is not None and data:
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
                if start > end:
                    self._finish(416, b"", body, {"Content-Range": f"bytes */{len(data)}"})
                    return
                status = 206
            headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            if status == 206:
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._finish(status, data[start : end + 1], body, headers)

        def _finish(self, status: int, data: bytes, body: bool, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            written = 0
            if body:
                self.wfile.write(data)
                written = len(data)
            store._record(
                ObjectRequest(self.command, self.path, status, written, self.headers.get("Authorization"))
            )

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
