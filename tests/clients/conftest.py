"""Fixtures for issue [2]: real clients pulling through a Damselfly host from real upstream registries.

One open upstream registry per session holds the test images; every test gets its own Damselfly host (so its
store is empty and the upstream's byte count is the test's own) and a made-up registry name that does not
resolve, routed to the upstream only inside Damselfly's config: a pull can only succeed through the mirror.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.fixtures import SMALL_IMAGE_LAYERS, require_binary
from tests.support.images import ImageCache, PushedImage, PushedIndex, push_image, push_index
from tests.support.mirror_host import MirrorHost, Upstream
from tests.support.registry import RegistryServer
from tests.support.token_server import TokenServer

MiB = 1 << 20
REPO_ROOT = Path(__file__).resolve().parents[2]
MirrorFactory = Callable[..., MirrorHost]


@dataclass(frozen=True)
class UpstreamImages:
    registry: RegistryServer
    app: PushedImage  # test/app:v1, three layers
    index: PushedIndex  # test/multi:v1, linux/amd64 and linux/arm64
    amd64: PushedImage
    arm64: PushedImage

    def blob_bytes(self) -> int:
        """Blob bytes the upstream served since the last reset (GETs of /blobs/, as its log says)."""
        return self.registry.served_bytes(method="GET", path_contains="/blobs/")

    def manifest_gets(self) -> list[str]:
        return [r["uri"] for r in self.registry.requests() if r["method"] == "GET" and "/manifests/" in r["uri"]]


def push_multi_arch(
    image_cache: ImageCache, registry_url: str, repo: str
) -> tuple[PushedIndex, PushedImage, PushedImage]:
    # Layers of their own (other sizes than the app image): nothing is shared with test/app.
    amd64 = push_image(image_cache.get((MiB + 4096, MiB // 2)), registry_url, repo, "amd64")
    arm64 = push_image(image_cache.get((MiB // 2 + 4096, MiB), architecture="arm64"), registry_url, repo, "arm64")
    return push_index(registry_url, repo, "v1", [amd64, arm64]), amd64, arm64


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory, image_cache: ImageCache) -> Iterator[UpstreamImages]:
    require_binary("docker-registry")
    require_binary("skopeo")
    with RegistryServer(tmp_path_factory.mktemp("upstream")) as registry:
        app = push_image(image_cache.get(SMALL_IMAGE_LAYERS), registry.url, "test/app", "v1")
        index, amd64, arm64 = push_multi_arch(image_cache, registry.url, "test/multi")
        yield UpstreamImages(registry, app, index, amd64, arm64)


@pytest.fixture
def mirror_factory(tmp_path: Path) -> Iterator[MirrorFactory]:
    """Start Damselfly hosts: ``mirror_factory([Upstream(name, url)], default_registry=..., tls=...)``."""
    started: list[MirrorHost] = []

    def make(upstreams: list[Upstream], **kwargs: Any) -> MirrorHost:
        mirror = MirrorHost(tmp_path / f"mirror-{len(started)}", upstreams, **kwargs)
        started.append(mirror)
        return mirror.start()

    yield make
    for mirror in reversed(started):
        mirror.stop()


def damselfly_configure(*args: str) -> str:
    """Run `damselfly configure ...` as a user would; return its output."""
    result = subprocess.run(
        [sys.executable, "-m", "damselfly", "configure", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass(frozen=True)
class PrivateUpstreams:
    """One image as `priv/app:v1` and `pub/app:v1` (the same blobs), served by three registries on one storage."""

    open: RegistryServer  # no auth: where the images were pushed
    basic: RegistryServer  # htpasswd: alice may pull everything, nobody else anything
    token: RegistryServer  # token auth: alice everything, anonymous pub/app only
    tokens: TokenServer
    image: PushedImage  # as pushed to priv/app

    def blob_bytes(self, registry: RegistryServer) -> int:
        return registry.served_bytes(method="GET", path_contains="/blobs/")

    def reset_counts(self) -> None:
        for registry in (self.open, self.basic, self.token):
            registry.reset_counts()


ALICE = ("alice", "wonderland")


@pytest.fixture(scope="session")
def private(tmp_path_factory: pytest.TempPathFactory, image_cache: ImageCache) -> Iterator[PrivateUpstreams]:
    require_binary("docker-registry")
    require_binary("skopeo")
    require_binary("htpasswd")
    base = tmp_path_factory.mktemp("private")
    built = image_cache.get((MiB, 2 * MiB + 4096))
    with (
        RegistryServer(base / "open") as open_registry,
        TokenServer(base / "tokens", users=dict([ALICE]), public=["pub/app"]) as tokens,
    ):
        image = push_image(built, open_registry.url, "priv/app", "v1")
        push_image(built, open_registry.url, "pub/app", "v1")
        # Pushing through auth would need the token flow in the push helpers: push in the open, serve the same
        # storage with auth on.
        shared = {"storage": {"filesystem": {"rootdirectory": str(open_registry.storage_dir)}}}
        with (
            RegistryServer(base / "basic", htpasswd=ALICE, extra_config=shared) as basic,
            RegistryServer(base / "token", token_auth=tokens.registry_auth(), extra_config=shared) as token,
        ):
            yield PrivateUpstreams(open_registry, basic, token, tokens, image)


def write_authfile(path: Path, host: str, user: str, password: str) -> Path:
    """A containers-auth.json (docker config.json format) with credentials for `host`.

    containers/image never sends --src-creds / --creds to a mirror (they are meant for the registry the image
    names); the credentials it sends a mirror come from an auth file entry for the mirror's host.
    """
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path
