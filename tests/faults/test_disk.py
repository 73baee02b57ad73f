"""Disk limits with the real daemon: the quota flags, least-recently-used eviction, readers protected, and a
full disk (quota or ENOSPC) answered with a clear OCI error that leaves nothing half-written behind.

In-process checks of the same logic are in test_quota.py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.helpers import (
    MiB,
    PullResult,
    check_store,
    oci_error_code,
    partial_files,
    pull_blob,
    push_blob,
    random_blob,
    report,
    supernode_swarms,
    wait_for,
)
from tests.support.cluster import DamselflyCluster, PeerProcess
from tests.support.identities import OPERATOR_TOKEN
from tests.support.registry import RegistryServer

REPO = "faults/disk"
SIZE = 12 * MiB
GRACE = 2.1  # a blob used within the last 2 s is never evicted (peer/quota.py)


def _blobs(registry: RegistryServer, count: int, seed: int, size: int = SIZE) -> list[str]:
    return [push_blob(registry.url, REPO, random_blob(size, seed=seed + i)) for i in range(count)]


def _pull(peer: PeerProcess, digest: str, size: int = SIZE) -> None:
    result = pull_blob(peer.mirror_url, REPO, digest)
    assert result.ok_for(digest, size), f"{digest}: {result.status} {result.error} {result.body[:300]!r}"


def _hold_open(stack: contextlib.ExitStack, peer: PeerProcess, digest: str) -> None:
    """A client that has started reading the blob and pauses: the daemon keeps the file open for it.

    Its receive buffer is kept small: loopback's may grow to 32 MiB here, which would take the whole blob in and
    let the daemon finish (and close the file) while the client still "reads".
    """
    transport = httpx.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)])
    client = stack.enter_context(httpx.Client(transport=transport, timeout=60.0, trust_env=False))
    response = stack.enter_context(client.stream("GET", f"{peer.mirror_url}/v2/{REPO}/blobs/{digest}"))
    assert response.status_code == 200
    chunks = response.iter_raw(64 * 1024)
    next(chunks)
    # Keep the iterator alive as long as the stack: a generator dropped now would close the response.
    stack.callback(list.clear, [chunks])


def _members(cluster: DamselflyCluster, digest: str) -> int:
    return sum(s.members for s in supernode_swarms(cluster.supernode_url, cluster.operator_token) if s.digest == digest)


def test_quota_evicts_least_recently_used_blobs_and_withdraws_them_from_the_swarm(
    tmp_path: Path, registry: RegistryServer
) -> None:
    started = time.monotonic()
    a, b, c, d, e = _blobs(registry, 5, seed=8000)
    quota = ["--disk-quota", "64MiB", "--disk-high-watermark", "0.9", "--disk-low-watermark", "0.7"]
    with DamselflyCluster(
        tmp_path / "cluster", upstream_url=registry.url, peers_count=0, operator_token=OPERATOR_TOKEN
    ) as cluster:
        peer = cluster.add_peer(0, extra_args=quota)
        for digest in (a, b, c, d):
            _pull(peer, digest)
            time.sleep(0.05)  # distinct last-use times
        time.sleep(GRACE)
        _pull(peer, a)  # read again: now the most recently used
        time.sleep(GRACE)
        # 48 MiB held + 12 MiB new > 57.6 MiB (0.9 of 64): evict least recently used down to 44.8 MiB (0.7):
        # b, then c; a was read again and d is newer than both.
        _pull(peer, e)
        held = check_store(peer.data_dir)
        assert set(held) == {a, d, e}
        log = peer.log_path.read_text()
        assert log.index(f"evicted {b}") < log.index(f"evicted {c}")
        # The supernode no longer sends anyone to this host for what it dropped.
        wait_for(lambda: _members(cluster, b) == 0 and _members(cluster, c) == 0, 10.0, "withdrawal from swarms")
        assert _members(cluster, a) == 1
        # An evicted blob is simply fetched again when asked for.
        _pull(peer, b)
    report("disk quota: LRU eviction", quota_mib=64, high=0.9, low=0.7, blob_mib=SIZE // MiB,
           evicted_in_order=["b", "c"], kept=["a (read again)", "d", "e (new)"],
           seconds=round(time.monotonic() - started, 2))


def test_quota_spares_blobs_being_read_and_refuses_with_507_when_nothing_can_go(
    tmp_path: Path, registry: RegistryServer
) -> None:
    a, b, c, d, e = _blobs(registry, 5, seed=8100)
    quota = ["--disk-quota", "40MiB", "--disk-high-watermark", "0.9", "--disk-low-watermark", "0.8"]
    with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=0) as cluster:
        peer = cluster.add_peer(0, extra_args=quota)
        for digest in (a, b, c):
            _pull(peer, digest)
        with contextlib.ExitStack() as readers:
            # a and b are the least recently used, but clients are reading them.
            _hold_open(readers, peer, a)
            _hold_open(readers, peer, b)
            time.sleep(GRACE)
            _pull(peer, d)  # 36 + 12 > 36: c goes although it is newer than a and b
            assert set(check_store(peer.data_dir)) == {a, b, d}
            _hold_open(readers, peer, d)
            time.sleep(GRACE)
            # Every blob held is being read: nothing can go, and 36 + 12 MiB does not fit in 40.
            refused: PullResult = pull_blob(peer.mirror_url, REPO, e)
            assert refused.status == 507, refused
            assert oci_error_code(refused.body) == "UNAVAILABLE"
            assert b"disk quota" in refused.body
            assert e not in check_store(peer.data_dir)
            assert partial_files(peer.data_dir) == []
        # The readers are gone: the next try makes room and succeeds.
        time.sleep(GRACE)
        _pull(peer, e)
        assert e in check_store(peer.data_dir)
    report("disk quota: readers spared, 507 when nothing is evictable", quota_mib=40, blob_mib=SIZE // MiB,
           refused_status=refused.status, refused_code=oci_error_code(refused.body))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs to be a peer's data directory: a disk that really fills up (ENOSPC). Needs root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mountpoint = tmp_path / "cluster" / "peer0"
    mountpoint.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mountpoint)], check=True, timeout=30)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False, timeout=30)


def test_a_full_disk_gives_507_and_nothing_half_written(
    tmp_path: Path, registry: RegistryServer, small_disk: Path
) -> None:
    too_big = push_blob(registry.url, REPO, random_blob(32 * MiB, seed=8200))
    first, second, third = _blobs(registry, 3, seed=8300, size=8 * MiB)
    with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=0) as cluster:
        peer = cluster.add_peer(0)  # no quota: only the 24 MiB disk limits it
        assert peer.data_dir == small_disk
        refused = pull_blob(peer.mirror_url, REPO, too_big)
        assert refused.status == 507, refused
        assert oci_error_code(refused.body) == "UNAVAILABLE"
        assert refused.length < 4096  # an error document, not a cut-off blob
        assert check_store(peer.data_dir) == {}
        assert partial_files(peer.data_dir) == []
        # What fits still works, and when the disk fills up, the least recently used idle blob makes room.
        _pull(peer, first, 8 * MiB)
        _pull(peer, second, 8 * MiB)
        time.sleep(GRACE)
        _pull(peer, third, 8 * MiB)  # 8 + 8 + 8 MiB and the daemon's own files do not fit in 24 MiB
        assert set(check_store(peer.data_dir)) == {second, third}
        assert f"evicted {first}" in peer.log_path.read_text()
    report("full disk (24 MiB tmpfs, ENOSPC)", refused_status=refused.status, refused_code=oci_error_code(refused.body),
           evicted_to_make_room=1)
