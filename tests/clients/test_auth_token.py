"""A token-auth upstream (the real registry with `auth: token`, and the test's own token server).

Anonymous token flow, the client's own token flow through the mirror, credentials configured in Damselfly,
and the upstream's Bearer challenge handed back intact to a client that may not have a blob the host holds.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.clients.conftest import ALICE, MirrorFactory, PrivateUpstreams, damselfly_configure, write_authfile
from tests.support.containerd import ContainerdDaemon
from tests.support.mirror_host import Upstream
from tests.support.podman import Podman
from tests.support.skopeo import dropin_text, mirror_dropin, skopeo_copy, unique_registry_name, verify_dir_blobs

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("require_root")]


def test_ctr_anonymous_token_flow_refusal_and_its_own_token_flow(
    tmp_path: Path, private: PrivateUpstreams, mirror_factory: MirrorFactory, containerd: ContainerdDaemon
) -> None:
    name = unique_registry_name("token-ctr")
    mirror = mirror_factory([Upstream(name, private.token.url)])
    hosts_dir = tmp_path / "certs.d"
    damselfly_configure("containerd", "--mirror", mirror.mirror_url, "--registry", name, "--path", str(hosts_dir))
    pull = ["images", "pull", "--hosts-dir", str(hosts_dir)]

    # A public repository: the mirror gets an anonymous token for it by itself.
    private.reset_counts()
    containerd.ctr([*pull, f"{name}/pub/app:v1"])
    assert private.blob_bytes(private.token) == private.image.total_blob_bytes
    anonymous_scopes = {s for r in private.tokens.token_requests("") for s in r.scopes}
    assert "repository:pub/app:pull" in anonymous_scopes

    # The private repository holds the very same blobs, which this host now stores: still no.
    refused = containerd.ctr([*pull, f"{name}/priv/app:v1"], check=False)
    assert refused.returncode != 0
    digest, _ = private.image.layers[0]
    blob_url = f"{mirror.mirror_url}/v2/priv/app/blobs/{digest}?ns={name}"
    with httpx.Client(trust_env=False, timeout=30) as http:
        answer = http.get(blob_url)
        assert answer.status_code == 401
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith(f'Bearer realm="{private.tokens.realm}",service="{private.tokens.service}"')
        assert 'scope="repository:priv/app:pull"' in challenge
        assert answer.json()["errors"][0]["code"] == "UNAUTHORIZED"
        # A client that sends Basic credentials (curl -u) has them exchanged for a token at the upstream's realm.
        assert http.get(blob_url, auth=("alice", "not-her-password")).status_code == 401
        assert http.get(blob_url, auth=ALICE).status_code == 200

    # With credentials, containerd runs the token flow on the challenge the mirror passed back.
    alice_before = len(private.tokens.token_requests("alice"))
    containerd.ctr([*pull, "--user", f"{ALICE[0]}:{ALICE[1]}", f"{name}/priv/app:v1"])
    assert len(private.tokens.token_requests("alice")) > alice_before
    # Every blob came from the host's store: the upstream only confirmed access.
    assert private.blob_bytes(private.token) == private.image.total_blob_bytes


def test_podman_runs_its_own_token_flow_through_the_mirror(
    private: PrivateUpstreams, mirror_factory: MirrorFactory, podman: Podman, tmp_path: Path
) -> None:
    name = unique_registry_name("token-podman")
    mirror = mirror_factory([Upstream(name, private.token.url)])
    ping = httpx.get(f"{mirror.mirror_url}/v2/", trust_env=False, timeout=30)
    assert ping.status_code == 401
    assert ping.headers["www-authenticate"].startswith(f'Bearer realm="{private.tokens.realm}"')
    # No registry in the mirror location here: containers/image scopes its token request by the repository path
    # it sends, so with a host prefix it would ask for `<registry>/priv/app`, which the upstream does not know.
    podman.registries_conf.write_text(dropin_text(name, mirror.mirror_host))
    authfile = write_authfile(tmp_path / "auth.json", mirror.mirror_host, *ALICE)

    private.reset_counts()
    alice_before = len(private.tokens.token_requests("alice"))
    podman.run(["pull", "--authfile", str(authfile), f"{name}/priv/app:v1"])
    assert podman.image_id(f"{name}/priv/app:v1") == private.image.config[0].removeprefix("sha256:")
    assert private.blob_bytes(private.token) == private.image.total_blob_bytes
    # podman fetched alice's token itself; the mirror never saw her password, only the token it forwarded.
    assert len(private.tokens.token_requests("alice")) > alice_before


def test_skopeo_with_token_credentials_configured_in_damselfly(
    tmp_path: Path, private: PrivateUpstreams, mirror_factory: MirrorFactory
) -> None:
    name = unique_registry_name("token-conf")
    mirror = mirror_factory([Upstream(name, private.token.url, *ALICE)])
    assert httpx.get(f"{mirror.mirror_url}/v2/", trust_env=False, timeout=30).status_code == 200
    private.reset_counts()
    alice_before = len(private.tokens.token_requests("alice"))
    with mirror_dropin(name, f"{mirror.mirror_host}/{name}"):
        skopeo_copy(f"{name}/priv/app:v1", tmp_path / "out")
    verify_dir_blobs(tmp_path / "out", private.image)
    assert private.blob_bytes(private.token) == private.image.total_blob_bytes
    # One token for the one scope, reused for the manifest, every access check and every blob: after the
    # first challenge the mirror sends it right away instead of collecting a 401 before every request.
    assert len(private.tokens.token_requests("alice")) - alice_before == 1
    assert [r["status"] for r in private.token.access_log()].count(401) == 1
