"""A supernode that restarts forgets its jobs; the platform puts them again, and the host tells a finished job's end
again instead of doing it twice."""

from __future__ import annotations

from pathlib import Path

from supernode.jobs import ImageSpec, Job
from tests.support.cluster import DamselflyCluster
from tests.support.fixtures import require_binary
from tests.support.identities import OPERATOR_TOKEN
from tests.support.images import ImageCache, push_image
from tests.support.jobs import final, host_id, progress, put
from tests.support.registry import RegistryServer


def test_a_finished_job_put_again_after_a_supernode_restart_is_told_not_redone(
    tmp_path: Path, image_cache: ImageCache
) -> None:
    require_binary("docker-registry")
    with RegistryServer(tmp_path / "registry") as registry:
        image = push_image(image_cache.get([1024 * 1024], seed=77), registry.url, "test/again", "v1")
        with DamselflyCluster(
            tmp_path / "cluster", upstream_url=registry.url, peers_count=1, operator_token=OPERATOR_TOKEN
        ) as cluster:
            peer = cluster.peers[0]
            job = Job("again", "t", host_id(peer), "image", image=ImageSpec(image.ref))
            put(cluster, job)
            first = final(cluster, "again")
            assert first.state == "succeeded", first.error
            fetched = peer.stats()["bytes_from_upstream"]
            assert cluster.supernode is not None
            cluster.supernode.stop()
            cluster.start_supernode()  # the same port: the peer finds it again
            assert progress(cluster, "again") is None
            put(cluster, job)
            told = final(cluster, "again", timeout=60.0)
            # The same run's end: not started again, nothing fetched again.
            assert told.state == "succeeded"
            assert (told.started_at, told.finished_at) == (first.started_at, first.finished_at)
            assert peer.stats()["bytes_from_upstream"] == fetched
