"""The real CNCF registry (`docker-registry serve`) as upstream and as central pull-through cache.

Bytes served are counted from its JSON log: one `response completed` line per finished request, with
`http.response.written` the body bytes handed to the socket (docker-registry 2.8.2; an aborted response counts
what was written before the abort, an upper bound of what the client got).
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .procs import Proc

READY_LINE = "listening on"
_COMPLETED = "response completed"
# What the peers' two HTTP clients (upstream/raw_http.py, httpx) call themselves.
PEER_AGENTS = ("damselfly", "python-httpx")


def registry_config(
    storage: Path, addr: str, *, readonly: bool = False, proxy_remote: str | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            # The upstream's storage is a cache shared by runs: a read-only registry never writes to it.
            "maintenance": {"uploadpurging": {"enabled": False}, "readonly": {"enabled": readonly}},
        },
        "http": {"addr": addr, "secret": secrets.token_hex(16)},
    }
    if proxy_remote is not None:
        config["proxy"] = {"remoteurl": proxy_remote}
    return config


def registry_proc(
    workdir: Path, name: str, config: dict[str, Any], prefix: Sequence[str] = (), ready_timeout: float = 20.0
) -> Proc:
    """A started registry (JSON config is valid YAML); `prefix` runs it inside a namespace."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"{name}.yml"
    config_path.write_text(json.dumps(config, indent=2))
    return Proc([*prefix, "docker-registry", "serve", str(config_path)], log_path=workdir / f"{name}.log", name=name)


def log_offset(log_path: Path) -> int:
    try:
        data = log_path.read_bytes()
    except FileNotFoundError:
        return 0
    return data.rfind(b"\n") + 1


def completed_requests(log_path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The log entries of every request finished since `offset`."""
    found = []
    with log_path.open("rb") as log:
        log.seek(offset)
        for raw in log.read().splitlines():
            if not raw.startswith(b"{"):
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            msg = entry.get("msg", "")
            if isinstance(msg, str) and msg.startswith(_COMPLETED):
                found.append(entry)
    return found


def blob_gets(log_path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The log entries of blob GETs finished since `offset`."""
    return [
        entry
        for entry in completed_requests(log_path, offset)
        if entry.get("http.request.method") == "GET" and "/blobs/" in str(entry.get("http.request.uri", ""))
    ]


def client_requests(log_path: Path, offset: int = 0) -> int:
    """Requests finished since `offset` that a Damselfly peer did not send (by their User-Agent): a registry
    client's own, which a mirror should have carried."""
    return sum(
        1
        for entry in completed_requests(log_path, offset)
        if not str(entry.get("http.request.useragent", "")).startswith(PEER_AGENTS)
    )


def blob_bytes_served(log_path: Path, offset: int = 0, *, excluding: str = "") -> int:
    """Body bytes of blob GETs finished since `offset`; with `excluding`, not those sent to that IP address."""
    return sum(
        int(entry.get("http.response.written", 0))
        for entry in blob_gets(log_path, offset)
        if not excluding or _client_ip(entry) != excluding
    )


def _client_ip(entry: dict[str, Any]) -> str:
    address = str(entry.get("http.request.remoteaddr", ""))
    return address.rpartition(":")[0].strip("[]") if ":" in address else address


def busy_seconds(log_path: Path, offset: int = 0) -> float:
    """How long at least one blob body was being sent (the union of the blob GETs' intervals).

    A response ends in the log when its last byte is handed to the socket, up to a socket buffer before it
    reaches the client: on a slow link the busy time is a little short, the idle gaps a little long.
    """
    intervals = []
    for entry in blob_gets(log_path, offset):
        if int(entry.get("http.response.written", 0)) == 0:
            continue
        end = _timestamp(str(entry["time"]))
        intervals.append((end - go_duration(str(entry.get("http.response.duration", "0s"))), end))
    busy, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    return busy


_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|µs|us|ns)")


def go_duration(text: str) -> float:
    """Seconds in a Go duration string such as `1m7.25s` or `857.35µs`."""
    return sum(float(number) * _GO_UNITS[unit] for number, unit in _GO_PART.findall(text))


def _timestamp(text: str) -> float:
    # RFC 3339 with nanoseconds and a Z; datetime takes microseconds.
    head, _, fraction = text.rstrip("Z").partition(".")
    stamp = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.UTC)
    return stamp.timestamp() + float(f"0.{fraction or 0}")


def settle(log_path: Path, quiet: float = 0.5, timeout: float = 15.0) -> None:
    """Wait until the log stops growing: a request's line is written just after its last byte left."""
    deadline = time.monotonic() + timeout
    last_size, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = log_path.stat().st_size if log_path.exists() else 0
        now = time.monotonic()
        if size != last_size:
            last_size, last_change = size, now
        elif now - last_change >= quiet:
            return
        time.sleep(0.05)
