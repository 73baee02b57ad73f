"""The upstream misbehaving: connections reset mid-blob, 5xx and 429 answers, or an upstream that never recovers.

A relay in front of the real registry injects the faults (tests/support/faulty_relay.py). What must hold:
retries with backoff, interrupted bodies resumed with `Range` from the first piece not yet verified, and in
the end the client gets the blob, or a clear OCI error: never a wrong byte.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.helpers import (
    MiB,
    check_store,
    oci_error_code,
    partial_files,
    pull_blob,
    push_blob,
    random_blob,
    report,
    runs,
)
from tests.support.cluster import DamselflyCluster
from tests.support.faulty_relay import Fault, FaultyRelay
from tests.support.registry import RegistryServer

REPO = "faults/upstream"
PIECE = 4 * MiB
SIZE = 24 * MiB
_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


def _blob_gets(relay: FaultyRelay, digest: str) -> list[tuple[int, int, str]]:
    """(start, end, fault) of every blob GET the relay saw for `digest`."""
    found = []
    for record in relay.records():
        if record.method == "GET" and record.path.endswith(digest):
            match = _RANGE.match(record.range or "")
            assert match is not None, f"a blob GET without a byte range: {record}"
            found.append((int(match.group(1)), int(match.group(2)), record.fault))
    return found


@pytest.fixture
def cluster(tmp_path: Path, relay: FaultyRelay) -> Iterator[DamselflyCluster]:
    with DamselflyCluster(tmp_path / "cluster", upstream_url=relay.url, peers_count=1) as started:
        yield started


def test_connections_reset_mid_blob_are_resumed_with_range(
    registry: RegistryServer, relay: FaultyRelay, cluster: DamselflyCluster
) -> None:
    peer = cluster.peers[0]
    total_runs = runs(3)
    outcomes: list[dict[str, object]] = []
    for run in range(total_runs):
        data = random_blob(SIZE, seed=4000 + run)
        digest = push_blob(registry.url, REPO, data)
        relay.reset_records()
        # The first three answers are cut 6 MiB into their body (in the middle of a piece), with a TCP reset.
        relay.add_fault(Fault("reset", method="GET", path=digest, after_bytes=6 * MiB, times=3))
        before = peer.stats()
        result = pull_blob(peer.mirror_url, REPO, digest)
        assert result.ok_for(digest, SIZE), f"run {run}: {result.status} {result.error}"
        gets = _blob_gets(relay, digest)
        assert [fault for _, _, fault in gets] == ["reset:6291456"] * 3 + [""]
        starts = [start for start, _, _ in gets]
        # Each retry resumes at the first piece not yet verified (pieces 0 and 1 arrived before the first cut),
        # not from the beginning: 0, 4 MiB, 8 MiB, 12 MiB.
        assert starts == [0, PIECE, 2 * PIECE, 3 * PIECE]
        assert all(end == SIZE - 1 for _, end, _ in gets)
        # Bytes the upstream sent: the blob plus the cut-off tails of unfinished pieces, nowhere near a restart.
        sent = relay.body_bytes(path_contains=digest)
        assert SIZE <= sent <= SIZE + 3 * PIECE
        retries = peer.stats()["upstream_retries"] - before["upstream_retries"]
        assert retries == 3
        assert check_store(peer.data_dir).get(digest) == SIZE
        outcomes.append({"run": run, "resets": 3, "upstream_requests": len(gets), "range_starts_mib":
                         [s // MiB for s in starts], "upstream_mib": round(sent / MiB, 1),
                         "seconds": round(result.seconds, 2)})
    report("upstream resets mid-blob", runs=total_runs, blob_mib=SIZE // MiB, outcomes=outcomes)


def test_every_connection_cut_still_completes_by_resuming(
    registry: RegistryServer, relay: FaultyRelay, cluster: DamselflyCluster
) -> None:
    """An upstream that resets every answer 5 MiB into its body: each attempt verifies one more piece, and the
    blob completes by resuming, one piece per attempt."""
    peer = cluster.peers[0]
    data = random_blob(SIZE, seed=4100)
    digest = push_blob(registry.url, REPO, data)
    fault = relay.add_fault(Fault("reset", method="GET", path=digest, after_bytes=5 * MiB, times=-1))
    result = pull_blob(peer.mirror_url, REPO, digest)
    relay.clear_faults()
    assert result.ok_for(digest, SIZE), f"{result.status} {result.error}"
    assert fault.times == -1
    gets = _blob_gets(relay, digest)
    assert [start for start, _, _ in gets] == [i * PIECE for i in range(SIZE // PIECE)]
    assert check_store(peer.data_dir).get(digest) == SIZE
    report("upstream resets every answer after 5 MiB", blob_mib=SIZE // MiB, upstream_requests=len(gets),
           seconds=round(result.seconds, 2))


def test_5xx_and_429_are_retried_with_backoff(
    registry: RegistryServer, relay: FaultyRelay, cluster: DamselflyCluster
) -> None:
    peer = cluster.peers[0]
    total_runs = runs(2)
    outcomes: list[dict[str, object]] = []
    for run in range(total_runs):
        data = random_blob(SIZE, seed=4200 + run)
        digest = push_blob(registry.url, REPO, data)
        relay.reset_records()
        # The access check (HEAD) meets a 503 and a 500; the blob GET two 503s and two 429s.
        relay.add_fault(Fault("status", method="HEAD", path=digest, status=503, times=1))
        relay.add_fault(Fault("status", method="HEAD", path=digest, status=500, times=1))
        relay.add_fault(Fault("status", method="GET", path=digest, status=503, times=2))
        relay.add_fault(Fault("status", method="GET", path=digest, status=429, times=2,
                              headers={"Retry-After": "1"}))
        result = pull_blob(peer.mirror_url, REPO, digest)
        assert result.ok_for(digest, SIZE), f"run {run}: {result.status} {result.error}"
        records = [r for r in relay.records() if r.path.endswith(digest)]
        heads = [r for r in records if r.method == "HEAD"]
        gets = [r for r in records if r.method == "GET"]
        assert [r.status for r in heads] == [503, 500, 200]
        assert [r.status for r in gets] == [503, 503, 429, 429, 206]
        # Backoff: no attempt follows the one before in less than the base delay (0.5 s), and the waits grow.
        gaps = [b.started - a.started for a, b in itertools.pairwise(gets)]
        assert all(gap >= 0.45 for gap in gaps), gaps
        assert gaps[2] > gaps[0] * 1.5, gaps
        assert check_store(peer.data_dir).get(digest) == SIZE
        outcomes.append({"run": run, "head_statuses": [r.status for r in heads],
                         "get_statuses": [r.status for r in gets], "get_gaps_s": [round(g, 2) for g in gaps],
                         "seconds": round(result.seconds, 2)})
    report("upstream 5xx and 429", runs=total_runs, blob_mib=SIZE // MiB, outcomes=outcomes)


def test_an_upstream_that_keeps_failing_gives_a_clear_oci_error(
    registry: RegistryServer, relay: FaultyRelay, cluster: DamselflyCluster
) -> None:
    peer = cluster.peers[0]
    data = random_blob(SIZE, seed=4300)
    digest = push_blob(registry.url, REPO, data)
    outcomes: dict[str, object] = {}

    # 1. The access check never gets an answer but 503: the client is told the upstream is unavailable.
    relay.add_fault(Fault("status", method="HEAD", path=digest, status=503, times=-1))
    started = time.monotonic()
    head_down = pull_blob(peer.mirror_url, REPO, digest)
    outcomes["head_503_forever"] = {"status": head_down.status, "code": oci_error_code(head_down.body),
                                    "seconds": round(time.monotonic() - started, 2)}
    assert head_down.status in (502, 503), head_down
    assert oci_error_code(head_down.body) in ("UNAVAILABLE", "UPSTREAM_FAILED")
    relay.clear_faults()

    # 2. The blob itself is refused with 503 forever: an OCI error before any byte, nothing stored.
    relay.add_fault(Fault("status", method="GET", path=digest, status=503, times=-1))
    relay.reset_records()
    blob_down = pull_blob(peer.mirror_url, REPO, digest)
    attempts = len([r for r in relay.records() if r.method == "GET" and r.path.endswith(digest)])
    outcomes["get_503_forever"] = {"status": blob_down.status, "code": oci_error_code(blob_down.body),
                                   "upstream_attempts": attempts, "seconds": round(blob_down.seconds, 2)}
    relay.clear_faults()
    assert blob_down.status in (502, 503), blob_down
    assert oci_error_code(blob_down.body) in ("UNAVAILABLE", "UPSTREAM_FAILED")
    assert blob_down.length == len(blob_down.body) < 4096  # an error document, not a cut-off blob
    assert digest not in check_store(peer.data_dir)
    assert partial_files(peer.data_dir) == []

    # 3. Once the upstream is back, the same blob comes through whole.
    healthy = pull_blob(peer.mirror_url, REPO, digest)
    assert healthy.ok_for(digest, SIZE)
    report("upstream that never recovers", blob_mib=SIZE // MiB, outcomes=outcomes)


def test_the_mirror_reaches_only_the_configured_upstream(relay: FaultyRelay, cluster: DamselflyCluster) -> None:
    """A registry host in the path or in `ns` that is not configured is refused without any request going out."""
    peer = cluster.peers[0]
    digest = "sha256:" + "a" * 64
    relay.reset_records()
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        for url in (
            f"{peer.mirror_url}/v2/evil.example.com/x/blobs/{digest}",
            f"{peer.mirror_url}/v2/x/blobs/{digest}?ns=evil.example.com",
            f"{peer.mirror_url}/v2/127.0.0.2:5000/x/manifests/latest",
        ):
            response = client.get(url)
            assert response.status_code == 403, (url, response.status_code)
            assert oci_error_code(response.content) == "DENIED"
    assert relay.records() == []
