"""The store's disk quota in-process: watermarks, least-recently-used order, readers protected, full disks.

The daemon-level checks (flags, HTTP 507 to a client, swarm withdrawal) are in test_disk.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.digest import Digest
from core.pieces import PieceLayout
from peer.quota import DiskQuota, InsufficientStorage, QuotaPolicy, parse_size
from peer.store import BlobStore

NOW = 1_000_000.0


def digest_of(name: str) -> Digest:
    return Digest.parse("sha256:" + hashlib.sha256(name.encode()).hexdigest())


def put_blob(store: BlobStore, name: str, size: int, used_at: float) -> Digest:
    """A complete blob of `size` bytes last used at `used_at` (the store never re-verifies what it holds)."""
    digest = digest_of(name)
    path = store.complete_path(digest)
    path.write_bytes(b"x" * size)
    os.utime(path, (used_at, used_at))
    return digest


def held(store: BlobStore) -> set[Digest]:
    return {f.digest for f in store.quota.files() if f.complete}


@pytest.fixture
def evicted() -> list[Digest]:
    return []


def make_store(root: Path, evicted: list[Digest], limit: int, high: float = 0.9, low: float = 0.8) -> BlobStore:
    store = BlobStore(root, QuotaPolicy(limit, high, low, grace=2.0))
    store.quota.clock = lambda: NOW
    store.on_evict = evicted.append
    return store


def test_parse_size() -> None:
    assert parse_size("10GiB") == 10 * 1024**3
    assert parse_size("500MB") == 500 * 10**6
    assert parse_size("1.5k") == 1500
    assert parse_size("4096") == 4096
    assert parse_size("2 MiB") == 2 * 1024**2
    assert parse_size("0") == parse_size("") == 0
    for bad in ("ten", "-1G", "1GiBs", "5 apples"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_watermarks_are_checked() -> None:
    for high, low in ((0.8, 0.9), (0.9, 0.9), (1.1, 0.5), (0.9, 0.0)):
        with pytest.raises(ValueError):
            QuotaPolicy(1000, high, low)


async def test_below_the_high_watermark_nothing_is_evicted(tmp_path: Path, evicted: list[Digest]) -> None:
    store = make_store(tmp_path, evicted, limit=1000)
    for i in range(6):
        put_blob(store, f"b{i}", 100, used_at=NOW - 100 + i)
    partial = await store.open_partial(digest_of("new"), PieceLayout(300, 100))  # 600 + 300 = 900: at the mark
    partial.close()
    assert evicted == []
    assert len(held(store)) == 6
    assert partial.data_path.stat().st_size == 300


async def test_eviction_is_least_recently_used_first_down_to_the_low_watermark(
    tmp_path: Path, evicted: list[Digest]
) -> None:
    store = make_store(tmp_path, evicted, limit=1000, high=0.9, low=0.8)
    # Written in order b0..b7, then b0 and b3 read again: least recently used is b1, b2, b4, ...
    blobs = [put_blob(store, f"b{i}", 100, used_at=NOW - 100 + i) for i in range(8)]
    store.touch(blobs[0])
    store.touch(blobs[3])
    os.utime(store.complete_path(blobs[0]), (NOW - 10, NOW - 10))
    os.utime(store.complete_path(blobs[3]), (NOW - 9, NOW - 9))
    # 800 held + 200 new = 1000 > 900 (high): evict until 800 (low) -> two blobs go.
    partial = await store.open_partial(digest_of("new"), PieceLayout(200, 100))
    partial.close()
    assert evicted == [blobs[1], blobs[2]]
    assert held(store) == set(blobs) - {blobs[1], blobs[2]}
    assert store.quota.usage() == 800
    # The next one goes further down the order, skipping the two that were read again: 600 + 400 > 900, so
    # b4 and b5 go (down to 400 + 400 = 800).
    partial.discard()
    partial = await store.open_partial(digest_of("bigger"), PieceLayout(400, 100))
    partial.close()
    assert evicted == [blobs[1], blobs[2], blobs[4], blobs[5]]
    assert held(store) == {blobs[0], blobs[3], blobs[6], blobs[7]}


async def test_blobs_being_read_or_just_used_are_not_evicted(tmp_path: Path, evicted: list[Digest]) -> None:
    store = make_store(tmp_path, evicted, limit=1000)
    oldest = put_blob(store, "oldest", 300, used_at=NOW - 100)
    recent = put_blob(store, "recent", 300, used_at=NOW - 1)  # within the 2 s grace
    idle = put_blob(store, "idle", 300, used_at=NOW - 50)
    # A reader holds the least recently used blob open (as a client's response stream would).
    with store.complete_path(oldest).open("rb"):
        partial = await store.open_partial(digest_of("new"), PieceLayout(200, 100))
    partial.close()
    assert evicted == [idle]
    assert held(store) == {oldest, recent}


async def test_nothing_evictable_refuses_with_507_and_leaves_nothing_behind(
    tmp_path: Path, evicted: list[Digest]
) -> None:
    store = make_store(tmp_path, evicted, limit=1000)
    a = put_blob(store, "a", 450, used_at=NOW - 100)
    b = put_blob(store, "b", 450, used_at=NOW - 100)
    with store.complete_path(a).open("rb"), store.complete_path(b).open("rb"), \
            pytest.raises(InsufficientStorage) as refused:
        await store.open_partial(digest_of("new"), PieceLayout(200, 100))
    assert refused.value.status == 507
    assert b'"errors"' in refused.value.render()
    assert evicted == []
    assert sorted(os.listdir(store.partial_dir)) == []
    # Larger than the whole quota: refused at once, whatever could be evicted.
    with pytest.raises(InsufficientStorage):
        await store.open_partial(digest_of("huge"), PieceLayout(1001, 100))
    assert held(store) == {a, b}


async def test_stale_partials_go_too_but_never_a_download_in_progress(tmp_path: Path, evicted: list[Digest]) -> None:
    store = make_store(tmp_path, evicted, limit=1000)
    active = await store.open_partial(digest_of("active"), PieceLayout(300, 100))
    stale = await store.open_partial(digest_of("stale"), PieceLayout(300, 100))
    await stale.save_state()
    stale.close()  # what a crash leaves: a .data and a .state that nobody has open
    for partial in (active, stale):
        os.utime(partial.data_path, (NOW - 100, NOW - 100))
    blob = put_blob(store, "blob", 200, used_at=NOW - 50)
    partial = await store.open_partial(digest_of("new"), PieceLayout(300, 100))
    partial.close()
    active.close()
    # 800 + 300 > 900: the stale partial was the least recently written, so it went first, its state with it;
    # then 500 + 300 <= 800 and the complete blob stays.
    assert not stale.data_path.exists() and not stale.state_path.exists()
    assert active.data_path.exists()
    assert held(store) == {blob}
    assert evicted == []  # only complete blobs are withdrawn from swarms


async def test_a_resumed_partial_is_not_counted_twice(tmp_path: Path, evicted: list[Digest]) -> None:
    store = make_store(tmp_path, evicted, limit=1000)
    put_blob(store, "old", 500, used_at=NOW - 100)
    first = await store.open_partial(digest_of("big"), PieceLayout(400, 100))
    first.close()
    os.utime(first.data_path, (NOW - 100, NOW - 100))
    # The same blob again (a restart resuming it): 500 + 400 = 900, no eviction, and its own file is kept.
    again = await store.open_partial(digest_of("big"), PieceLayout(400, 100))
    again.close()
    assert evicted == []
    assert again.data_path.exists()


def test_without_proc_only_the_grace_protects(tmp_path: Path) -> None:
    blobs, partial = tmp_path / "blobs", tmp_path / "partial"
    for path in (blobs / "sha256", partial):
        path.mkdir(parents=True)
    quota = DiskQuota(blobs, partial, QuotaPolicy(1000), clock=lambda: NOW, opened=lambda: None)
    name = hashlib.sha256(b"x").hexdigest()
    (blobs / "sha256" / name).write_bytes(b"x" * 10)
    os.utime(blobs / "sha256" / name, (NOW - 1, NOW - 1))
    assert quota.evictable() == []
    os.utime(blobs / "sha256" / name, (NOW - 3, NOW - 3))
    assert [f.path.name for f in quota.evictable()] == [name]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs: a disk that really fills up (ENOSPC). Needs root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)], check=True, timeout=30)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False, timeout=30)


async def test_a_full_disk_evicts_idle_blobs_then_refuses_with_507(tiny_disk: Path, evicted: list[Digest]) -> None:
    MiB = 1 << 20
    store = make_store(tiny_disk, evicted, limit=0)  # no quota: only the disk's own size
    idle = put_blob(store, "idle", 5 * MiB, used_at=NOW - 100)
    # 5 + 6 MiB do not fit in 8: the disk says ENOSPC, the idle blob is evicted, and the download starts.
    first = await store.open_partial(digest_of("first"), PieceLayout(6 * MiB, MiB))
    assert evicted == [idle]
    assert first.data_path.stat().st_blocks * 512 >= 6 * MiB  # really allocated, not a sparse promise
    # The disk is full again and nothing can go (the download holds its file open): a clear refusal.
    with pytest.raises(InsufficientStorage) as refused:
        await store.open_partial(digest_of("second"), PieceLayout(4 * MiB, MiB))
    first.close()
    assert refused.value.status == 507
    assert sorted(os.listdir(store.partial_dir)) == [first.data_path.name]
    assert held(store) == set()


def test_quota_flags_and_config_keys(tmp_path: Path) -> None:
    from damselfly.cli import build_parser
    from damselfly.settings import SettingsError, peer_configs

    base = ["peer", "--data-dir", str(tmp_path), "--upstream", "http://127.0.0.1:5000"]
    args = build_parser().parse_args([*base, "--disk-quota", "10GiB", "--disk-high-watermark", "0.95"])
    peer, _ = peer_configs(args, {})
    assert (peer.disk_quota, peer.disk_high_watermark, peer.disk_low_watermark) == (10 * 1024**3, 0.95, 0.8)
    # From the [peer] section of the config file, flags winning over it.
    conf = {"peer": {"disk_quota": "500MB", "disk_high_watermark": 0.85, "disk_low_watermark": 0.5}}
    peer, _ = peer_configs(build_parser().parse_args(base), conf)
    assert (peer.disk_quota, peer.disk_high_watermark, peer.disk_low_watermark) == (500 * 10**6, 0.85, 0.5)
    peer, _ = peer_configs(build_parser().parse_args([*base, "--disk-quota", "1TB"]), conf)
    assert peer.disk_quota == 10**12
    # No quota by default.
    peer, _ = peer_configs(build_parser().parse_args(base), {})
    assert peer.disk_quota == 0
    for bad in (["--disk-quota", "lots"], ["--disk-high-watermark", "0.5", "--disk-low-watermark", "0.6"],
                ["--disk-low-watermark", "0"], ["--disk-high-watermark", "1.5"]):
        with pytest.raises(SettingsError):
            peer_configs(build_parser().parse_args([*base, *bad]), {})


async def test_a_data_directory_behind_a_symlink_still_sees_its_readers(tmp_path: Path, evicted: list[Digest]) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    store = make_store(tmp_path / "link", evicted, limit=1000)
    read = put_blob(store, "read", 450, used_at=NOW - 100)
    idle = put_blob(store, "idle", 450, used_at=NOW - 50)
    with store.complete_path(read).open("rb"):  # opened through the symlink; the kernel names the real path
        partial = await store.open_partial(digest_of("new"), PieceLayout(200, 100))
    partial.close()
    assert evicted == [idle]
