"""The supernode's real JobBoard, with the test playing its hosts: `report` is what a host's progress post does
(`JobBoard.record`), and a dry-run job for a host in `dry_answers` is answered at once with what it holds. It also
keeps every put it was given, to show that a job put again is one job. The end-to-end tests run real hosts.
"""

from __future__ import annotations

from supernode.job_board import JobBoard
from supernode.jobs import BlobProgress, Job, JobProgress, JobState


class PlayedBoard(JobBoard):
    def __init__(self) -> None:
        super().__init__()
        # Every put, in order, the same job put twice included.
        self.puts: list[str] = []
        self._hosts: set[str] = set()
        self.dry_answers: dict[str, tuple[BlobProgress, ...]] = {}

    def put(self, job: Job) -> bool:
        self.puts.append(job.job_id)
        self._hosts.add(job.host_id)
        changed = super().put(job)
        if job.dry_run and job.host_id in self.dry_answers:
            self.record(job.host_id, [JobProgress(job.job_id, job.host_id, "succeeded",
                                                  blobs=self.dry_answers[job.host_id])])
        return changed

    @property
    def jobs(self) -> dict[str, Job]:
        """The jobs listed for their hosts now (what their long-polls would get)."""
        return {job.job_id: job for host in self._hosts for job in self.jobs_for(host).jobs}

    def job_of(self, host_id: str) -> Job | None:
        found = [job for job in self.jobs_for(host_id).jobs if not job.dry_run]
        return found[-1] if found else None

    def report(self, host_id: str, state: JobState, done: int = 0, total: int = 0, *, upstream: int = 0,
               peers: int = 0, error: str = "", blobs: tuple[BlobProgress, ...] = ()) -> str:
        """The host's progress post for its job; returns the job id."""
        job = self.job_of(host_id)
        assert job is not None, f"no job for {host_id}: {sorted(self.jobs)}"
        final = state in ("succeeded", "failed", "stopped")
        self.record(host_id, [JobProgress(job.job_id, host_id, state, bytes_done=done, bytes_total=total,
                                          from_upstream=upstream, from_peers=peers, error=error, blobs=blobs,
                                          started_at=1.0, finished_at=2.0 if final else 0.0)])
        return job.job_id
