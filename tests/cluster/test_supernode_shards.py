"""Several supernode processes share the swarms out by digest: each swarm lives on the process its digest hashes
to, every blob still comes from the upstream once, and the peers still trade pieces. Each process is read from
outside through its listings, with the operators' token."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from supernode.shards import owner_index
from tests.faults.helpers import pull_blob, push_blob, random_blob, sha256_digest, supernode_peers, supernode_swarms
from tests.support.cluster import DamselflyCluster, env_with_token
from tests.support.identities import OPERATOR_TOKEN
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
        log_path=tmp_path / "supernode1.log", env=env_with_token("", OPERATOR_TOKEN), ready_url=urls[1] + "/healthz",
        ready_timeout=30.0,
        name="supernode1", cwd=Path(__file__).resolve().parents[2],
    ).start()
    try:
        with DamselflyCluster(
            tmp_path / "cluster", upstream_url=registry.url, peers_count=3, supernode_port=ports[0],
            extra_peer_args=["--supernode", ",".join(urls)], operator_token=OPERATOR_TOKEN,
        ) as cluster:
            everything = [digest for found in digests.values() for digest in found]
            with ThreadPoolExecutor(len(cluster.peers)) as pool:
                for digest in everything:
                    pulls = [pool.submit(pull_blob, peer.mirror_url, REPO, digest) for peer in cluster.peers]
                    for pull in pulls:
                        result = pull.result()
                        assert result.ok_for(digest, SIZE), f"{digest}: {result.status} {result.error}"
            # Every host registered with every process; each process keeps the swarms it owns, and no other.
            ids = {peer.stats()["peer_id"] for peer in cluster.peers}
            for index, url in enumerate(urls):
                assert supernode_peers(url) == ids, index
                assert {s.digest for s in supernode_swarms(url)} == set(digests[index]), index
            stats = [peer.stats() for peer in cluster.peers]
            served = registry.served_bytes(method="GET", path_contains="/blobs/")
    finally:
        second.stop()
    assert served == len(everything) * SIZE, f"the upstream sent {served} bytes for {len(everything)} blobs"
    assert sum(s["bytes_from_peers"] for s in stats) >= len(everything) * SIZE  # the swarms did work
    assert sum(s["fallbacks"] for s in stats) == 0
