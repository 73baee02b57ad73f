"""A member that lies: it joins a swarm first, becomes its feeder and publishes piece digests of garbage
(tests/support/rogue_peer.py).

What must hold: no store ever holds a wrong blob; the swarm recovers (it is reset, the liar blocked from it and
struck, its digests withdrawn), so the next request through any host gets the right bytes; a host that falls back
to the upstream checks the upstream's bytes against the blob's digest, not against the liar's digests; a Range
request is never answered with the liar's bytes; a host found lying in several swarms is quarantined until an
operator clears it.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import httpx

from supernode import routes
from tests.faults.helpers import MiB, check_store, pull_blob, push_blob, random_blob
from tests.support.cluster import DamselflyCluster
from tests.support.registry import RegistryServer
from tests.support.rogue_peer import RoguePeer

REPO = "faults/rogue"
SIZE = 12 * MiB  # three 4 MiB pieces


def _suspects(rogue: RoguePeer) -> dict[str, dict[str, object]]:
    # Any registered host may read the listings with its own credential: the rogue reads its own record.
    answer = rogue.call("GET", routes.LIST_SUSPECTS.url())
    assert answer.status_code == 200, answer.text
    return {s["peer_id"]: s for s in answer.json()["suspects"]}


def _swarm_blob(tmp_path: Path, registry: RegistryServer, seed: int) -> tuple[bytes, str]:
    data = random_blob(SIZE, seed)
    return data, push_blob(registry.url, REPO, data)


def test_a_lying_feeder_is_caught_the_swarm_recovers_and_the_next_pull_is_right(
    tmp_path: Path, registry: RegistryServer
) -> None:
    token = secrets.token_urlsafe(16)
    cluster_at = DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=2, join_token=token)
    with cluster_at as cluster, RoguePeer(cluster.supernode_url, token) as rogue:
        first, second = cluster.peers
        _, digest = _swarm_blob(tmp_path, registry, seed=71)
        assert rogue.claim(digest, SIZE).status_code in (200, 204)

        # The first pull through an honest host streams pieces that match the liar's digests until the blob
        # fails its own digest: that response is cut off, never completed as a 200 of the wrong blob.
        cut = pull_blob(first.mirror_url, REPO, digest)
        assert not cut.ok_for(digest, SIZE)
        assert cut.length < SIZE or cut.error, "a wrong blob was served whole"
        requests_before = rogue.requests
        assert requests_before > 0, "the honest host never asked the rogue: this test proves nothing"

        # The swarm was reset: the next pull, on the same host and on another, gets the right bytes.
        assert pull_blob(first.mirror_url, REPO, digest).ok_for(digest, SIZE)
        assert pull_blob(second.mirror_url, REPO, digest).ok_for(digest, SIZE)
        assert rogue.requests == requests_before, "a host was sent to the blocked liar again"
        for peer in cluster.peers:
            assert check_store(peer.data_dir).get(digest) == SIZE
        assert first.stats()["swarm_restarts"] >= 1

        # Flagged to operators: the liar, struck once, for this blob, found by the honest host.
        suspect = _suspects(rogue)[rogue.peer_id]
        assert suspect["quarantined"] is False
        strikes = suspect["strikes"]
        assert isinstance(strikes, list) and [s["digest"] for s in strikes] == [digest]
        assert "did not assemble" in first.log_path.read_text() or "lied" in first.log_path.read_text()


def test_a_host_falling_back_to_the_upstream_checks_it_against_the_blob_not_the_liars_digests(
    tmp_path: Path, registry: RegistryServer
) -> None:
    """The liar publishes digests but serves nothing: the honest host gives the swarm up and goes to the
    upstream, whose right bytes differ from the published digests. The swarm's digests lose, not the upstream."""
    token = secrets.token_urlsafe(16)
    cluster_at = DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=1, join_token=token)
    with cluster_at as cluster, RoguePeer(cluster.supernode_url, token, withhold=True) as rogue:
        _, digest = _swarm_blob(tmp_path, registry, seed=72)
        rogue.claim(digest, SIZE)
        result = pull_blob(cluster.peers[0].mirror_url, REPO, digest, timeout=90.0)
        # Nothing of the liar's was ever served: the very first pull is right.
        assert result.ok_for(digest, SIZE), result
        # A parent answering "not here" at once is paused, then dropped: asked a few times, not in a hot loop.
        assert 0 < rogue.requests <= 30, rogue.requests
        assert check_store(cluster.peers[0].data_dir).get(digest) == SIZE
        assert rogue.peer_id in _suspects(rogue)


