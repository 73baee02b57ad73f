"""Which runtime the agent finds and what it has each run (tests/agent/test_runtime.py runs them for real)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.failure import JobFailed
from agent.image_job import runtime_platforms
from agent.manifests import host_platform
from agent.reference import resolve_reference
from agent.runtime_commands import CERTS_D, Runtime, Step, containerd_pull, find_runtime, pull_steps
from upstream.registry import UpstreamRegistry

REGISTRIES = {
    "docker.io": UpstreamRegistry("docker.io", "https://registry-1.docker.io", library_prefix=True),
    "registry.example.com": UpstreamRegistry("registry.example.com", "https://registry.example.com"),
    "registry.example.com:5000": UpstreamRegistry("registry.example.com:5000", "https://registry.example.com:5000"),
}
DOCKER = Runtime(("docker",), docker=True)
MIRROR = "127.0.0.1:65001"


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[Path]:
    """A unix socket something listens on, as a runtime's daemon's."""
    path = tmp_path / "daemon.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()
        yield path


def _steps(runtime: Runtime, reference: str) -> list[Step]:
    return pull_steps(runtime, resolve_reference(reference, REGISTRIES, "docker.io"), MIRROR)


def test_a_configured_command_wins_and_is_given_the_image_named_with_its_registry() -> None:
    runtime = find_runtime(["nerdctl", "pull", "{reference}"], {})
    assert _steps(runtime, "alpine:3") == [Step("nerdctl pull", ("nerdctl", "pull", "docker.io/library/alpine:3"))]


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed (Debian docker.io)")
def test_docker_is_found_at_docker_host_as_its_cli_looks(listening: Path) -> None:
    assert find_runtime([], {"DOCKER_HOST": f"unix://{listening}"}) == DOCKER
    assert find_runtime([], {"DOCKER_HOST": "tcp://10.0.0.5:2376"}) == DOCKER


@pytest.mark.skipif(shutil.which("ctr") is None, reason="ctr is not installed (Debian containerd)")
def test_containerd_is_found_at_containerd_address_as_ctr_looks(listening: Path) -> None:
    found = find_runtime([], {"DOCKER_HOST": f"unix://{listening}.gone", "CONTAINERD_ADDRESS": str(listening)})
    assert found == Runtime(containerd_pull())
    assert _steps(found, "registry.example.com/team/app:1.4")[0].args == (
        "ctr", "-n", "k8s.io", "images", "pull", "--hosts-dir", CERTS_D, "registry.example.com/team/app:1.4",
    )


def test_docker_pulls_a_docker_hub_image_by_its_name_through_registry_mirrors() -> None:
    assert _steps(DOCKER, "alpine:3") == [Step("docker pull", ("docker", "pull", "docker.io/library/alpine:3"))]


def test_docker_pulls_another_registrys_image_from_the_mirror_and_names_it_as_the_job_did() -> None:
    through = f"{MIRROR}/registry.example.com/team/app:1.4"
    assert _steps(DOCKER, "registry.example.com/team/app:1.4") == [
        Step("docker pull", ("docker", "pull", through)),
        Step("docker tag", ("docker", "tag", through, "registry.example.com/team/app:1.4")),
        Step("docker rmi", ("docker", "rmi", through)),
    ]


def test_docker_keeps_the_mirrors_name_of_an_image_pulled_by_digest() -> None:
    digest = "sha256:" + "a" * 64
    assert _steps(DOCKER, f"registry.example.com/team/app@{digest}") == [
        Step("docker pull", ("docker", "pull", f"{MIRROR}/registry.example.com/team/app@{digest}")),
    ]


def test_docker_cannot_name_a_registry_with_a_port_through_the_mirror() -> None:
    with pytest.raises(JobFailed, match="registry named with a port"):
        _steps(DOCKER, "registry.example.com:5000/team/app:1.4")


def test_a_runtime_job_takes_the_hosts_own_platform_and_refuses_a_task_naming_only_others() -> None:
    own = host_platform()
    assert own.startswith("linux/") and own != "linux/x86_64"
    # Whatever the task asked, the runtime pulls the host's platform: those are the blobs the job waits for.
    assert runtime_platforms(()) == (own,)
    assert runtime_platforms(("linux/s390x", own)) == (own,)
    other = "linux/s390x" if own != "linux/s390x" else "linux/amd64"
    with pytest.raises(JobFailed, match=f"pulls {own}, the task names {other}"):
        runtime_platforms((other,))
