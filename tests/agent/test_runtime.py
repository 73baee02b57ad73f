"""A `runtime` job with a real container runtime: podman, pulling through this host's mirror (a registries.conf
mirror entry, as `damselfly configure podman` writes), ends with the image in podman's storage and its blobs in the
peer's store, through the swarm; the job's progress says so."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from supernode.jobs import ImageSpec, Job
from tests.support.cluster import DamselflyCluster
from tests.support.fixtures import require_binary
from tests.support.identities import OPERATOR_TOKEN
from tests.support.images import ImageCache, push_image
from tests.support.jobs import final, host_id, put, stored
from tests.support.podman import Podman
from tests.support.registry import RegistryServer

MiB = 1024 * 1024


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian package podman; scripts/test.sh installs it as root)")
    client = Podman(tmp_path / "podman", tmp_path / "registries.conf")
    yield client
    client.cleanup()


def _pull_command(podman: Podman) -> str:
    """What the agent runs: the test's podman, with its own storage and registries.conf (its paths need no
    quoting, so the command is plain words)."""
    return " ".join([
        "env", f"CONTAINERS_REGISTRIES_CONF={podman.registries_conf}", "podman",
        "--root", str(podman.workdir / "root"), "--runroot", str(podman.runroot),
        "--tmpdir", str(podman.workdir / "tmp"), "--storage-driver", podman.storage_driver,
        "--events-backend", "file", "--cgroup-manager", "cgroupfs", "pull", "{reference}",
    ])


@pytest.mark.root
def test_a_runtime_job_has_podman_pull_the_image_through_the_mirror(
    tmp_path: Path, podman: Podman, image_cache: ImageCache
) -> None:
    require_binary("docker-registry")
    with RegistryServer(tmp_path / "registry") as registry:
        image = push_image(image_cache.get([1 * MiB, 2 * MiB], seed=81), registry.url, "test/runtime", "v1")
        registry_host = registry.url.removeprefix("http://")
        config = f'[peer]\nruntime_pull = "{_pull_command(podman)}"\n'
        with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=1,
                              operator_token=OPERATOR_TOKEN, config_text=config) as cluster:
            peer = cluster.peers[0]
            mirror = peer.mirror_url.removeprefix("http://")
            # The registry itself is unreachable for podman but through the mirror: a pull that went around the
            # mirror fails instead of hiding.
            podman.registries_conf.write_text(
                f'[[registry]]\nprefix = "{registry_host}"\nlocation = "127.0.0.1:9"\ninsecure = true\n'
                f'[[registry.mirror]]\nlocation = "{mirror}"\ninsecure = true\n'
            )
            reference = f"{registry_host}/test/runtime:v1"
            put(cluster, Job("rt", "task-rt", host_id(peer), "image", "runtime", image=ImageSpec(reference)))
            done = final(cluster, "rt", timeout=120)
            assert done.state == "succeeded", done.error
            assert done.bytes_total == done.bytes_done == sum(size for _, size in image.blobs)
            assert {b.digest for b in done.blobs} == {d for d, _ in image.blobs}
            assert all(b.state == "succeeded" for b in done.blobs)
            assert podman.image_id(reference)  # the runtime has it, ready to run
            for digest, size in image.blobs:
                assert stored(peer, digest).stat().st_size == size  # and it came through this host's mirror
