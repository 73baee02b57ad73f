"""A parent killed with SIGKILL in the middle of a transfer: every child still ends with the right bytes.

Four hosts pull the same blob at once through their own mirrors while the upstream's link is limited, so the
swarm is mid-transfer for a couple of seconds. Runs alternate between killing the source (the one host fetching
from the upstream, parent of everyone) and killing a child that is itself serving pieces to others.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
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
    safe_stats,
)
from tests.support.cluster import DamselflyCluster, PeerProcess
from tests.support.faulty_relay import FaultyRelay
from tests.support.registry import RegistryServer

REPO = "faults/parent"
PEERS = 4


def _delta(now: dict[str, int], before: dict[str, int], key: str) -> int:
    return now.get(key, 0) - before.get(key, 0)


def _choose_victim(
    peers: list[PeerProcess], before: dict[int, dict[str, int]], kill_source: bool, deadline: float
) -> PeerProcess | None:
    """Wait until a parent is demonstrably mid-transfer, and return it."""
    while time.monotonic() < deadline:
        now = {p.index: safe_stats(p.stats) for p in peers}
        if kill_source:
            for peer in peers:
                got = _delta(now[peer.index], before[peer.index], "bytes_from_upstream")
                served = _delta(now[peer.index], before[peer.index], "upload_bytes")
                # Far enough in that children hold pieces from it, far from done.
                if 0.25 * BLOB_SIZE <= got <= 0.6 * BLOB_SIZE and served > 0:
                    return peer
        else:
            for peer in peers:
                got = _delta(now[peer.index], before[peer.index], "bytes_from_peers")
                served = _delta(now[peer.index], before[peer.index], "upload_bytes")
                # A child that is serving others while it still lacks a good part of the blob itself (up to 0.8:
                # on a loaded machine a child may only begin to serve past 60%, and the run found none).
                if served > 0 and 0 < got <= 0.8 * BLOB_SIZE:
                    return peer
        time.sleep(0.02)
    return None


def test_parent_killed_mid_transfer_every_child_finishes_with_the_right_bytes(
    tmp_path: Path, registry: RegistryServer, relay: FaultyRelay
) -> None:
    relay.rate = 16 * MiB  # the upstream link: 2.5 s for one blob, the window in which parents die
    total_runs = runs(4)
    outcomes: list[dict[str, object]] = []
    # Each host uploads at most 12 MiB/s: the source alone cannot feed three children at the upstream's pace, so
    # children also serve each other, and killing one of them cuts transfers in flight.
    limits = ["--upload-rate", "12MiB"]
    with DamselflyCluster(
        tmp_path / "cluster", upstream_url=relay.url, peers_count=PEERS, extra_peer_args=limits
    ) as cluster:
        for run in range(total_runs):
            kill_source = run % 2 == 0
            data = random_blob(BLOB_SIZE, seed=1000 + run)
            digest = push_blob(registry.url, REPO, data)
            before = {p.index: p.stats() for p in cluster.peers}
            started = time.monotonic()
            with ThreadPoolExecutor(PEERS) as pool:
                futures = {
                    p.index: pool.submit(pull_blob, p.mirror_url, REPO, digest, keep_body=True) for p in cluster.peers
                }
                victim = _choose_victim(cluster.peers, before, kill_source, time.monotonic() + 20.0)
                assert victim is not None, f"run {run}: no {'source' if kill_source else 'serving child'} seen"
                victim.process.kill_hard()
                killed_at = time.monotonic() - started
                results = {index: future.result() for index, future in futures.items()}
            finished = time.monotonic() - started
            for index, result in results.items():
                if index == victim.index:
                    # Its own client was cut off with the daemon, but never handed a wrong byte.
                    assert result.length < BLOB_SIZE
                    assert result.body == data[: result.length]
                    continue
                assert result.ok_for(digest, BLOB_SIZE), f"run {run}, peer {index}: {result.status} {result.error}"
            victim.restart()
            for peer in cluster.peers:
                stored = check_store(peer.data_dir)
                if peer is not victim:
                    assert stored.get(digest) == BLOB_SIZE
            outcomes.append(
                {"run": run, "killed": "source" if kill_source else "serving child", "killed_at_s": round(killed_at, 2),
                 "all_done_s": round(finished, 2)}
            )
    report("parent killed mid-transfer", runs=total_runs, peers=PEERS, blob_mib=BLOB_SIZE // MiB, outcomes=outcomes)
