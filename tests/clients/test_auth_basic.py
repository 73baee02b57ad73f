"""A Basic-auth upstream (the real registry with htpasswd): private pulls with the client's own credentials
and with credentials configured in Damselfly; no blob for a client without them, even one already stored."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.clients.conftest import ALICE, MirrorFactory, PrivateUpstreams, damselfly_configure, write_authfile
from tests.support.cluster import DamselflyCluster
from tests.support.mirror_host import Upstream
from tests.support.podman import Podman
from tests.support.skopeo import mirror_dropin, skopeo_copy, unique_registry_name, verify_dir_blobs

BASIC_CHALLENGE = 'Basic realm="basic-realm"'


@pytest.mark.root
def test_skopeo_with_its_own_credentials_and_no_blob_without_them(
    tmp_path: Path, private: PrivateUpstreams, mirror_factory: MirrorFactory, require_root: None
) -> None:
    name = unique_registry_name("basic")
    mirror = mirror_factory([Upstream(name, private.basic.url)])
    with httpx.Client(trust_env=False, timeout=30) as http:
        # skopeo (containers/image) learns how to authenticate from the ping only: it must see the challenge.
        ping = http.get(f"{mirror.mirror_url}/v2/")
        assert ping.status_code == 401
        assert ping.headers["www-authenticate"] == BASIC_CHALLENGE
        assert http.get(f"{mirror.mirror_url}/v2/", auth=ALICE).status_code == 200

    with mirror_dropin(name, f"{mirror.mirror_host}/{name}"):
        private.reset_counts()
        # containers/image never sends --src-creds to a mirror (they are meant for the registry named), so
        # the client's own credentials for the mirror come from an auth file entry for the mirror's host.
        authfile = write_authfile(tmp_path / "auth.json", mirror.mirror_host, *ALICE)
        skopeo_copy(f"{name}/priv/app:v1", tmp_path / "alice", extra_args=["--src-authfile", str(authfile)])
        verify_dir_blobs(tmp_path / "alice", private.image)
        assert private.blob_bytes(private.basic) == private.image.total_blob_bytes

        # --src-creds alone: containers/image keeps them from mirrors, so the mirror sees no credentials.
        refused = skopeo_copy(f"{name}/priv/app:v1", tmp_path / "nobody", creds=ALICE, check=False)
        assert refused.returncode != 0
        assert "unauthorized" in refused.stderr.lower() or "401" in refused.stderr

    # Every blob is in the host's store now; a client without credentials still gets the upstream's no.
    digest, _ = private.image.layers[-1]
    blob_url = f"{mirror.mirror_url}/v2/{name}/priv/app/blobs/{digest}"
    with httpx.Client(trust_env=False, timeout=30) as http:
        anonymous = http.get(blob_url)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == BASIC_CHALLENGE
        assert anonymous.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert http.head(blob_url).status_code == 401
        assert http.get(blob_url, auth=("alice", "not-her-password")).status_code == 401
        allowed = http.get(blob_url, auth=ALICE)
        assert allowed.status_code == 200
        assert hashlib.sha256(allowed.content).hexdigest() == digest.removeprefix("sha256:")
    # ... and that one came from the store: the upstream sent no blob bytes since the first pull.
    assert private.blob_bytes(private.basic) == private.image.total_blob_bytes


@pytest.mark.root
def test_podman_with_credentials_configured_in_damselfly(
    private: PrivateUpstreams, mirror_factory: MirrorFactory, podman: Podman
) -> None:
    name = unique_registry_name("basic-conf")
    mirror = mirror_factory([Upstream(name, private.basic.url, *ALICE)])
    # The mirror authenticates by itself: clients need not, and are not asked to.
    assert httpx.get(f"{mirror.mirror_url}/v2/", trust_env=False, timeout=30).status_code == 200
    damselfly_configure(
        "podman", "--mirror", mirror.mirror_url, "--registry", name, "--path", str(podman.registries_conf)
    )
    private.reset_counts()
    podman.run(["pull", f"{name}/priv/app:v1"])
    assert podman.image_id(f"{name}/priv/app:v1") == private.image.config[0].removeprefix("sha256:")
    assert private.blob_bytes(private.basic) == private.image.total_blob_bytes


def test_a_blob_the_swarm_holds_is_refused_to_a_client_without_credentials(
    tmp_path: Path, private: PrivateUpstreams
) -> None:
    """Two hosts: one pulled the private blob with credentials; the other has it a piece away, in the swarm."""
    name = unique_registry_name("basic-swarm")
    config = f'[[registry]]\nname = "{name}"\nurl = "{private.basic.url}"\n'
    digest, size = private.image.layers[-1]
    path = f"/v2/priv/app/blobs/{digest}?ns={name}"
    private.reset_counts()
    with (
        DamselflyCluster(tmp_path / "cluster", private.open.url, peers_count=2, config_text=config) as cluster,
        httpx.Client(trust_env=False, timeout=60) as http,
    ):
        first, second = cluster.peers
        assert http.get(first.mirror_url + path, auth=ALICE).status_code == 200
        for peer in (first, second):
            refused = http.get(peer.mirror_url + path)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == BASIC_CHALLENGE
            assert len(refused.content) < 1000
        assert second.stats()["bytes_from_peers"] == 0
        # With credentials the second host gets it from the first, not from the upstream.
        allowed = http.get(second.mirror_url + path, auth=ALICE)
        assert allowed.status_code == 200
        assert hashlib.sha256(allowed.content).hexdigest() == digest.removeprefix("sha256:")
        assert second.stats()["bytes_from_peers"] == size
    assert private.blob_bytes(private.basic) == size
