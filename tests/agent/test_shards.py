"""With several supernode processes, a host asks for its jobs at the one `owner_index(urls, peer_id)` gives, where the
platform puts them; a job put at another process is not this host's to see."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from supernode.jobs import ImageSpec, Job
from supernode.shards import owner_index
from tests.support.cluster import DamselflyCluster, env_with_token
from tests.support.fixtures import require_binary
from tests.support.identities import OPERATOR_TOKEN
from tests.support.images import ImageCache, push_image
from tests.support.jobs import final, host_id, progress, put, stored
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess
from tests.support.registry import RegistryServer


def test_a_host_runs_the_jobs_of_the_supernode_that_owns_it(tmp_path: Path, image_cache: ImageCache) -> None:
    require_binary("docker-registry")
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    with RegistryServer(tmp_path / "registry") as registry:
        image = push_image(image_cache.get([1024 * 1024], seed=78), registry.url, "test/shards", "v1")
        second = ManagedProcess(
            [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{ports[1]}",
             "--data-dir", str(tmp_path / "supernode1"), "--no-manager"],
            log_path=tmp_path / "supernode1.log", env=env_with_token("", OPERATOR_TOKEN),
            ready_url=urls[1] + "/healthz", ready_timeout=30.0, name="supernode1",
            cwd=Path(__file__).resolve().parents[2],
        ).start()
        try:
            with DamselflyCluster(
                tmp_path / "cluster", upstream_url=registry.url, peers_count=1, supernode_port=ports[0],
                extra_peer_args=["--supernode", ",".join(urls)], operator_token=OPERATOR_TOKEN,
            ) as cluster:
                peer = cluster.peers[0]
                owner = owner_index(urls, host_id(peer))
                elsewhere = urls[1 - owner]
                put(cluster, Job("not-here", "t", host_id(peer), "image", image=ImageSpec(image.ref)), elsewhere)
                put(cluster, Job("here", "t", host_id(peer), "image", image=ImageSpec(image.ref)), urls[owner])
                done = final(cluster, "here", supernode_url=urls[owner])
                assert done.state == "succeeded", done.error
                assert all(stored(peer, digest).exists() for digest, _ in image.blobs)
                time.sleep(1.0)
                assert progress(cluster, "not-here", elsewhere) is None
        finally:
            second.stop()
