"""An in-memory stand-in for the supernode's job board, for the manager's unit tests only (the end-to-end tests run
the real supernode and hosts). It keeps what a board keeps (the jobs held, each one's last progress, forgotten at
cancel) and every put it was given, and the test plays the hosts: `report` is what a host's progress post does.
"""

from __future__ import annotations

from dataclasses import replace

from supernode.jobs import BlobProgress, Job, JobProgress, JobState


class BoardDouble:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.reports: dict[str, JobProgress] = {}
        # Every put, in order, the same job put twice included.
        self.puts: list[str] = []
        self.cancels: list[str] = []
        # A dry-run job put for one of these hosts is answered at once with these blobs (what the host holds).
        self.dry_answers: dict[str, tuple[BlobProgress, ...]] = {}

    def put(self, job: Job) -> bool:
        self.puts.append(job.job_id)
        self.jobs[job.job_id] = job
        if job.dry_run and job.host_id in self.dry_answers:
            self.reports[job.job_id] = JobProgress(job.job_id, job.host_id, "succeeded",
                                                   blobs=self.dry_answers[job.host_id])
        return True

    def cancel(self, job_id: str) -> bool:
        self.cancels.append(job_id)
        self.reports.pop(job_id, None)
        return self.jobs.pop(job_id, None) is not None

    def progress(self) -> list[JobProgress]:
        return [self.reports.get(job_id, JobProgress(job_id, job.host_id, "pending"))
                for job_id, job in self.jobs.items()]

    def job_of(self, host_id: str) -> Job | None:
        found = [job for job in self.jobs.values() if job.host_id == host_id and not job.dry_run]
        return found[-1] if found else None

    def report(self, host_id: str, state: JobState, done: int = 0, total: int = 0, *, upstream: int = 0,
               peers: int = 0, error: str = "", blobs: tuple[BlobProgress, ...] = ()) -> str:
        """The host's progress post for its job; returns the job id."""
        job = self.job_of(host_id)
        assert job is not None, f"no job for {host_id}: {sorted(self.jobs)}"
        base = JobProgress(job.job_id, host_id, state)
        self.reports[job.job_id] = replace(base, bytes_done=done, bytes_total=total, from_upstream=upstream,
                                           from_peers=peers, error=error, blobs=blobs, started_at=1.0,
                                           finished_at=2.0 if state in ("succeeded", "failed") else 0.0)
        return job.job_id
