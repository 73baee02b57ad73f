"""A `runtime` job with a real container runtime pulling through this host's mirror, configured as `damselfly
configure` writes it: podman (a registries.conf mirror entry), containerd's ctr (a hosts.toml for the registry, read
with `--hosts-dir`) and dockerd (found by the agent at `$DOCKER_HOST`; Docker Hub names through `registry-mirrors`,
any other registry's pulled from the mirror by name). Each ends with the image in the runtime's store and its blobs
in the peer's store, fetched from the registry by the peer alone; the job's progress says so.

The image's registry has a made-up name that does not resolve (`registry.example.test`), routed to the test's
registry only inside Damselfly's config: a runtime that went around the mirror could not have pulled it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from agent.runtime_commands import containerd_pull
from damselfly import configure
from supernode.jobs import ImageSpec, Job, JobProgress
from tests.support.cluster import DamselflyCluster, PeerProcess
from tests.support.containerd import ContainerdDaemon
from tests.support.dockerd import DockerDaemon
from tests.support.fixtures import require_binary
from tests.support.identities import OPERATOR_TOKEN
from tests.support.images import ImageCache, PushedImage, push_image
from tests.support.jobs import final, host_id, put, stored
from tests.support.podman import Podman
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("require_root")]

MiB = 1024 * 1024
REGISTRY = "registry.example.test"
# The user agent of the peer's upstream client (upstream/raw_http.py): the runtimes' own (`containerd/1.6.20`,
# `docker/20.10.24 ...`) must never fetch a blob from the registry.
PEER_AGENT = "damselfly"


def _registry_config(registry: RegistryServer, *, docker_hub: bool = False) -> str:
    """Damselfly's config routing the made-up registry name (and, for dockerd, Docker Hub) to the test's registry."""
    entries = [f'[[registry]]\nname = "{REGISTRY}"\nurl = "{registry.url}"\n']
    if docker_hub:
        entries.append(f'[[registry]]\nname = "docker.io"\nurl = "{registry.url}"\nlibrary_prefix = true\n')
    return "\n".join(entries)


def _run_job(cluster: DamselflyCluster, peer: PeerProcess, job_id: str, reference: str) -> JobProgress:
    put(cluster, Job(job_id, f"task-{job_id}", host_id(peer), "image", "runtime", image=ImageSpec(reference)))
    return final(cluster, job_id, timeout=60)


def _assert_pulled_through_the_mirror(
    done: JobProgress, image: PushedImage, peer: PeerProcess, registry: RegistryServer
) -> None:
    assert done.state == "succeeded", done.error
    assert done.bytes_total == done.bytes_done == image.total_blob_bytes
    assert {b.digest for b in done.blobs} == {d for d, _ in image.blobs}
    assert all(b.state == "succeeded" for b in done.blobs)
    for digest, size in image.blobs:
        assert stored(peer, digest).stat().st_size == size  # it came through this host's mirror
    # Each blob left the registry once, to the peer.
    blob_gets = [r for r in registry.requests() if r["method"] == "GET" and "/blobs/" in r["uri"]]
    assert registry.served_bytes() == image.total_blob_bytes
    assert {r["useragent"] for r in blob_gets} == {PEER_AGENT}, blob_gets


def _podman_pull_command(podman: Podman) -> str:
    """What the agent runs: the test's podman, with its own storage and registries.conf."""
    return shlex.join([
        "env", f"CONTAINERS_REGISTRIES_CONF={podman.registries_conf}", "podman",
        "--root", str(podman.workdir / "root"), "--runroot", str(podman.runroot),
        "--tmpdir", str(podman.workdir / "tmp"), "--storage-driver", podman.storage_driver,
        "--events-backend", "file", "--cgroup-manager", "cgroupfs", "pull", "{reference}",
    ])


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_client_config(client: str, mirror_url: str, path: Path) -> None:
    """`damselfly configure CLIENT --mirror M --registry REGISTRY --path PATH`, as the operator runs it."""
    for change in configure.plan(client, mirror_url, [REGISTRY], Path("/"), path):
        configure.write_atomically(change.path, change.new)


def test_a_runtime_job_has_podman_pull_the_image_through_the_mirror(
    tmp_path: Path, podman: Podman, image_cache: ImageCache
) -> None:
    require_binary("docker-registry")
    with RegistryServer(tmp_path / "registry") as registry:
        image = push_image(image_cache.get([1 * MiB, 2 * MiB], seed=81), registry.url, "test/runtime", "v1")
        config = f"[peer]\nruntime_pull = {_toml_string(_podman_pull_command(podman))}\n\n" + _registry_config(registry)
        with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=1,
                              operator_token=OPERATOR_TOKEN, config_text=config) as cluster:
            peer = cluster.peers[0]
            _write_client_config("podman", peer.mirror_url, podman.registries_conf)
            registry.reset_counts()
            reference = f"{REGISTRY}/test/runtime:v1"
            done = _run_job(cluster, peer, "rt", reference)
            _assert_pulled_through_the_mirror(done, image, peer, registry)
            assert podman.image_id(reference)  # the runtime has it, ready to run


