"""Build test images offline with umoci and push them with skopeo.

A built image is an OCI layout with one layer per requested size; each layer
is a tar holding a single file of random (incompressible) bytes, so a layer's
blob is about as big as asked and byte counts in tests mean something.

Surprise found on Debian 12's umoci 0.4.7: ``umoci insert`` writes layer tars
that are cut short (no padding after the file's data and no end-of-archive
blocks; GNU tar reports "Unexpected EOF in archive"). A client that unpacks
layers (podman, containerd) may reject such a layer, so we write each tar
with Python's ``tarfile`` and add it verbatim with ``umoci raw add-layer``,
which only gzips it.

After a push everything about the image (manifest digest and media type, blob
digests and sizes, platform) is read back from the registry, never assumed:
skopeo may convert the manifest (``--format v2s2``), and umoci picks the
compression.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
# Sent as separate Accept values: a registry that sees only the Docker types
# refuses to hand out an OCI manifest (404 MANIFEST_UNKNOWN), see CLIENTS.md.
MANIFEST_ACCEPT = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)

Format = Literal["oci", "v2s2"]
BasicCreds = tuple[str, str]


@dataclass(frozen=True)
class BuiltImage:
    """An OCI layout on disk holding one tagged image."""

    layout: Path
    tag: str
    architecture: str
    os: str
    layer_sizes: tuple[int, ...]
    """Sizes of the random files, i.e. uncompressed payload per layer."""
    manifest_digest: str
    """Digest of the manifest in the layout (skopeo may re-encode on push)."""

    @property
    def oci_ref(self) -> str:
        """Reference for skopeo's ``oci:`` transport."""
        return f"oci:{self.layout}:{self.tag}"


@dataclass(frozen=True)
class PushedImage:
    """An image as a registry holds it after a push, read back from it."""

    registry_url: str
    repo: str
    tag: str
    manifest_digest: str
    media_type: str
    manifest_size: int
    blobs: tuple[tuple[str, int], ...]
    """(digest, size) of the config first, then every layer in order."""
    architecture: str
    os: str
    manifest_bytes: bytes = field(repr=False)

    @property
    def total_blob_bytes(self) -> int:
        return sum(size for _, size in self.blobs)

    @property
    def config(self) -> tuple[str, int]:
        return self.blobs[0]

    @property
    def layers(self) -> tuple[tuple[str, int], ...]:
        return self.blobs[1:]

    @property
    def host(self) -> str:
        return httpx.URL(self.registry_url).netloc.decode()

    @property
    def ref(self) -> str:
        """``host:port/repo:tag`` on the registry it was pushed to."""
        return f"{self.host}/{self.repo}:{self.tag}"


@dataclass(frozen=True)
class PushedIndex:
    """A multi-arch image index PUT to a registry."""

    registry_url: str
    repo: str
    tag: str
    digest: str
    media_type: str
    manifests: tuple[PushedImage, ...]
    index_bytes: bytes = field(repr=False)

    @property
    def total_blob_bytes(self) -> int:
        """Blob bytes over all platforms (blobs shared by platforms count once)."""
        return sum(dict(b for m in self.manifests for b in m.blobs).values())


# -- building ----------------------------------------------------------------


def _umoci(args: Sequence[str], timeout: float) -> None:
    cmd = ["umoci", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr}")


class _RandomStream(io.RawIOBase):
    """A readable stream of ``size`` random bytes, produced as it is read.

    Lets tarfile copy a 100 MB payload without it ever sitting on disk or in
    memory whole.
    """

    def __init__(self, size: int, randbytes: Callable[[int], bytes]) -> None:
        self._left = size
        self._randbytes = randbytes

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        # Exactly min(n, left): tarfile treats a short read as truncated data.
        n = self._left if n < 0 else min(n, self._left)
        self._left -= n
        return self._randbytes(n) if n else b""


