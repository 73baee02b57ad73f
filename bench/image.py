"""The benchmark image: random layers built offline with umoci, pushed once into a cached registry storage.

The build is cached under the work directory by layer sizes: building and pushing 100 MB takes seconds, and
every later run serves the same storage from a read-only registry. A layer is a tar holding one file of random
(incompressible) bytes written with Python's tarfile (umoci 0.4.7's own `insert` writes truncated tars) and added
with `umoci raw add-layer`, which gzips it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from .procs import CommandFailed, ProcessSet, run
from .registry import READY_LINE, registry_config, registry_proc

REPO = "bench/app"
TAG = "v1"
MANIFEST_ACCEPT = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
BUILD_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """The image as the registry holds it, read back after the push."""

    repo: str
    tag: str
    manifest_digest: str
    # (digest, size) of the config, then of each layer.
    blobs: list[tuple[str, int]]

    @property
    def blob_bytes(self) -> int:
        return sum(size for _, size in self.blobs)

    @property
    def layers(self) -> list[tuple[str, int]]:
        return self.blobs[1:]


@dataclass(frozen=True, slots=True)
class CachedImage:
    storage: Path
    info: ImageInfo


def layer_sizes(image_bytes: int, layers: int = 3) -> list[int]:
    """Split the image 1:2:3 (for three layers): layers of different sizes, like real images."""
    weights = list(range(1, layers + 1))
    return [image_bytes * w // sum(weights) for w in weights]


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """One builder per cache entry, so parallel runs do not build the same image into each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def cached_image(cache_dir: Path, sizes: Sequence[int]) -> CachedImage:
    """The registry storage holding an image with random layers of `sizes` bytes, built on first use."""
    entry = cache_dir / f"image-{'-'.join(map(str, sizes))}"
    with locked(entry.with_suffix(".lock")):
        info_path = entry / "image.json"
        if not info_path.exists():
            _build(entry, sizes)
        raw = json.loads(info_path.read_text())
        info = ImageInfo(raw["repo"], raw["tag"], raw["manifest_digest"], [tuple(b) for b in raw["blobs"]])
        return CachedImage(entry / "storage", info)


def _build(entry: Path, sizes: Sequence[int]) -> None:
    shutil.rmtree(entry, ignore_errors=True)
    work = entry / "build"
    layout = work / "layout"
    work.mkdir(parents=True)
    image = f"{layout}:{TAG}"
    run(["umoci", "init", "--layout", str(layout)], timeout=BUILD_TIMEOUT)
    run(["umoci", "new", "--image", image], timeout=BUILD_TIMEOUT)
    for index, size in enumerate(sizes):
        tar_path = work / f"layer{index}.tar"
        _write_layer(tar_path, f"layer{index}.bin", size)
        run(["umoci", "raw", "add-layer", "--image", image, str(tar_path)], timeout=BUILD_TIMEOUT)
        tar_path.unlink()
    run(["umoci", "config", "--image", image, "--architecture", "amd64", "--os", "linux"], timeout=BUILD_TIMEOUT)
    run(["umoci", "gc", "--layout", str(layout)], timeout=BUILD_TIMEOUT)
    info = push_to_storage(work, entry / "storage", [f"oci:{image}"])
    (entry / "image.json").write_text(json.dumps(asdict(info)))
    shutil.rmtree(work)


def push_to_storage(work: Path, storage: Path, sources: Sequence[str]) -> ImageInfo:
    """Push an OCI layout into a registry storage directory through a registry on loopback; read it back."""
    addr = f"127.0.0.1:{free_loopback_port()}"
    with ProcessSet() as procs:
        proc = procs.start(registry_proc(work, "push-registry", registry_config(storage, addr)))
        proc.wait_for_log(READY_LINE, 20.0)
        for source in sources:
            run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", source, f"docker://{addr}/{REPO}:{TAG}"],
                timeout=BUILD_TIMEOUT)
        return read_back(f"http://{addr}")


def read_back(url: str) -> ImageInfo:
    headers = [("Accept", media_type) for media_type in MANIFEST_ACCEPT]
    with httpx.Client(base_url=url, trust_env=False, timeout=30.0) as client:
        response = client.get(f"/v2/{REPO}/manifests/{TAG}", headers=headers)
        response.raise_for_status()
        manifest = response.json()
        blobs = []
        for desc in [manifest["config"], *manifest["layers"]]:
            head = client.head(f"/v2/{REPO}/blobs/{desc['digest']}")
            head.raise_for_status()
            if int(head.headers["content-length"]) != desc["size"]:
                raise CommandFailed(f"blob {desc['digest']} has the wrong size in the registry")
            blobs.append((str(desc["digest"]), int(desc["size"])))
    digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
    return ImageInfo(REPO, TAG, digest, blobs)


class _RandomStream:
    """`size` random bytes produced as tarfile reads them, so a large layer never sits in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n) if n else b""


def _write_layer(path: Path, name: str, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, _RandomStream(size))
