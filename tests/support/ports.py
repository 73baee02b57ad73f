"""Loopback ports and HTTP readiness polling.

Ports come from binding port 0 so the kernel picks one that is free right now;
there is a small window before the server under test binds it, which is the
accepted trade-off (the alternative, fixed ports, collides between runs).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping

import httpx

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # No SO_REUSEADDR: we want a port that is genuinely unused, not one
        # still in TIME_WAIT from an earlier test.
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class NotReadyError(TimeoutError):
    """The URL did not answer as expected before the deadline."""


def wait_http(
    url: str,
    timeout: float = 15.0,
    expect_status: int | None = None,
    *,
    interval: float = 0.05,
    check: Callable[[], None] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Poll ``url`` with GET until it answers; return the answering response.

    ``expect_status=None`` accepts any HTTP answer (a 401 from an auth-enabled
    registry still proves it is up); otherwise keep polling until that exact
    status comes back. ``check`` runs before every attempt and may raise, which
    lets a caller abort early, e.g. when the process it waits for has died,
    instead of sitting out the whole timeout.
    """
    deadline = time.monotonic() + timeout
    last: str = "no attempt made"
    # trust_env=False: an HTTP(S)_PROXY in the environment must never divert
    # loopback test traffic to a proxy.
    with httpx.Client(trust_env=False, timeout=min(5.0, max(timeout, 0.1))) as client:
        while True:
            if check is not None:
                check()
            try:
                response = client.get(url, headers=dict(headers or {}))
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if expect_status is None or response.status_code == expect_status:
                    return response
                last = f"status {response.status_code}"
            if time.monotonic() >= deadline:
                raise NotReadyError(
                    f"{url} not ready after {timeout:.1f}s (expected status {expect_status}); last result: {last}"
                )
            time.sleep(interval)
