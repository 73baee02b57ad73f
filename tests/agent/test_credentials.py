"""An image job fetches with the job's own registry credential; without one, with the host's configured one."""

from __future__ import annotations

from pathlib import Path

from supernode.jobs import ImageSpec, Job, RegistryCredential
from tests.support.cluster import DamselflyCluster
from tests.support.fixtures import require_binary
from tests.support.identities import OPERATOR_TOKEN
from tests.support.images import ImageCache, push_image
from tests.support.jobs import final, host_id, put, stored
from tests.support.registry import RegistryServer

ALICE = ("alice", "alice-password-of-the-tests")


def test_the_jobs_credential_opens_a_private_registry_and_none_is_refused(
    tmp_path: Path, image_cache: ImageCache
) -> None:
    require_binary("docker-registry")
    with RegistryServer(tmp_path / "registry", htpasswd=ALICE) as registry:
        image = push_image(image_cache.get([1 * 1024 * 1024], seed=76), registry.url, "private/app", "v1", creds=ALICE)
        with DamselflyCluster(
            tmp_path / "cluster", upstream_url=registry.url, peers_count=1, operator_token=OPERATOR_TOKEN
        ) as cluster:
            peer = cluster.peers[0]
            anonymous = Job("anonymous", "t", host_id(peer), "image", image=ImageSpec(image.ref))
            put(cluster, anonymous)
            refused = final(cluster, "anonymous")
            assert refused.state == "failed" and "refused the manifest of private/app (401)" in refused.error
            credential = RegistryCredential(*ALICE)
            put(cluster, Job("alice", "t", host_id(peer), "image", image=ImageSpec(image.ref), credential=credential))
            done = final(cluster, "alice")
            assert done.state == "succeeded", done.error
            assert all(stored(peer, digest).exists() for digest, _ in image.blobs)
            # The password is the job's, never the daemon's to tell.
            assert ALICE[1] not in peer.log_path.read_text()
