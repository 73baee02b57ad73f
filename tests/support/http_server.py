"""The base of the tests' small stand-in HTTP servers: a stdlib server on loopback, answering from a thread.

A subclass says how requests are answered (`_handler_class`); `start`/`stop`, or `with`, run it and `base_url`
says where it listens. The server binds port 0 itself, so unlike `free_port` there is no window in which
another process could take the port.

    class Echo(BackgroundHTTPServer):
        def _handler_class(self) -> type[BaseHTTPRequestHandler]: ...

    with Echo() as echo:
        httpx.get(echo.base_url + "/")
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

from tests.support.ports import LOOPBACK


class BackgroundHTTPServer(ABC):
    # Class attributes rather than dataclass fields, so a dataclass subclass's own fields keep their order
    # (and may go without defaults); start() and stop() set them on the instance.
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @abstractmethod
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The handler class the server answers every request with (a new instance per connection)."""

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`, without a trailing slash."""
        assert self._server is not None, f"{type(self).__name__} not started"
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> Self:
        server = ThreadingHTTPServer((LOOPBACK, 0), self._handler_class())
        # A client that never closes its connection must not keep the test process alive.
        server.daemon_threads = True
        self._server = server
        # A short poll interval keeps stop() (shutdown waits for the poll) quick.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