def _write_layer_tar(path: Path, name: str, size: int, randbytes: Callable[[int], bytes]) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0  # random content already makes each layer unique
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, _RandomStream(size, randbytes))


def build_image(
    workdir: Path,
    layer_sizes: Sequence[int],
    *,
    architecture: str = "amd64",
    os_name: str = "linux",
    tag: str = "v1",
    seed: int | None = None,
    timeout: float = 300.0,
) -> BuiltImage:
    """Build an OCI layout in ``workdir/layout`` with one random layer per size.

    ``seed=None`` takes bytes from ``os.urandom``. A seed makes layer i of
    every image built with that seed the same tar, and umoci 0.4.7 gzips
    deterministically, so those layers become the same blob (same digest):
    use it for images that share layers.
    """
    if shutil.which("umoci") is None:
        raise FileNotFoundError("umoci not on PATH (apt-get install umoci)")
    workdir = Path(workdir)
    if ":" in str(workdir):
        raise ValueError("skopeo's oci: transport cannot take a path with ':'")
    layout = workdir / "layout"
    if layout.exists():
        shutil.rmtree(layout)
    workdir.mkdir(parents=True, exist_ok=True)
    image = f"{layout}:{tag}"
    _umoci(["init", "--layout", str(layout)], timeout)
    _umoci(["new", "--image", image], timeout)
    for i, size in enumerate(layer_sizes):
        randbytes = os.urandom if seed is None else random.Random(f"{seed}/{i}").randbytes
        tar_path = workdir / f"layer{i}.tar"
        _write_layer_tar(tar_path, f"layer{i}.bin", size, randbytes)
        try:
            _umoci(["raw", "add-layer", "--image", image, str(tar_path)], timeout)
        finally:
            tar_path.unlink()
    _umoci(["config", "--image", image, "--architecture", architecture, "--os", os_name], timeout)
    # Each umoci step left an intermediate manifest and config behind.
    _umoci(["gc", "--layout", str(layout)], timeout)
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [
        m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    return BuiltImage(
        layout=layout,
        tag=tag,
        architecture=architecture,
        os=os_name,
        layer_sizes=tuple(layer_sizes),
        manifest_digest=str(entry["digest"]),
    )


class ImageCache:
    """Builds each distinct image once per cache (e.g. once per pytest session).

    Building 100 MB of random layers takes seconds; tests that only push and
    pull may share one read-only layout.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._built: dict[tuple[tuple[int, ...], str, str, int | None], BuiltImage] = {}

    def get(
        self,
        layer_sizes: Sequence[int],
        *,
        architecture: str = "amd64",
        os_name: str = "linux",
        seed: int | None = None,
    ) -> BuiltImage:
        key = (tuple(layer_sizes), architecture, os_name, seed)
        if key not in self._built:
            name = f"{architecture}-{os_name}-{'-'.join(map(str, key[0])) or 'empty'}-s{seed}"
            self._built[key] = build_image(
                self.root / name,
                layer_sizes,
                architecture=architecture,
                os_name=os_name,
                seed=seed,
            )
        return self._built[key]


# -- pushing and reading back --------------------------------------------------


def _client(registry_url: str, creds: BasicCreds | None) -> httpx.Client:
    # trust_env=False: never send loopback test traffic through a proxy.
    return httpx.Client(base_url=registry_url, auth=creds, trust_env=False, timeout=30.0)


def _accept_headers() -> list[tuple[str, str]]:
    return [("Accept", media_type) for media_type in MANIFEST_ACCEPT]


def fetch_manifest(
    registry_url: str, repo: str, reference: str, creds: BasicCreds | None = None
) -> tuple[bytes, str, str]:
    """GET a manifest; return (body, media type, digest) after checking the digest."""
    with _client(registry_url, creds) as client:
        response = client.get(f"/v2/{repo}/manifests/{reference}", headers=_accept_headers())
    response.raise_for_status()
    body = response.content
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    header = response.headers.get("Docker-Content-Digest")
    if header is not None and header != digest:
        raise AssertionError(f"registry says digest {header}, body hashes to {digest}")
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    return body, media_type, digest


def _read_pushed(registry_url: str, repo: str, tag: str, creds: BasicCreds | None) -> PushedImage:
    body, media_type, digest = fetch_manifest(registry_url, repo, tag, creds)
    manifest: dict[str, Any] = json.loads(body)
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise AssertionError(f"{repo}:{tag} is {media_type!r}, not a single-image manifest")
    descriptors = [manifest["config"], *manifest["layers"]]
    blobs: list[tuple[str, int]] = []
    with _client(registry_url, creds) as client:
        for desc in descriptors:
            # HEAD proves the registry really holds the blob at that size.
            head = client.head(f"/v2/{repo}/blobs/{desc['digest']}")
            head.raise_for_status()
            size = int(head.headers["Content-Length"])
            if size != desc["size"]:
                raise AssertionError(f"blob {desc['digest']}: manifest {desc['size']}, registry {size}")
            blobs.append((str(desc["digest"]), size))
        config_response = client.get(f"/v2/{repo}/blobs/{manifest['config']['digest']}")
        config_response.raise_for_status()
    config = json.loads(config_response.content)
    return PushedImage(
        registry_url=registry_url,
        repo=repo,
        tag=tag,
        manifest_digest=digest,
        media_type=media_type,
        manifest_size=len(body),
        blobs=tuple(blobs),
        architecture=str(config.get("architecture", "")),
        os=str(config.get("os", "")),
        manifest_bytes=body,
    )


def push_image(
    built: BuiltImage,
    registry_url: str,
    repo: str,
    tag: str,
    fmt: Format = "oci",
    *,
    creds: BasicCreds | None = None,
    timeout: float = 300.0,
) -> PushedImage:
    """Push ``built`` with skopeo to ``registry_url`` as ``repo:tag``; read it back."""
    host = httpx.URL(registry_url).netloc.decode()
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if fmt == "v2s2":
        cmd += ["--format", "v2s2"]
    elif fmt != "oci":
        raise ValueError(f"unknown format {fmt!r}")
    if creds is not None:
        cmd += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
    cmd += [built.oci_ref, f"docker://{host}/{repo}:{tag}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"skopeo push to {host}/{repo}:{tag} failed: {result.stderr}")
    return _read_pushed(registry_url, repo, tag, creds)


def push_index(
    registry_url: str,
    repo: str,
    tag: str,
    manifests: Sequence[PushedImage],
    *,
    media_type: str = OCI_INDEX,
    creds: BasicCreds | None = None,
) -> PushedIndex:
    """PUT a multi-arch index over already pushed images of the same repo.

    The registry checks that every referenced manifest exists in ``repo``,
    so push each platform image there first (any tag will do).
    """
    for image in manifests:
        if image.repo != repo or image.registry_url != registry_url:
            raise ValueError(f"{image.ref} is not in {registry_url}/{repo}")
    index = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {
                "mediaType": image.media_type,
                "digest": image.manifest_digest,
                "size": image.manifest_size,
                "platform": {"architecture": image.architecture, "os": image.os},
            }
            for image in manifests
        ],
    }
    body = json.dumps(index).encode()
    with _client(registry_url, creds) as client:
        response = client.put(f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": media_type})
    if response.status_code != 201:
        raise RuntimeError(f"index PUT answered {response.status_code}: {response.text}")
    stored, stored_type, digest = fetch_manifest(registry_url, repo, tag, creds)
    if stored != body or stored_type != media_type:
        raise AssertionError(f"registry stored a different index ({stored_type})")
    return PushedIndex(
        registry_url=registry_url,
        repo=repo,
        tag=tag,
        digest=digest,
        media_type=media_type,
        manifests=tuple(manifests),
        index_bytes=body,
    )
