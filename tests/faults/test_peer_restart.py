"""A peer daemon restarted in the middle of a download, by a crash (SIGKILL) or a clean stop (SIGTERM).

What must hold: complete blobs survive and are served from disk afterwards; a partial blob resumes from the
pieces it can prove (each is hashed again against the digest its state recorded) or is discarded; nothing
corrupt is ever served, also when the partial file was damaged while the daemon was down.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from tests.faults.helpers import (
    BLOB_SIZE,
    MiB,
    check_store,
    partial_files,
    pull_blob,
    push_blob,
    random_blob,
    report,
    runs,
    wait_for,
)
from tests.support.cluster import DamselflyCluster, PeerProcess
from tests.support.faulty_relay import FaultyRelay
from tests.support.registry import RegistryServer

REPO = "faults/restart"
PIECE = 4 * MiB
SMALL = 8 * MiB


def _claimed_pieces(data_dir: Path, digest: str) -> dict[int, str]:
    """The pieces the partial blob's state file says are verified (index -> sha256)."""
    state = data_dir / "partial" / (digest.replace(":", "-") + ".state")
    if not state.exists():
        return {}
    return {int(k): v for k, v in json.loads(state.read_text())["pieces"].items()}


def _fetched_at_least(peer: PeerProcess, total: int) -> bool:
    return int(peer.stats()["bytes_from_upstream"]) >= total


def _flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))


def test_peer_restarted_mid_download(tmp_path: Path, registry: RegistryServer, relay: FaultyRelay) -> None:
    relay.rate = 16 * MiB
    total_runs = runs(4)
    outcomes: list[dict[str, object]] = []
    with DamselflyCluster(tmp_path / "cluster", upstream_url=relay.url, peers_count=2) as cluster:
        peer, other = cluster.peers
        for run in range(total_runs):
            crash = run % 2 == 0
            damage = run % 4 == 0  # on every other crash, damage a verified piece while the daemon is down
            done_data = random_blob(SMALL, seed=5000 + run)
            done_digest = push_blob(registry.url, REPO, done_data)
            data = random_blob(BLOB_SIZE, seed=5100 + run)
            digest = push_blob(registry.url, REPO, data)
            assert pull_blob(peer.mirror_url, REPO, done_digest).ok_for(done_digest, SMALL)

            start_bytes = peer.stats()["bytes_from_upstream"]
            # On a crash the client is mid-body; before a clean stop it has gone away (uvicorn would otherwise
            # let its response finish first), so the download is left running with nobody waiting for it.
            with ThreadPoolExecutor(1) as pool:
                puller = pool.submit(pull_blob, peer.mirror_url, REPO, digest, keep_body=True,
                                     stop_after=None if crash else 4 * MiB)
                wait_for(partial(_fetched_at_least, peer, start_bytes + 16 * MiB), 20.0, "the download half-way")
                if crash:
                    peer.process.kill_hard()
                else:
                    peer.process.stop()
                cut = puller.result(30.0)
            assert cut.length < BLOB_SIZE and cut.body == data[: cut.length]

            claimed = _claimed_pieces(peer.data_dir, digest)
            if not crash:
                # A clean stop discards the partial blob (or leaves a state that proves its pieces).
                assert digest.replace(":", "-") + ".data" not in partial_files(peer.data_dir) or claimed
            if damage:
                assert claimed, "a crashed download left no state to resume from"
                _flip_byte(peer.data_dir / "partial" / (digest.replace(":", "-") + ".data"), min(claimed) * PIECE)
            assert digest not in check_store(peer.data_dir)
            peer.restart()

            # The complete blob survived and is served from disk: not one byte of it from the upstream.
            relay.reset_records()
            assert check_store(peer.data_dir).get(done_digest) == SMALL
            assert pull_blob(peer.mirror_url, REPO, done_digest).ok_for(done_digest, SMALL)
            assert relay.body_bytes(path_contains=done_digest) == 0

            # The interrupted blob: resumed from the pieces that still hash right, the rest fetched again.
            resumed = pull_blob(peer.mirror_url, REPO, digest)
            assert resumed.ok_for(digest, BLOB_SIZE), f"run {run}: {resumed.status} {resumed.error}"
            refetched = relay.body_bytes(path_contains=digest)
            trusted = len(claimed) - (1 if damage else 0)
            assert refetched == BLOB_SIZE - trusted * PIECE, (refetched, claimed, damage)
            # Another host now takes the blob from this one: what the restarted peer serves is right.
            other_before = other.stats()
            assert pull_blob(other.mirror_url, REPO, digest).ok_for(digest, BLOB_SIZE)
            assert other.stats()["corrupt_pieces"] == other_before["corrupt_pieces"]
            for host in cluster.peers:
                assert check_store(host.data_dir).get(digest) == BLOB_SIZE
            outcomes.append({"run": run, "stop": "SIGKILL" if crash else "SIGTERM", "damaged_piece": damage,
                             "pieces_resumed": trusted, "refetched_mib": refetched / MiB})
    report("peer restarted mid-download", runs=total_runs, blob_mib=BLOB_SIZE // MiB, outcomes=outcomes)
