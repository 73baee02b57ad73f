"""A peer that serves corrupt pieces (tests/support/faulty_peer.py flips a byte in every piece it serves).

What must hold: the bad piece is caught at the piece, that peer is blocklisted for the swarm (asked again at
most for the requests already in flight), the piece comes from elsewhere, and no wrong byte reaches a client
or any store.
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
)
from tests.support.cluster import DamselflyCluster, PeerProcess
from tests.support.registry import RegistryServer

REPO = "faults/corrupt"
# The test entry point of a peer that corrupts what it serves (no flag of `damselfly` can do that).
FAULTY_PEER = "tests.support.faulty_peer"
PIECE = 4 * MiB
# Pieces a child may have in flight to one parent when the first bad one comes back (max_inflight_per_parent).
IN_FLIGHT_PER_PARENT = 3


def _log_mentions(peer: PeerProcess, needle: str) -> int:
    return peer.log_path.read_text(errors="replace").count(needle)


def _pull_all(peers: list[PeerProcess], digest: str) -> list[bool]:
    with ThreadPoolExecutor(len(peers)) as pool:
        results = list(pool.map(lambda p: pull_blob(p.mirror_url, REPO, digest), peers))
    return [r.ok_for(digest, BLOB_SIZE) for r in results]


def test_corrupt_parent_is_caught_blocklisted_and_bypassed(tmp_path: Path, registry: RegistryServer) -> None:
    """A good parent and a corrupt one both hold the blob; children get every piece right, from the good one."""
    total_runs = runs(3)
    outcomes: list[dict[str, object]] = []
    with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=0) as cluster:
        good = cluster.add_peer(0)
        bad = cluster.add_peer(1, entry=FAULTY_PEER)
        children = [cluster.add_peer(2), cluster.add_peer(3)]
        late = cluster.add_peer(4)
        for run in range(total_runs):
            data = random_blob(BLOB_SIZE, seed=3000 + run)
            digest = push_blob(registry.url, REPO, data)
            # The good peer fetches from the source; the corrupt one gets it from the good one (it corrupts only
            # what it serves), so both are finished parents when the children arrive.
            assert pull_blob(good.mirror_url, REPO, digest).ok_for(digest, BLOB_SIZE)
            assert pull_blob(bad.mirror_url, REPO, digest).ok_for(digest, BLOB_SIZE)
            before = [c.stats() for c in children]
            bad_served_before = bad.stats()["upload_bytes"]
            started = time.monotonic()
            assert all(_pull_all(children, digest)), f"run {run}: a child did not get the right blob"
            elapsed = time.monotonic() - started
            after = [c.stats() for c in children]
            corrupt = [a["corrupt_pieces"] - b["corrupt_pieces"] for a, b in zip(after, before, strict=True)]
            pieces_from_bad = (bad.stats()["upload_bytes"] - bad_served_before) // PIECE
            # The corrupt peer really was asked (else this test proves nothing) ...
            assert sum(corrupt) >= 1, f"run {run}: no child ever asked the corrupt peer"
            # ... every piece it sent was caught, and once caught it was not asked again beyond what was in flight.
            assert sum(corrupt) == pieces_from_bad
            assert all(c <= IN_FLIGHT_PER_PARENT for c in corrupt), corrupt
            for child, a, b in zip(children, after, before, strict=True):
                assert a["bytes_from_peers"] - b["bytes_from_peers"] == BLOB_SIZE  # from the good parent
                assert a["verify_failures"] == b["verify_failures"] == 0
                assert check_store(child.data_dir).get(digest) == BLOB_SIZE
            # Blocklisted for the swarm, not just by the children that caught it: a host that joins later is
            # never pointed at the corrupt peer.
            late_before, bad_served = late.stats(), bad.stats()["upload_bytes"]
            assert pull_blob(late.mirror_url, REPO, digest).ok_for(digest, BLOB_SIZE)
            assert late.stats()["corrupt_pieces"] == late_before["corrupt_pieces"]
            assert bad.stats()["upload_bytes"] == bad_served
            outcomes.append({"run": run, "corrupt_pieces_caught": sum(corrupt), "seconds": round(elapsed, 2)})
        assert sum(_log_mentions(c, "blocklisting") for c in children) >= total_runs
        for peer in cluster.peers:
            check_store(peer.data_dir)
    report("corrupt parent beside a good one", runs=total_runs, blob_mib=BLOB_SIZE // MiB, outcomes=outcomes)


def test_corrupt_source_is_replaced_and_the_upstream_serves_the_rest(
    tmp_path: Path, registry: RegistryServer
) -> None:
    """The only peer holding the blob serves garbage: children blocklist it and one of them goes to the source."""
    total_runs = runs(2)
    outcomes: list[dict[str, object]] = []
    with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=0) as cluster:
        bad = cluster.add_peer(0, entry=FAULTY_PEER)
        children = [cluster.add_peer(1), cluster.add_peer(2)]
        for run in range(total_runs):
            data = random_blob(BLOB_SIZE, seed=3100 + run)
            digest = push_blob(registry.url, REPO, data)
            assert pull_blob(bad.mirror_url, REPO, digest).ok_for(digest, BLOB_SIZE)
            before = [c.stats() for c in children]
            started = time.monotonic()
            assert all(_pull_all(children, digest)), f"run {run}: a child did not get the right blob"
            elapsed = time.monotonic() - started
            after = [c.stats() for c in children]
            corrupt = sum(a["corrupt_pieces"] - b["corrupt_pieces"] for a, b in zip(after, before, strict=True))
            from_upstream = sum(
                a["bytes_from_upstream"] - b["bytes_from_upstream"] for a, b in zip(after, before, strict=True)
            )
            assert corrupt >= 1
            # The blob came from the upstream (once, by the new source) and was shared between the children.
            assert BLOB_SIZE <= from_upstream <= 2 * BLOB_SIZE
            for child in children:
                assert check_store(child.data_dir).get(digest) == BLOB_SIZE
            outcomes.append({"run": run, "corrupt_pieces_caught": corrupt, "from_upstream_mib": from_upstream / MiB,
                             "seconds": round(elapsed, 2)})
    report("corrupt source, nobody else holds the blob", runs=total_runs, blob_mib=BLOB_SIZE // MiB,
           outcomes=outcomes)
