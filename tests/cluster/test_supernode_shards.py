"""Several supernode processes share the swarms out by digest: each swarm lives on the process its digest hashes
to, every blob still comes from the upstream once, and the peers still trade pieces."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from supernode import routes
from supernode.shards import owner_index
from tests.faults.helpers import pull_blob, push_blob, random_blob, sha256_digest
from tests.support.cluster import CLEAN_ENV, DamselflyCluster
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess
from tests.support.registry import RegistryServer

MiB = 1 << 20
REPO = "shards/test"
SIZE = 9 * MiB  # three pieces


def test_swarms_are_shared_out_by_digest_and_each_blob_comes_from_the_upstream_once(
    tmp_path: Path, registry: RegistryServer
) -> None:
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    # Blobs chosen so that each process owns two of them (which one owns a digest is fixed by the URLs).
    blobs: dict[int, list[bytes]] = {0: [], 1: []}
    seed = 0
    while min(len(found) for found in blobs.values()) < 2:
        data = random_blob(SIZE, seed)
        seed += 1
        owned = blobs[owner_index(urls, sha256_digest(data))]
        if len(owned) < 2:
            owned.append(data)
    digests = {shard: [push_blob(registry.url, REPO, data) for data in found] for shard, found in blobs.items()}
    registry.reset_counts()

    second = ManagedProcess(
        [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{ports[1]}"],
        log_path=tmp_path / "supernode1.log", env=CLEAN_ENV, ready_url=urls[1] + "/healthz", ready_timeout=30.0,
        name="supernode1", cwd=Path(__file__).resolve().parents[2],
    ).start()
    try:
        with DamselflyCluster(
            tmp_path / "cluster", upstream_url=registry.url, peers_count=3, supernode_port=ports[0],
            extra_peer_args=["--supernode", ",".join(urls)],
        ) as cluster:
            everything = [digest for found in digests.values() for digest in found]
            with ThreadPoolExecutor(len(cluster.peers)) as pool:
                for digest in everything:
                    pulls = [pool.submit(pull_blob, peer.mirror_url, REPO, digest) for peer in cluster.peers]
                    for pull in pulls:
                        result = pull.result()
                        assert result.ok_for(digest, SIZE), f"{digest}: {result.status} {result.error}"
            peer_id = (cluster.peers[0].data_dir / "peer-id").read_text().strip()
            for shard, found in digests.items():
                for digest in found:
                    for index, url in enumerate(urls):
                        view = httpx.get(
                            url + routes.VIEW.url(digest=digest),
                            params={"peer_id": peer_id, "since": "-1"}, timeout=10.0, trust_env=False,
                        )
                        # The owner keeps the swarm; the other process never heard of it.
                        assert view.status_code == (200 if index == shard else 404), (digest, index, view.text)
            stats = [peer.stats() for peer in cluster.peers]
            served = registry.served_bytes(method="GET", path_contains="/blobs/")
    finally:
        second.stop()
    assert served == len(everything) * SIZE, f"the upstream sent {served} bytes for {len(everything)} blobs"
    assert sum(s["bytes_from_peers"] for s in stats) >= len(everything) * SIZE  # the swarms did work
    assert sum(s["fallbacks"] for s in stats) == 0
