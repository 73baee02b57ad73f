"""The progress of one job on this host as it runs, read off the downloads it waits on whenever it is posted."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from peer.download import BlobDownload
from supernode.jobs import FINAL_STATES, BlobProgress, Job, JobProgress, JobState

# What the platform is told of a failure: one line, bounded.
MAX_ERROR = 500


def one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_ERROR]


@dataclass(slots=True)
class BlobTracker:
    """One blob (or a file job's one file) of a job: done at once when the store held it, else its download's."""

    digest: str
    size: int = 0
    state: JobState = "pending"
    error: str = ""
    held: int = 0
    download: BlobDownload | None = None

    def snapshot(self) -> BlobProgress:
        done, from_upstream, from_peers = self.held, 0, 0
        download = self.download
        if download is not None:
            landing, layout, partial = download.landing, download.layout, download.partial
            from_upstream, from_peers = landing.bytes_from_upstream, landing.bytes_from_peers
            done = max(done, sum(layout.length(i) for i in range(layout.count) if partial.has(i)))
        if self.state == "succeeded":
            done = self.size
        return BlobProgress(
            self.digest, self.size, min(done, self.size), from_upstream, from_peers, self.state, self.error
        )


@dataclass(slots=True)
class JobTracker:
    """A job's state and blobs; `on_change` is told of every change of state (to post it at once)."""

    job: Job
    on_change: Callable[[], None] = lambda: None
    state: JobState = "pending"
    error: str = ""
    digest: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    blobs: dict[str, BlobTracker] = field(default_factory=dict)
    # The job left the host's list: its run is being cancelled, and ends `stopped`.
    cancelled: bool = False

    @property
    def final_state(self) -> bool:
        return self.state in FINAL_STATES

    def start(self) -> None:
        self.started_at = time.time()
        self.set_state("running")

    def finish(self, state: JobState, error: str = "") -> None:
        self.error = one_line(error)
        self.finished_at = time.time()
        self.set_state(state)

    def set_state(self, state: JobState) -> None:
        self.state = state
        self.on_change()

    def blob(self, digest: str, size: int) -> BlobTracker:
        tracker = self.blobs.get(digest)
        if tracker is None:
            tracker = self.blobs[digest] = BlobTracker(digest, size)
        return tracker

    def snapshot(self) -> JobProgress:
        blobs = tuple(blob.snapshot() for blob in self.blobs.values())
        return JobProgress(
            job_id=self.job.job_id,
            host_id=self.job.host_id,
            state=self.state,
            bytes_done=sum(b.bytes_done for b in blobs),
            bytes_total=sum(b.size for b in blobs),
            from_upstream=sum(b.from_upstream for b in blobs),
            from_peers=sum(b.from_peers for b in blobs),
            error=self.error,
            started_at=self.started_at,
            finished_at=self.finished_at,
            blobs=blobs,
            digest=self.digest,
        )
