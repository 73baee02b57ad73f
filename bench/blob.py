"""A large random blob in a cached registry storage, for the loopback figures (built once per size)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin

import httpx

from .image import free_loopback_port, locked
from .procs import CommandFailed, ProcessSet
from .registry import READY_LINE, registry_config, registry_proc

REPO = "bench/blob"
CHUNK = 4 << 20


@dataclass(frozen=True, slots=True)
class CachedBlob:
    storage: Path
    repo: str
    digest: str
    size: int


def cached_blob(cache_dir: Path, size: int) -> CachedBlob:
    entry = cache_dir / f"blob-{size}"
    with locked(entry.with_suffix(".lock")):
        info_path = entry / "blob.json"
        if not info_path.exists():
            digest = _upload(entry, size)
            info_path.write_text(json.dumps({"digest": digest, "size": size}))
        info = json.loads(info_path.read_text())
        return CachedBlob(entry / "storage", REPO, str(info["digest"]), int(info["size"]))


def _upload(entry: Path, size: int) -> str:
    """Stream `size` random bytes into a registry on loopback (one chunked PATCH, then PUT with the digest)."""
    hasher = hashlib.sha256()

    def body() -> Iterator[bytes]:
        left = size
        while left:
            chunk = os.urandom(min(CHUNK, left))
            hasher.update(chunk)
            left -= len(chunk)
            yield chunk

    addr = f"127.0.0.1:{free_loopback_port()}"
    with ProcessSet() as procs:
        proc = procs.start(registry_proc(entry, "upload-registry", registry_config(entry / "storage", addr)))
        proc.wait_for_log(READY_LINE, 20.0)
        base = f"http://{addr}"
        with httpx.Client(trust_env=False, timeout=300.0) as client:
            started = client.post(f"{base}/v2/{REPO}/blobs/uploads/")
            if started.status_code != 202:
                raise CommandFailed(f"upload start answered {started.status_code}")
            patched = client.patch(
                urljoin(base, started.headers["location"]),
                content=body(),
                headers={"content-type": "application/octet-stream"},
            )
            if patched.status_code != 202:
                raise CommandFailed(f"upload answered {patched.status_code}: {patched.text[:200]}")
            digest = "sha256:" + hasher.hexdigest()
            location = urljoin(base, patched.headers["location"])
            # Appended by hand: httpx's `params` would replace the upload's `_state` query, which the registry needs.
            done = client.put(f"{location}{'&' if '?' in location else '?'}digest={quote(digest)}")
            if done.status_code != 201:
                raise CommandFailed(f"upload commit answered {done.status_code}: {done.text[:200]}")
    return digest
