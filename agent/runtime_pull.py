"""An image job in mode `runtime`: the host's container runtime pulls the image, through this host's mirror (what
the seed's platform did with `docker pull` on every node), so the image is ready to run, not only cached.

The runtime is told nothing of Damselfly but, for docker, the mirror's name (agent/runtime_commands.py says which
runtime and which commands): it must already pull through the mirror (`damselfly configure docker | containerd |
podman` writes that), so the layers come through the swarm and land in the peer's store as any pull's do.
Progress is read off the peer while the runtime pulls: a blob is done once stored whole, its bytes from peers and
from the upstream those of its download.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence

from core.digest import Digest
from peer.service import PeerService

from .failure import JobFailed
from .progress import JobTracker
from .runtime_commands import Step

# How often the peer's store is looked at while the runtime pulls.
OBSERVE_EVERY = 0.5
# The runtime's last lines kept for the error of a failed pull.
KEPT_LINES = 20


async def pull_into_runtime(
    steps: Sequence[Step], tracker: JobTracker, peer: PeerService, blobs: Sequence[Digest]
) -> None:
    """Runs the runtime's steps in turn, each to its end, the job's blobs observed meanwhile; raises JobFailed with
    the runtime's last line if one fails. Cancelled (the job stopped), the running one is killed."""
    for step in steps:
        await _run(step, tracker, peer, blobs)
    for digest in blobs:
        # The runtime has the image: also a blob it held before and did not fetch again is done for this host.
        tracker.blobs[str(digest)].state = "succeeded"


async def _run(step: Step, tracker: JobTracker, peer: PeerService, blobs: Sequence[Digest]) -> None:
    args = step.args
    try:
        process = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except OSError as exc:
        raise JobFailed(f"cannot run {args[0]!r}: {exc.strerror or exc}") from exc
    lines: deque[str] = deque(maxlen=KEPT_LINES)
    assert process.stdout is not None
    reader = asyncio.create_task(_keep_lines(process.stdout, lines))
    try:
        while process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), OBSERVE_EVERY)
            _observe(tracker, peer, blobs)
        await reader
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        reader.cancel()
        raise
    if process.returncode != 0:
        last = next((line for line in reversed(lines) if line.strip()), "")
        raise JobFailed(f"{step.what[:100]} exited {process.returncode}: {last[:300]}")


async def _keep_lines(stream: asyncio.StreamReader, lines: deque[str]) -> None:
    while line := await stream.readline():
        lines.append(line.decode(errors="replace").rstrip())


def _observe(tracker: JobTracker, peer: PeerService, blobs: Sequence[Digest]) -> None:
    """Blobs the runtime's pull has started or finished; a blob's bytes move with its download (the regular
    progress posts carry them), a state change is posted at once."""
    changed = False
    for digest in blobs:
        blob = tracker.blobs[str(digest)]
        if blob.state == "succeeded":
            continue
        download = peer.downloads.get(str(digest))
        if download is not None and blob.download is not download:
            blob.download, blob.state, changed = download, "running", True
        if peer.complete_size(digest) == blob.size:
            blob.state, changed = "succeeded", True
    if changed:
        tracker.on_change()
