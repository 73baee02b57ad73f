"""The supernode killed with SIGKILL in the middle of a pull.

What must hold: pulls in flight finish with the right bytes (from the parents they know, without the supernode),
new pulls work while it is down, and when it comes back every peer registers again (seen at its
GET /api/v1/peers, read with the operators' token) and the swarm shares pieces again.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from tests.faults.helpers import (
    BLOB_SIZE,
    MiB,
    check_store,
    pull_blob,
    push_blob,
    random_blob,
    report,
    runs,
    supernode_peers,
    wait_for,
)
from tests.support.cluster import DamselflyCluster
from tests.support.faulty_relay import FaultyRelay
from tests.support.identities import OPERATOR_TOKEN
from tests.support.registry import RegistryServer

REPO = "faults/supernode"
PEERS = 3
SMALL = 8 * MiB


def _moved_at_least(cluster: DamselflyCluster, total: int) -> bool:
    return sum(int(p.stats()["bytes_from_peers"]) for p in cluster.peers) >= total


def test_supernode_killed_mid_pull_pulls_finish_and_peers_come_back(
    tmp_path: Path, registry: RegistryServer, relay: FaultyRelay
) -> None:
    relay.rate = 16 * MiB
    total_runs = runs(2)
    outcomes: list[dict[str, object]] = []
    with DamselflyCluster(
        tmp_path / "cluster", upstream_url=relay.url, peers_count=PEERS, operator_token=OPERATOR_TOKEN
    ) as cluster:
        peer_ids = {p.stats()["peer_id"] for p in cluster.peers}
        assert supernode_peers(cluster.supernode_url) == peer_ids
        for run in range(total_runs):
            data = random_blob(BLOB_SIZE, seed=2000 + run)
            digest = push_blob(registry.url, REPO, data)
            during = random_blob(SMALL, seed=2100 + run)
            during_digest = push_blob(registry.url, REPO, during)
            before = [p.stats() for p in cluster.peers]
            started = time.monotonic()
            with ThreadPoolExecutor(PEERS) as pool:
                futures = [pool.submit(pull_blob, p.mirror_url, REPO, digest) for p in cluster.peers]
                moved_before = sum(b["bytes_from_peers"] for b in before)
                wait_for(partial(_moved_at_least, cluster, moved_before + 8 * MiB), 20.0, "pieces moving between peers")
                assert cluster.supernode is not None
                cluster.supernode.kill_hard()
                killed_at = time.monotonic() - started
                # A new pull while the supernode is down: straight from the upstream.
                new_pull = pull_blob(cluster.peers[run % PEERS].mirror_url, REPO, during_digest)
                results = [future.result() for future in futures]
            in_flight_done = time.monotonic() - started
            assert new_pull.ok_for(during_digest, SMALL), f"run {run}: pull while down: {new_pull}"
            for index, result in enumerate(results):
                assert result.ok_for(digest, BLOB_SIZE), f"run {run}, peer {index}: {result.status} {result.error}"
            after = [p.stats() for p in cluster.peers]
            fallbacks = sum(a["fallbacks"] - b["fallbacks"] for a, b in zip(after, before, strict=True))
            # The parents they knew went on serving (peer/parent_views.py): the in-flight pulls did not give the swarm
            # up; the one fallback is the new pull made while the supernode was down.
            assert fallbacks <= 1
            for peer in cluster.peers:
                assert check_store(peer.data_dir).get(digest) == BLOB_SIZE

            restarted = time.monotonic()
            cluster.start_supernode()  # same port: the peers' configured URL
            back_in = wait_for(lambda: supernode_peers(cluster.supernode_url) == peer_ids, 30.0,
                               "every peer registered again")
            # And the swarm works again: a blob pulled by one host is shared with the next, not refetched.
            again = random_blob(SMALL, seed=2200 + run)
            again_digest = push_blob(registry.url, REPO, again)
            first, second = cluster.peers[run % PEERS], cluster.peers[(run + 1) % PEERS]
            assert pull_blob(first.mirror_url, REPO, again_digest).ok_for(again_digest, SMALL)
            second_before = second.stats()
            assert pull_blob(second.mirror_url, REPO, again_digest).ok_for(again_digest, SMALL)
            second_after = second.stats()
            assert second_after["bytes_from_peers"] - second_before["bytes_from_peers"] == SMALL
            assert second_after["bytes_from_upstream"] == second_before["bytes_from_upstream"]
            outcomes.append(
                {"run": run, "killed_at_s": round(killed_at, 2), "in_flight_done_s": round(in_flight_done, 2),
                 "pull_while_down_s": round(new_pull.seconds, 2), "fallbacks": fallbacks,
                 "reregistered_after_s": round(back_in, 2), "since_restart_s": round(time.monotonic() - restarted, 2)}
            )
    report("supernode killed mid-pull", runs=total_runs, peers=PEERS, blob_mib=BLOB_SIZE // MiB, outcomes=outcomes)
