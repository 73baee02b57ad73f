"""A `file` job: the file fetched through the peer as the files endpoint fetches it for `damselfly get`
(proxy/files.py: a configured origin only, keyed by its digest or its file key, swarmed, verified), then written to
the job's path atomically: a temporary file in the same directory, fsynced, renamed, the directory fsynced."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from core.digest import Digest, InvalidDigest
from core.errors import RegistryError
from core.file_key import digest_file_key, file_key
from peer.blob_handle import BlobHandle, StoredBlob
from peer.download import DownloadFailed
from peer.service import PeerService
from supernode.jobs import Job
from upstream.origin import FileOrigins, FileSource, OriginClient, OriginError, OriginRefused

from .config import AgentConfig
from .failure import JobFailed
from .progress import JobTracker


async def run_file_job(job: Job, tracker: JobTracker, peer: PeerService, config: AgentConfig) -> None:
    """Returns once the file is at its path (or, dry, its size reported); raises JobFailed with the reason."""
    spec = job.file
    assert spec is not None  # Job.parse holds kind and spec together
    try:
        content = Digest.parse(spec.digest) if spec.digest else None
        origin = FileOrigins(config.file_origins).origin_for(spec.url)
    except InvalidDigest as exc:
        raise JobFailed(f"{exc}: expected sha256:<64 hex digits>") from exc
    except OriginRefused as exc:
        raise JobFailed(str(exc)) from exc
    client = OriginClient(origin, peer.config.upstream)
    try:
        await _fetch_to(spec.path, job, tracker, peer, client, content, config)
    except (OriginError, DownloadFailed, OSError) as exc:
        raise JobFailed(str(exc)) from exc
    except RegistryError as exc:  # the disk quota (507)
        raise JobFailed(str(exc.detail or exc.message)) from exc
    finally:
        await client.aclose()


def check_destination(path: Path, allowed: tuple[str, ...]) -> None:
    """`path` lies below one of the host's `--file-job-dirs` once every symbolic link of its directory is resolved
    (a link inside an allowed directory must not lead out of it); raises JobFailed saying why not."""
    if not allowed:
        raise JobFailed("file jobs are not allowed on this host: its peer has no --file-job-dirs")
    if path.name in ("", ".", ".."):
        raise JobFailed(f"{str(path)[:300]} does not name a file")
    real = Path(os.path.realpath(path.parent)) / path.name
    for directory in allowed:
        root = Path(os.path.realpath(directory))
        if real.parent == root or root in real.parent.parents:
            return
    raise JobFailed(f"{str(path)[:300]} is not below this host's --file-job-dirs ({', '.join(allowed)[:300]})")


async def _fetch_to(
    path: str, job: Job, tracker: JobTracker, peer: PeerService, client: OriginClient, content: Digest | None,
    config: AgentConfig,
) -> None:
    spec = job.file
    assert spec is not None
    directory = Path(path).parent
    if not await asyncio.to_thread(directory.is_dir):
        raise JobFailed(f"the directory {str(directory)[:300]} of the file's path does not exist on this host")
    await asyncio.to_thread(check_destination, Path(path), config.file_dirs)
    origin_file = await client.probe(spec.url, {})
    size = origin_file.size
    if content is not None:
        key, confirm = digest_file_key(content), None
    else:
        key = file_key(spec.url, size, origin_file.etag, origin_file.last_modified, client.origin.ignore_query)

        async def confirm() -> None:
            await client.confirm(origin_file, {})

    blob = tracker.blob(str(key), size)
    if peer.complete_size(key) == size:
        blob.held = size
    if job.dry_run:
        return
    blob.state = "running"
    handle: BlobHandle | None = None
    started_here = peer.download_of(key) is None
    if size:
        handle = await peer.open_blob(
            key, size, FileSource(client, origin_file, {}), verify=content is not None, content=content,
            confirm=confirm if content is None else None, rate=float(job.rate),
        )
        if not isinstance(handle, StoredBlob):
            blob.download = handle.download
    try:
        computed = await _write_atomically(Path(path), handle, size, content)
    except asyncio.CancelledError:
        if started_here and blob.download is not None:
            # The job is cancelled: what it started stops too, rather than go on at the job's rate.
            peer.stop_download(blob.download)
        raise
    finally:
        if isinstance(handle, StoredBlob):
            handle.close()
    tracker.digest = computed
    blob.held, blob.state = size, "succeeded"


async def _write_atomically(path: Path, handle: BlobHandle | None, size: int, content: Digest | None) -> str:
    """The file's bytes into a temporary file beside `path`, checked against `content`, fsynced and renamed over
    it; its `sha256:HEX`. A failure half-way leaves `path` as it was and no temporary file behind."""
    sha256 = hashlib.sha256()
    # The peer has verified a file asked for by digest already; checked here again on the bytes written.
    check = content.hasher() if content is not None and content.algorithm != "sha256" else None
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            if handle is not None and size:
                async for chunk in handle.read_range(0, size - 1):
                    sha256.update(chunk)
                    if check is not None:
                        check.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            out.flush()
            await asyncio.to_thread(os.fsync, out.fileno())
        computed = f"sha256:{sha256.hexdigest()}"
        if content is not None and (check.hexdigest() if check is not None else sha256.hexdigest()) != content.hex:
            raise JobFailed(f"the file does not match {content}")
        await asyncio.to_thread(_land, Path(temporary), path)
    except BaseException:
        _discard(Path(temporary))
        raise
    return computed


def _land(temporary: Path, path: Path) -> None:
    """Renamed over `path`, the directory fsynced: after a crash the path holds the old file or the new, whole."""
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _discard(temporary: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
