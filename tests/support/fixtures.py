"""pytest fixtures for real-program tests.

Load from tests/conftest.py with ``pytest_plugins = ["tests.support.fixtures"]``.

Every fixture that starts something stops it in its teardown, which pytest
runs also when the test failed; fixtures that need a program skip the test
with a clear reason when it is missing rather than erroring.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.containerd import ContainerdDaemon
from tests.support.dockerd import DockerDaemon
from tests.support.images import BuiltImage, ImageCache
from tests.support.podman import Podman
from tests.support.procs import ManagedProcess, ProcessFactory
from tests.support.redis_servers import RedisMissing, SingleRedis
from tests.support.registry import RegistryFactory, RegistryServer

MiB = 1 << 20
SMALL_IMAGE_LAYERS = (1 * MiB, 2 * MiB, 3 * MiB)


def require_binary(name: str) -> str:
    """Return the path of ``name``, or skip the calling test if it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not on PATH (install the Debian package that provides it)")
    return path


@pytest.fixture
def require_root() -> None:
    """Skip unless running as root (needed for /etc/containers drop-ins, netns, ...)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (euid 0): writes machine-wide config or uses namespaces")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A fresh, empty, unauthenticated docker-registry on 127.0.0.1."""
    require_binary("docker-registry")
    with RegistryServer(tmp_path / "registry") as server:
        yield server


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[RegistryFactory]:
    """Start extra registries: ``registry_factory(htpasswd=("u", "p"))`` etc.

    Takes RegistryServer's keyword arguments; all are stopped at teardown.
    """
    require_binary("docker-registry")
    started: list[RegistryServer] = []

    def make(**kwargs: Any) -> RegistryServer:
        server = RegistryServer(tmp_path / f"registry-{len(started)}", **kwargs)
        started.append(server)
        return server.start()

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture
def process_factory(tmp_path: Path) -> Iterator[ProcessFactory]:
    """Start ManagedProcesses: ``process_factory(args, ready_url=..., ...)``.

    Takes ManagedProcess's arguments; ``log_path`` defaults to a file in
    tmp_path. All are stopped at teardown (SIGTERM, then SIGKILL).
    """
    started: list[ManagedProcess] = []

    def make(args: list[str], **kwargs: Any) -> ManagedProcess:
        kwargs.setdefault("log_path", tmp_path / f"proc-{len(started)}.log")
        proc = ManagedProcess(args, **kwargs)
        started.append(proc)
        return proc.start()

    yield make
    for proc in reversed(started):
        proc.stop()


@pytest.fixture(scope="session")
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> ImageCache:
    """Session-wide cache of built OCI layouts: ``image_cache.get([sizes...])``."""
    require_binary("umoci")
    return ImageCache(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def small_image(image_cache: ImageCache) -> BuiltImage:
    """An amd64/linux OCI layout with 3 random layers of 1, 2 and 3 MiB."""
    return image_cache.get(SMALL_IMAGE_LAYERS)


@pytest.fixture
def containerd(tmp_path: Path, require_root: None) -> Iterator[ContainerdDaemon]:
    """A private containerd (own root, state, sockets; CRI off), new for each test: nothing cached between tests."""
    require_binary("containerd")
    require_binary("ctr")
    with ContainerdDaemon(tmp_path / "containerd") as daemon:
        yield daemon


@pytest.fixture
def dockerd(tmp_path: Path, containerd: ContainerdDaemon) -> Iterator[DockerDaemon]:
    """A private dockerd on the test's containerd, reading tmp_path/daemon.json (a test that writes mirrors into it
    reloads them with `reload_config`)."""
    require_binary("dockerd")
    require_binary("docker")
    with DockerDaemon(tmp_path / "docker", tmp_path / "daemon.json", containerd=containerd) as daemon:
        yield daemon


@pytest.fixture
def podman(tmp_path: Path, require_root: None) -> Iterator[Podman]:
    """podman with its own storage, reading only tmp_path/registries.conf."""
    require_binary("podman")
    client = Podman(tmp_path / "podman", tmp_path / "registries.conf")
    yield client
    client.cleanup()


@pytest.fixture
def redis_server() -> Iterator[SingleRedis]:
    """Debian's redis-server on a loopback port of its own, nothing persisted."""
    try:
        server = SingleRedis().start()
    except RedisMissing as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()
