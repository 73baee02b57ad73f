"""The store's disk budget: a quota with high and low watermarks, and least-recently-used eviction.

What is counted: the bytes of every complete blob, plus the whole size of every partial blob (a download
preallocates its file when it starts, so it can never run out of disk half-way, and its space is spoken for
from the first byte).

When a download is about to start (`admit`): if the blobs held plus the new one would pass the high watermark,
complete blobs nobody is reading are evicted, least recently used first, until the total is at or below the
low watermark or nothing more can go. If the new blob still does not fit under the quota itself, it is refused
with `InsufficientStorage` (OCI error, HTTP 507) before the client has been sent a byte. When the disk itself
is full (ENOSPC while preallocating, quota or not) the same eviction frees room and the start is tried once
more (`relieve`).

"Nobody is reading" is asked of the kernel: a blob open in this process (a client's response stream, the upload
server's sendfile, a download's readers: the proxy and the peer are one process) is listed in /proc/self/fd and
is never evicted. A blob used in the last `grace` seconds is kept too, which covers a reader that has found the
blob but not yet opened it. "Recently used" is the file's mtime, which `BlobStore.touch` sets on every read, so
the order survives restarts. Stale partial blobs (left by a crash, with no download holding them open) are
evicted like complete ones, by the time of their last write.

This module does blocking file-system work; the store calls it in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import errors
from core.digest import Digest
from core.errors import RegistryError

# Errors that mean "no room", from the disk (ENOSPC) or from a file-system quota (EDQUOT).
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


class InsufficientStorage(RegistryError):
    """No room for a blob in the store: rendered as OCI error JSON with HTTP 507 by the proxy."""

    def __init__(self, detail: str) -> None:
        super().__init__(errors.INSUFFICIENT_STORAGE, detail=detail)


def parse_size(text: str) -> int:
    """Bytes from `10GiB`, `500MB`, `1.5T`, `4096`; `0` or empty means no quota. KiB/MiB/... are powers of 1024,
    kB/MB/... and bare prefixes powers of 1000, as `df -H` and disk vendors count."""
    if not text or text.strip() == "0":
        return 0
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (examples: 10GiB, 500MB, 2T)")
    number, prefix, unit = float(match.group(1)), match.group(2).lower(), (match.group(3) or "").lower()
    base = 1024 if unit == "ib" else 1000
    return int(number * base ** _POWERS[prefix])


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    # The most bytes the store may hold, 0 for no quota (eviction then happens only when the disk is full).
    limit: int = 0
    # Fractions of `limit`: starting a blob that would pass `high` evicts down to `low`.
    high: float = 0.9
    low: float = 0.8
    # A blob used this recently (seconds) is never evicted, even if no file descriptor shows it open.
    grace: float = 2.0

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError("the disk quota cannot be negative")
        if not 0.0 < self.low < self.high <= 1.0:
            raise ValueError(f"watermarks must satisfy 0 < low < high <= 1, got low={self.low} high={self.high}")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One blob's bytes on disk: a complete blob, or a partial one (its .data file)."""

    path: Path
    digest: Digest
    size: int
    last_used: float
    complete: bool


def open_paths() -> set[str] | None:
    """Every file this process has open, as the kernel names it; None where /proc cannot tell us."""
    fds = Path("/proc/self/fd")
    try:
        entries = list(fds.iterdir())
    except OSError:
        return None
    found = set()
    for entry in entries:
        # A descriptor closed since the listing is simply gone.
        with contextlib.suppress(OSError):
            found.add(str(entry.readlink()))
    return found


