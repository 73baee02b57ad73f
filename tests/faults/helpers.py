"""Shared pieces of the fault tests: blobs pushed straight to the registry, pulls through a mirror, store checks."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from supernode import routes
from supernode.api import PeerList, SwarmList, SwarmSummary
from tests.support.identities import OPERATOR_TOKEN, operator_headers

MiB = 1 << 20
# Enough pieces per blob (4 MiB pieces) for a fault to land in the middle of a transfer.
BLOB_SIZE = 40 * MiB
TIMEOUT = httpx.Timeout(60.0, connect=5.0)


def random_blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(registry_url: str, repo: str, data: bytes) -> str:
    """Upload one blob with the distribution API (POST then PUT); returns its digest."""
    digest = sha256_digest(data)
    with httpx.Client(base_url=registry_url, timeout=TIMEOUT, trust_env=False) as client:
        start = client.post(f"/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = start.headers["location"]
        # The upload URL carries its own state in the query: append the digest, do not replace the query.
        url = f"{location}{'&' if '?' in location else '?'}digest={digest}"
        put = client.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 201, put.text
    return digest


@dataclass
class PullResult:
    status: int
    length: int
    digest: str
    error: str = ""
    seconds: float = 0.0
    body: bytes = b""

    def ok_for(self, digest: str, size: int) -> bool:
        return self.status == 200 and self.length == size and self.digest == digest and not self.error


def pull_blob(mirror_url: str, repo: str, digest: str, *, timeout: float = 120.0, keep_body: bool = False,
              headers: dict[str, str] | None = None, stop_after: int | None = None) -> PullResult:
    """GET a blob through a mirror; a broken body is reported in `error`, never raised.

    `stop_after`: hang up once that many bytes arrived, as a client that goes away (error "stopped").
    """
    started = time.monotonic()
    hasher = hashlib.sha256()
    length = 0
    body = bytearray()
    status = 0
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, connect=5.0), trust_env=False) as client, \
                client.stream("GET", f"{mirror_url}/v2/{repo}/blobs/{digest}", headers=headers or {}) as response:
            status = response.status_code
            for chunk in response.iter_raw():
                hasher.update(chunk)
                length += len(chunk)
                if keep_body or status >= 400:
                    body += chunk
                if stop_after is not None and length >= stop_after:
                    return PullResult(status, length, "", "stopped", time.monotonic() - started, bytes(body))
    except httpx.HTTPError as exc:
        return PullResult(status, length, "sha256:" + hasher.hexdigest(), f"{type(exc).__name__}: {exc}",
                          time.monotonic() - started, bytes(body))
    return PullResult(status, length, "sha256:" + hasher.hexdigest(), "", time.monotonic() - started, bytes(body))


def oci_error_code(body: bytes) -> str:
    """The first OCI error code of a body, or "" when the body is not OCI error JSON."""
    try:
        parsed = json.loads(body)
        return str(parsed["errors"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def check_store(data_dir: Path) -> dict[str, int]:
    """Every complete blob in a peer's store must hash to its name; returns {digest: size}."""
    found: dict[str, int] = {}
    blobs = data_dir / "blobs"
    if not blobs.exists():
        return found
    for path in blobs.glob("*/*"):
        algorithm = path.parent.name
        with path.open("rb") as file:
            actual = hashlib.file_digest(file, algorithm).hexdigest()
        assert actual == path.name, f"{path} is stored as complete but hashes to {algorithm}:{actual}"
        found[f"{algorithm}:{path.name}"] = path.stat().st_size
    return found


def partial_files(data_dir: Path) -> list[str]:
    partial = data_dir / "partial"
    return sorted(p.name for p in partial.iterdir()) if partial.exists() else []


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll until `predicate()` holds; returns the seconds it took, fails the test on timeout."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


def _listing(supernode_url: str, route: routes.ApiRoute, operator_token: str) -> dict[str, Any]:
    """A listing read as the supernode's operators: start the supernode with `operator_token` (DamselflyCluster's
    field); the operators' token stands in for the join token there."""
    response = httpx.get(
        supernode_url + route.url(), headers=operator_headers(operator_token), timeout=5.0, trust_env=False
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def supernode_peers(supernode_url: str, operator_token: str = OPERATOR_TOKEN) -> set[str]:
    return {p.peer_id for p in PeerList.from_json(_listing(supernode_url, routes.LIST_PEERS, operator_token)).peers}


def supernode_swarms(supernode_url: str, operator_token: str = OPERATOR_TOKEN) -> list[SwarmSummary]:
    return SwarmList.from_json(_listing(supernode_url, routes.LIST_SWARMS, operator_token)).swarms


def safe_stats(stats: Callable[[], dict[str, int]]) -> dict[str, int]:
    """A peer's counters, or {} while it is unreachable (being killed or restarted)."""
    try:
        return stats()
    except httpx.HTTPError:
        return {}


def runs(default: int) -> int:
    """How many times a scenario repeats: `default`, or $DAMSELFLY_FAULT_RUNS for a longer soak."""
    text = os.environ.get("DAMSELFLY_FAULT_RUNS", "")
    return int(text) if text.isdigit() and int(text) > 0 else default


def report(scenario: str, **measured: object) -> None:
    """Append one scenario's measured outcome to $DAMSELFLY_FAULT_REPORT (JSON lines), if set.

    docs/reliability.md quotes these numbers; without the variable this does nothing.
    """
    path = os.environ.get("DAMSELFLY_FAULT_REPORT", "")
    if path:
        with Path(path).open("a") as file:
            file.write(json.dumps({"scenario": scenario, **measured}, default=str) + "\n")