def test_a_runtime_job_has_containerd_pull_the_image_through_the_mirror(
    tmp_path: Path, containerd: ContainerdDaemon, image_cache: ImageCache
) -> None:
    """The agent's own ctr command, with the test's hosts directory; the test's containerd is found at
    `$CONTAINERD_ADDRESS`, as ctr looks."""
    require_binary("docker-registry")
    hosts_dir = tmp_path / "certs.d"
    command = shlex.join(containerd_pull(str(hosts_dir)))
    with RegistryServer(tmp_path / "registry") as registry:
        image = push_image(image_cache.get([1 * MiB, 2 * MiB], seed=82), registry.url, "test/runtime", "v1")
        config = f"[peer]\nruntime_pull = {_toml_string(command)}\n\n" + _registry_config(registry)
        with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=0,
                              operator_token=OPERATOR_TOKEN, config_text=config) as cluster:
            peer = cluster.add_peer(0, wrap=["env", f"CONTAINERD_ADDRESS={containerd.address}"])
            _write_client_config("containerd", peer.mirror_url, hosts_dir)
            registry.reset_counts()
            reference = f"{REGISTRY}/test/runtime:v1"
            done = _run_job(cluster, peer, "rt", reference)
            _assert_pulled_through_the_mirror(done, image, peer, registry)
            images = containerd.ctr(["images", "ls", "--quiet"], namespace="k8s.io").stdout.split()
            assert reference in images  # in the namespace the kubelet runs from
            target = containerd.ctr(["images", "ls"], namespace="k8s.io").stdout
            assert image.manifest_digest in target
            # Unpacked, ready to run: a snapshot of the image's top layer is there.
            snapshots = containerd.ctr(["snapshots", "ls"], namespace="k8s.io").stdout.splitlines()[1:]
            assert len(snapshots) == len(image.layers)


def _docker_peer(cluster: DamselflyCluster, dockerd: DockerDaemon) -> PeerProcess:
    """A peer whose agent finds the test's dockerd at `$DOCKER_HOST` (autodetect: no --runtime-pull), its docker
    CLI reading a config directory of the test's."""
    cli_config = dockerd.workdir / "cli"
    cli_config.mkdir(exist_ok=True)
    return cluster.add_peer(0, wrap=["env", f"DOCKER_HOST=unix://{dockerd.socket}", f"DOCKER_CONFIG={cli_config}"])


def test_a_runtime_job_has_dockerd_pull_a_private_registrys_image_from_the_mirror_by_name(
    tmp_path: Path, dockerd: DockerDaemon, image_cache: ImageCache
) -> None:
    """dockerd mirrors Docker Hub only: the agent has it pull `<mirror>/<registry>/<repo>:<tag>`, then name the
    image as the job did."""
    require_binary("docker-registry")
    with RegistryServer(tmp_path / "registry") as registry:
        image = push_image(
            image_cache.get([1 * MiB, 2 * MiB], seed=83), registry.url, "test/runtime", "v1"
        )
        with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=0,
                              operator_token=OPERATOR_TOKEN, config_text=_registry_config(registry)) as cluster:
            peer = _docker_peer(cluster, dockerd)
            registry.reset_counts()
            reference = f"{REGISTRY}/test/runtime:v1"
            done = _run_job(cluster, peer, "rt", reference)
            _assert_pulled_through_the_mirror(done, image, peer, registry)
            assert dockerd.image_id(reference) == image.config[0]  # under its own name, ready to run
            assert dockerd.image_id(f"{peer.mirror_host}/{reference}") is None  # the mirror's name is gone


def test_a_runtime_job_has_dockerd_pull_a_docker_hub_image_through_registry_mirrors(
    tmp_path: Path, dockerd: DockerDaemon, image_cache: ImageCache
) -> None:
    """Docker Hub's names go through `registry-mirrors` (`damselfly configure docker`, reloaded with SIGHUP). A
    fallback to Docker Hub would hit the fence's dead proxy (tests/support/fence.py) and fail."""
    require_binary("docker-registry")
    with RegistryServer(tmp_path / "registry") as registry:
        image = push_image(image_cache.get([1 * MiB, 2 * MiB], seed=84), registry.url, "test/hub", "v1")
        config = _registry_config(registry, docker_hub=True)
        with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=0,
                              operator_token=OPERATOR_TOKEN, config_text=config) as cluster:
            peer = _docker_peer(cluster, dockerd)
            _write_client_config("docker", peer.mirror_url, dockerd.daemon_json)
            dockerd.reload_config()
            registry.reset_counts()
            done = _run_job(cluster, peer, "hub", "docker.io/test/hub:v1")
            _assert_pulled_through_the_mirror(done, image, peer, registry)
            assert dockerd.image_id("test/hub:v1") == image.config[0]
