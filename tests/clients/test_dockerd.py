"""dockerd 20.10 through Damselfly: `registry-mirrors` from `damselfly configure docker`.

dockerd uses mirrors for Docker Hub names only, and they arrive with no registry in the path, so Damselfly's
default registry, named docker.io, is routed to the test upstream. A fallback to the real Docker Hub would
hit the fenced proxy (tests/support/fence.py) and fail, and would not yield these image IDs anyway.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.clients.conftest import ALICE, MirrorFactory, PrivateUpstreams, UpstreamImages, damselfly_configure
from tests.support.containerd import ContainerdDaemon
from tests.support.dockerd import DockerDaemon
from tests.support.fixtures import require_binary
from tests.support.mirror_host import Upstream

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("require_root")]


@pytest.fixture
def daemon_json(tmp_path: Path) -> Path:
    path = tmp_path / "daemon.json"
    # Something of the operator's own, which `configure` must keep.
    path.write_text(json.dumps({"log-level": "warn", "registry-mirrors": ["http://127.0.0.1:9"]}))
    return path


def test_dockerd_pulls_an_image_and_a_multi_arch_index_through_registry_mirrors(
    tmp_path: Path,
    upstream: UpstreamImages,
    mirror_factory: MirrorFactory,
    containerd: ContainerdDaemon,
    daemon_json: Path,
) -> None:
    require_binary("dockerd")
    require_binary("docker")
    mirror = mirror_factory([Upstream("docker.io", upstream.registry.url, library_prefix=True)])
    damselfly_configure("docker", "--mirror", mirror.mirror_url, "--path", str(daemon_json))
    config = json.loads(daemon_json.read_text())
    assert config["registry-mirrors"] == [mirror.mirror_url, "http://127.0.0.1:9"]
    assert config["log-level"] == "warn"

    with DockerDaemon(tmp_path / "docker", daemon_json, containerd=containerd) as dockerd:
        upstream.registry.reset_counts()
        dockerd.docker(["pull", "docker.io/test/app:v1"])
        assert image_id(dockerd, "test/app:v1") == upstream.app.config[0]
        assert upstream.blob_bytes() == upstream.app.total_blob_bytes

        upstream.registry.reset_counts()
        dockerd.docker(["pull", "docker.io/test/multi:v1"])
        # docker chose linux/amd64 from the index and pinned the index's digest.
        assert image_id(dockerd, "test/multi:v1") == upstream.amd64.config[0]
        repo_digests = dockerd.docker(["image", "inspect", "--format", "{{json .RepoDigests}}", "test/multi:v1"])
        assert json.loads(repo_digests.stdout) == [f"test/multi@{upstream.index.digest}"]
        assert upstream.blob_bytes() == upstream.amd64.total_blob_bytes


def image_id(dockerd: DockerDaemon, ref: str) -> str:
    return dockerd.docker(["image", "inspect", "--format", "{{.Id}}", ref]).stdout.strip()


def test_dockerd_runs_its_token_flow_on_the_challenge_of_the_mirror_ping(
    tmp_path: Path,
    private: PrivateUpstreams,
    mirror_factory: MirrorFactory,
    containerd: ContainerdDaemon,
    daemon_json: Path,
) -> None:
    """docker decides how to authenticate from `GET /v2/` alone: the mirror hands it the upstream's challenge."""
    require_binary("dockerd")
    require_binary("docker")
    mirror = mirror_factory([Upstream("docker.io", private.token.url)])
    damselfly_configure("docker", "--mirror", mirror.mirror_url, "--path", str(daemon_json))
    with DockerDaemon(tmp_path / "docker", daemon_json, containerd=containerd) as dockerd:
        private.reset_counts()
        # Anonymous: docker gets an anonymous token from the upstream's realm and the mirror forwards it.
        anonymous_before = len(private.tokens.token_requests(""))
        dockerd.docker(["pull", "docker.io/pub/app:v1"])
        assert image_id(dockerd, "pub/app:v1") == private.image.config[0]
        assert len(private.tokens.token_requests("")) > anonymous_before
        assert private.blob_bytes(private.token) == private.image.total_blob_bytes
        refused = dockerd.docker(["pull", "docker.io/priv/app:v1"], check=False)
        assert refused.returncode != 0

        # With Docker Hub credentials in the CLI's config, docker runs the token flow as alice.
        auth = base64.b64encode(f"{ALICE[0]}:{ALICE[1]}".encode()).decode()
        (tmp_path / "docker" / "cli" / "config.json").write_text(
            json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}})
        )
        alice_before = len(private.tokens.token_requests("alice"))
        dockerd.docker(["pull", "docker.io/priv/app:v1"])
        assert image_id(dockerd, "priv/app:v1") == private.image.config[0]
        assert len(private.tokens.token_requests("alice")) > alice_before
