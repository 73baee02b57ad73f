"""Keep real clients on loopback: no machine proxy, and a dead proxy for anything that is not loopback.

A client that silently falls back from the mirror to the "real" registry (docker does, for Docker Hub names)
must fail at once instead of leaving the machine, so no test can pass through a fallback and no test sends
traffic anywhere but 127.0.0.1.
"""

from __future__ import annotations

import os

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
# A proxy that does not exist: Go clients (containerd, dockerd, podman) send everything that is not loopback
# through it, so a client that falls back to the "real" registry fails at once instead of leaving the machine.
# Go never proxies loopback addresses, so the mirror, the upstream and the token realm are reached directly.
FENCE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with the machine's proxy settings replaced by the fence."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    env.update(FENCE)
    env.update(extra or {})
    return env


def fenced_overrides() -> dict[str, str | None]:
    """ManagedProcess `env` overrides with the same effect as `clean_env`."""
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.lower() in _PROXY_VARS}
    overrides.update(FENCE)
    return overrides