def test_a_range_request_is_never_answered_with_the_liars_bytes(tmp_path: Path, registry: RegistryServer) -> None:
    token = secrets.token_urlsafe(16)
    cluster_at = DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=1, join_token=token)
    with cluster_at as cluster, RoguePeer(cluster.supernode_url, token) as rogue:
        data, digest = _swarm_blob(tmp_path, registry, seed=73)
        rogue.claim(digest, SIZE)
        start, end = 5 * MiB, 5 * MiB + 64 * 1024 - 1
        with httpx.Client(timeout=90.0, trust_env=False) as client:
            answer = client.get(
                f"{cluster.peers[0].mirror_url}/v2/{REPO}/blobs/{digest}", headers={"Range": f"bytes={start}-{end}"}
            )
        # Either the right bytes (once the blob passed its digest) or an error: never the liar's.
        garbage = rogue.garbage[digest][1][start - 4 * MiB : end - 4 * MiB + 1]
        assert answer.content != garbage
        if answer.status_code == 206:
            assert hashlib.sha256(answer.content).digest() == hashlib.sha256(data[start : end + 1]).digest()
        else:
            assert answer.status_code >= 400 and answer.json()["errors"], answer.text
        assert pull_blob(cluster.peers[0].mirror_url, REPO, digest).ok_for(digest, SIZE)


def test_a_host_caught_lying_in_three_swarms_is_quarantined_until_an_operator_clears_it(
    tmp_path: Path, registry: RegistryServer
) -> None:
    token, operator = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    with DamselflyCluster(
        tmp_path / "cluster", upstream_url=registry.url, peers_count=1, join_token=token, operator_token=operator
    ) as cluster, RoguePeer(cluster.supernode_url, token) as rogue:
        peer = cluster.peers[0]
        for seed in (81, 82, 83):
            _, digest = _swarm_blob(tmp_path, registry, seed)
            rogue.claim(digest, SIZE)
            pull_blob(peer.mirror_url, REPO, digest)  # cut off: the liar's pieces matched its own digests
            assert pull_blob(peer.mirror_url, REPO, digest).ok_for(digest, SIZE)
        assert _suspects(rogue)[rogue.peer_id]["quarantined"] is True

        # Quarantined: it joins a new swarm first, but is not made its feeder, and nobody is sent to it.
        _, digest = _swarm_blob(tmp_path, registry, seed=84)
        rogue.claim(digest, SIZE)
        requests_before = rogue.requests
        result = pull_blob(peer.mirror_url, REPO, digest, timeout=30.0)
        assert result.ok_for(digest, SIZE) and result.seconds < 15.0, result
        assert rogue.requests == requests_before

        # Only an operator clears it: a host's credential is not enough.
        suspect_url = cluster.supernode_url + routes.CLEAR_SUSPECT.url(peer_id=rogue.peer_id)
        assert rogue.call("DELETE", routes.CLEAR_SUSPECT.url(peer_id=rogue.peer_id)).status_code == 403
        cleared = httpx.delete(suspect_url, headers={"Authorization": f"Bearer {operator}"}, trust_env=False)
        assert cleared.status_code == 204, cleared.text
        assert rogue.peer_id not in _suspects(rogue)