class DiskQuota:
    def __init__(
        self,
        blobs_dir: Path,
        partial_dir: Path,
        policy: QuotaPolicy,
        *,
        clock: Callable[[], float] = time.time,
        opened: Callable[[], set[str] | None] = open_paths,
    ) -> None:
        # Resolved, so that paths compare equal to what the kernel reports for open files (a data directory
        # reached through a symlink would otherwise never look open).
        self.blobs_dir = blobs_dir.resolve()
        self.partial_dir = partial_dir.resolve()
        self.policy = policy
        self.clock = clock
        self.opened = opened
        self.evictions = 0

    # --- what is stored ----------------------------------------------------------------------------

    def files(self) -> list[StoredFile]:
        found = []
        for directory in (self.blobs_dir / "sha256", self.blobs_dir / "sha512"):
            for entry in _scan(directory):
                # Names that are not digests (and files gone since the scan) are not ours to count or evict.
                with contextlib.suppress(ValueError, FileNotFoundError):
                    digest = Digest.parse(f"{directory.name}:{entry.name}")
                    found.append(StoredFile(Path(entry.path), digest, *_size_and_mtime(entry), complete=True))
        for entry in _scan(self.partial_dir):
            if not entry.name.endswith(".data"):
                continue
            algorithm, _, hex_ = entry.name.removesuffix(".data").partition("-")
            with contextlib.suppress(ValueError, FileNotFoundError):
                digest = Digest.parse(f"{algorithm}:{hex_}")
                found.append(StoredFile(Path(entry.path), digest, *_size_and_mtime(entry), complete=False))
        return found

    def usage(self) -> int:
        return sum(f.size for f in self.files())

    def evictable(self, keep: Path | None = None) -> list[StoredFile]:
        """Files nobody is reading, least recently used first."""
        opened = self.opened()
        now = self.clock()
        keep = keep.resolve() if keep is not None else None
        candidates = []
        for stored in self.files():
            if keep is not None and stored.path == keep:
                continue
            if opened is not None and str(stored.path) in opened:
                continue
            if now - stored.last_used < self.policy.grace:
                continue
            candidates.append(stored)
        return sorted(candidates, key=lambda f: (f.last_used, str(f.path)))

    # --- making room -------------------------------------------------------------------------------

    def admit(self, size: int, keep: Path) -> list[Digest]:
        """Make room under the quota for a blob of `size` bytes about to be written at `keep`.

        Returns the digests of the complete blobs evicted for it; raises InsufficientStorage if it cannot fit.
        """
        limit = self.policy.limit
        if not limit:
            return []
        if size > limit:
            raise InsufficientStorage(f"a blob of {size} bytes is larger than the disk quota of {limit} bytes")
        keep = keep.resolve()
        files = self.files()
        # A partial file already there for this blob (a resumed download) is part of what it needs, not extra.
        usage = sum(f.size for f in files if f.path != keep)
        evicted: list[Digest] = []
        if usage + size > self.policy.high * limit:
            target = self.policy.low * limit
            for stored in self.evictable(keep):
                if usage + size <= target:
                    break
                if self._evict(stored):
                    usage -= stored.size
                    if stored.complete:
                        evicted.append(stored.digest)
        if usage + size > limit:
            raise InsufficientStorage(
                f"the store holds {usage} bytes that are in use; a blob of {size} bytes does not fit the disk quota "
                f"of {limit} bytes"
            )
        return evicted

    def relieve(self, needed: int, keep: Path) -> list[Digest]:
        """The disk is full: evict idle files, least recently used first, until `needed` bytes are free."""
        evicted: list[Digest] = []
        for stored in self.evictable(keep):
            if _free_bytes(self.partial_dir) >= needed:
                break
            if self._evict(stored) and stored.complete:
                evicted.append(stored.digest)
        return evicted

    def _evict(self, stored: StoredFile) -> bool:
        try:
            stored.path.unlink()
        except FileNotFoundError:
            return False
        if not stored.complete:
            stored.path.with_suffix(".state").unlink(missing_ok=True)
        self.evictions += 1
        return True


def is_no_space(exc: OSError) -> bool:
    return exc.errno in NO_SPACE


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return [e for e in entries if e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _size_and_mtime(entry: os.DirEntry[str]) -> tuple[int, float]:
    stat = entry.stat(follow_symlinks=False)
    return stat.st_size, stat.st_mtime


def _free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize
