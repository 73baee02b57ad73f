"""An `image` job in mode `cache`: every config and layer blob of the image lands in this host's store, through the
peer's P2P path (`PeerService.open_blob`, as the proxy's blob route asks it): from peers where they have it, else the
upstream, verified either way. Blobs already stored count as done at once; a dry run moves nothing."""

from __future__ import annotations

import asyncio
import base64
import logging

from core.digest import Digest
from core.errors import RegistryError
from peer.blob_handle import StoredBlob
from peer.download import DownloadFailed
from peer.service import PeerService
from supernode.jobs import Job, RegistryCredential
from upstream.blob import BlobSource
from upstream.client import RegistryClient, UpstreamError
from upstream.clients import Upstreams

from .config import AgentConfig
from .failure import JobFailed
from .manifests import Descriptor, ManifestError, fetch_manifest, host_platform, wanted
from .progress import BlobTracker, JobTracker, one_line
from .reference import BadReference, resolve_reference
from .runtime_commands import find_runtime, pull_steps
from .runtime_pull import pull_into_runtime

log = logging.getLogger(__name__)
# Blobs of one job: its progress lists each, and one report must stay well within the supernode's 1 MiB a body.
MAX_JOB_BLOBS = 1024


async def run_image_job(
    job: Job, tracker: JobTracker, peer: PeerService, upstreams: Upstreams, config: AgentConfig
) -> None:
    """Returns once every blob is stored (or, dry, reported); raises JobFailed with the reason otherwise."""
    assert job.image is not None  # Job.parse holds kind and spec together
    try:
        image = resolve_reference(job.image.reference, config.registries, config.default_registry)
        client = upstreams.client(image.registry)
        auth = _basic(job.credential)
        platforms = job.image.platforms
        if job.mode == "runtime":
            platforms = runtime_platforms(platforms)
        blobs = await _image_blobs(client, image.repository, image.reference, auth, platforms, tracker)
    except (BadReference, ManifestError, UpstreamError) as exc:
        raise JobFailed(str(exc)) from exc
    except RegistryError as exc:  # a malformed name or reference, refused before it is sent anywhere
        raise JobFailed(f"image reference {job.image.reference[:200]!r}: {exc.message}") from exc
    for blob in blobs:
        held = peer.complete_size(blob.digest) == blob.size
        tracker_blob = tracker.blob(str(blob.digest), blob.size)
        if held or blob.size == 0:
            tracker_blob.held, tracker_blob.state = blob.size, "succeeded"
    if job.dry_run:
        return
    if job.mode == "runtime":
        if job.credential is not None:
            # The runtime pulls with what it is configured with; a task's secret is not handed to it (yet).
            raise JobFailed("runtime mode pulls with the runtime's own credentials: a task's secret is not used")
        steps = pull_steps(find_runtime(config.runtime_pull), image, config.mirror_host)
        await pull_into_runtime(steps, tracker, peer, [b.digest for b in blobs])
        return
    # A job with a rate of its own fetches one blob at a time, each download held to the rate: the job's whole take.
    slots = asyncio.Semaphore(1 if job.rate else max(1, config.parallel_blobs))

    async def fetch(blob: Descriptor) -> None:
        async with slots:
            source = BlobSource(client, image.repository, str(blob.digest), auth)
            await _fetch_blob(peer, tracker.blob(str(blob.digest), blob.size), blob.digest, source, job.rate)

    pending = [blob for blob in blobs if tracker.blob(str(blob.digest), blob.size).state != "succeeded"]
    async with asyncio.TaskGroup() as group:
        for blob in pending:
            group.create_task(fetch(blob))
    failed = [b for b in tracker.blobs.values() if b.state == "failed"]
    if failed:
        first = failed[0]
        raise JobFailed(f"{len(failed)} of {len(tracker.blobs)} blobs failed; {first.digest[:19]}: {first.error}")


def runtime_platforms(asked: tuple[str, ...]) -> tuple[str, ...]:
    """A runtime pulls the host's own platform of an index, whatever the task named: the job's blobs are that
    platform's, and a task that names platforms without the host's is refused rather than reported done."""
    own = host_platform()
    if asked and not any(own == p or own.startswith(p + "/") or p.startswith(own + "/") for p in asked):
        raise JobFailed(f"mode runtime: this host's runtime pulls {own}, the task names {', '.join(asked)[:200]}")
    return (own,)


async def _image_blobs(
    client: RegistryClient, repository: str, reference: str, auth: str | None, platforms: tuple[str, ...],
    tracker: JobTracker,
) -> list[Descriptor]:
    """The image's config and layer blobs, each once, from the manifest or from the index's chosen manifests."""
    top = await fetch_manifest(client, repository, reference, auth)
    tracker.digest = str(top.digest)
    manifests = [top]
    if top.is_index:
        manifests = [
            await fetch_manifest(client, repository, str(child.digest), auth) for child in wanted(top, platforms)
        ]
        if any(manifest.is_index for manifest in manifests):
            raise ManifestError(f"the index of {repository} lists an index: nested indexes are not supported")
    blobs: dict[Digest, Descriptor] = {}
    for manifest in manifests:
        for descriptor in manifest.descriptors:
            blobs.setdefault(descriptor.digest, descriptor)
    if len(blobs) > MAX_JOB_BLOBS:
        raise ManifestError(f"the image has {len(blobs)} blobs, more than the {MAX_JOB_BLOBS} a job takes")
    return list(blobs.values())


async def _fetch_blob(peer: PeerService, blob: BlobTracker, digest: Digest, source: BlobSource, rate: int) -> None:
    """One blob into the store; a failure is the blob's (the job goes on with the others, then fails)."""
    blob.state = "running"
    try:
        started_here = peer.download_of(digest) is None
        handle = await peer.open_blob(digest, blob.size, source, rate=float(rate))
        if isinstance(handle, StoredBlob):
            handle.close()
        else:
            blob.download = handle.download
            try:
                await handle.verified()
            except asyncio.CancelledError:
                if started_here:
                    # The job is cancelled: what it started stops too, rather than go on at the job's rate.
                    peer.stop_download(handle.download)
                raise
    except (DownloadFailed, UpstreamError, OSError) as exc:
        blob.state, blob.error = "failed", one_line(str(exc))
        return
    except RegistryError as exc:  # the disk quota (507)
        blob.state, blob.error = "failed", one_line(str(exc.detail or exc.message))
        return
    blob.held, blob.state = blob.size, "succeeded"


def _basic(credential: RegistryCredential | None) -> str | None:
    """The job's own credential as a client's Basic `Authorization` (exchanged for a token where the registry asks);
    None: the registry's configured credentials (upstream/client.py)."""
    if credential is None:
        return None
    raw = f"{credential.username}:{credential.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()

