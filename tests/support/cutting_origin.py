"""A tiny file origin that breaks its first body off: for the resume case, which nginx cannot be made to do
deterministically. It serves one file with a strong ETag, HEAD, Range and If-Match (412), and records every
request (method, Range, If-Match, body bytes sent).

    with CuttingOrigin(data, cut_after=5 * MiB) as origin:
        origin.base_url + "/file.bin"
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.support.http_server import BackgroundHTTPServer


@dataclass
class Served:
    method: str
    range: str
    if_match: str
    sent: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class CuttingOrigin(BackgroundHTTPServer):
    data: bytes
    # The first GET's body is cut off after this many bytes (the connection closed mid-body).
    cut_after: int
    served: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.data).hexdigest()[:16] + '"'

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                asked, if_match = self.headers.get("Range", ""), self.headers.get("If-Match", "")
                data = origin.data
                if if_match and if_match != origin.etag:
                    self.send_response(412)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end, status = 0, len(data) - 1, 200
                if asked.startswith("bytes="):
                    first, _, last = asked[6:].partition("-")
                    start, end, status = int(first), int(last) if last else len(data) - 1, 206
                self.send_response(status)
                self.send_header("ETag", origin.etag)
                self.send_header("Content-Length", str(end - start + 1))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                sent = 0
                if body:
                    with origin.lock:
                        first_get = not any(s.method == "GET" for s in origin.served)
                    chunk = data[start : end + 1]
                    if first_get:
                        chunk = chunk[: origin.cut_after]
                    self.wfile.write(chunk)
                    sent = len(chunk)
                    if first_get:
                        self.wfile.flush()
                        self.close_connection = True
                with origin.lock:
                    origin.served.append(Served(self.command, asked, if_match, sent, dict(self.headers.items())))

        return Handler
