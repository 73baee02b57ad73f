"""A swarm outlives its supernode: killed mid-pull, killed and restarted, or stopped and restarted.

Four hosts pull one blob at once over a slow upstream (16 MiB/s through the relay); once pieces move between
them, the supernode is killed (SIGKILL) or stopped (SIGTERM: it answers its long-polls at once and exits). What
must hold: every pull is right; no host gives the swarm up for the upstream (the parents they know go on serving,
their own piece views standing in for the supernode's digests); the upstream sends the blob about once.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from tests.faults.helpers import BLOB_SIZE, MiB, check_store, pull_blob, push_blob, random_blob, report, wait_for
from tests.support.cluster import DamselflyCluster
from tests.support.faulty_relay import FaultyRelay
from tests.support.registry import RegistryServer

REPO = "faults/away"
PEERS = 4
# The upstream may send a piece twice where it was in flight when the supernode went (a promoted feeder's first
# piece); anything near a copy per host would be the storm this test is about.
MAX_UPSTREAM_RATIO = 1.25


def _moved_at_least(cluster: DamselflyCluster, total: int) -> bool:
    return sum(int(p.stats()["bytes_from_peers"]) for p in cluster.peers) >= total


@pytest.mark.parametrize(
    ("how", "restart"),
    [("kill", False), ("kill", True), ("stop", True)],
    ids=["killed", "killed-and-restarted", "stopped-and-restarted"],
)
def test_the_swarm_goes_on_without_its_supernode(
    tmp_path: Path, registry: RegistryServer, relay: FaultyRelay, how: str, restart: bool
) -> None:
    relay.rate = 16 * MiB
    outcomes: list[dict[str, object]] = []
    with DamselflyCluster(tmp_path / "cluster", upstream_url=relay.url, peers_count=PEERS) as cluster:
        data = random_blob(BLOB_SIZE, seed=4400 + restart + 2 * (how == "stop"))
        digest = push_blob(registry.url, REPO, data)
        relay.reset_records()
        before = [p.stats() for p in cluster.peers]
        started = time.monotonic()
        with ThreadPoolExecutor(PEERS) as pool:
            futures = [pool.submit(pull_blob, p.mirror_url, REPO, digest) for p in cluster.peers]
            moved_before = sum(int(b["bytes_from_peers"]) for b in before)
            wait_for(partial(_moved_at_least, cluster, moved_before + 4 * MiB), 20.0, "pieces moving between peers")
            assert cluster.supernode is not None
            killed_at = time.monotonic() - started
            if how == "kill":
                cluster.supernode.kill_hard()
            else:
                # SIGTERM: the long-polled views are answered at once, so the stop does not wait them out.
                exit_code = cluster.supernode.stop()
                stop_seconds = time.monotonic() - started - killed_at
                assert exit_code == 0 and stop_seconds < 3.0, (exit_code, stop_seconds)
            if restart:
                time.sleep(2.0)
                cluster.start_supernode()  # same port: the peers' configured URL
            results = [future.result() for future in futures]
        elapsed = time.monotonic() - started
        for index, result in enumerate(results):
            assert result.ok_for(digest, BLOB_SIZE), f"peer {index}: {result.status} {result.error}"
        for peer in cluster.peers:
            assert check_store(peer.data_dir).get(digest) == BLOB_SIZE
        after = [p.stats() for p in cluster.peers]
        fallbacks = sum(int(a["fallbacks"]) - int(b["fallbacks"]) for a, b in zip(after, before, strict=True))
        upstream_ratio = relay.body_bytes() / BLOB_SIZE
        outcomes.append({"how": how, "restart": restart, "killed_at_s": round(killed_at, 2),
                         "done_s": round(elapsed, 2), "fallbacks": fallbacks,
                         "upstream_ratio": round(upstream_ratio, 2)})
        report("swarm without its supernode", outcomes=outcomes)
        assert fallbacks == 0, f"{fallbacks} hosts gave the swarm up for the upstream"
        assert upstream_ratio <= MAX_UPSTREAM_RATIO, f"the upstream sent {upstream_ratio:.2f}x the blob"
