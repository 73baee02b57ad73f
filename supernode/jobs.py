"""The job channel's wire types: work the platform gives one host, and what the host says of it.

A distribution task of the platform (manager/) becomes one **job** per targeted host. The platform hands each job to
the supernode the host is registered with; the host's daemon long-polls the supernode for its jobs (the connection
it already opens: no inbound connection to a host is needed), runs them, and posts its **job progress** back; the
platform reads that progress from the supernode. The supernode only carries jobs and progress: it neither runs nor
understands them, and it imports nothing of the platform.

The channel (routes in supernode/routes.py):
- host side (the peer's credential, like a heartbeat):
  `GET  /api/v1/peers/{peer_id}/jobs?since=V&wait=S` -> `JobList`: the jobs this host should be running now. The
  answer is held up to `wait` seconds until the list's version differs from `since`. A job that leaves the list is
  cancelled: the host stops it within seconds.
  `POST /api/v1/peers/{peer_id}/job-progress` with `ProgressReport` -> 204.
- platform side (the operators' token, like `GET /api/v1/peers`):
  `PUT    /api/v1/jobs/{job_id}` with a `Job` (idempotent: the same job put twice is one job),
  `DELETE /api/v1/jobs/{job_id}` (cancel; also once the platform has stored a finished job's last progress),
  `GET    /api/v1/jobs` -> `ProgressList`: the last progress of every job the supernode holds.

A job is kept until the platform forgets it (supernode/job_board.py has the exact rules): `DELETE` of a running job
takes it off the host's list but keeps its progress, so that the platform reads the host's `stopped`; `DELETE` of
a job whose last progress is final forgets it. A job stays on its host's list after it finished, until the
platform deletes it: a host does not run again a job it has finished. A job is one host's: put again for another
host it is refused (409), and a host's progress for another host's job is refused (403); progress for a job the
supernode does not hold is dropped. Bounds: 1024 jobs a host, 100,000 in all: beyond them a put is answered 429.

With several supernode processes (supernode/shards.py), a host's jobs live with one of them: the one at
`owner_index(urls, host_id)` of the supernode URLs every host is given. The host long-polls its jobs and posts its
progress there (`SupernodeShards.jobs`), and the platform puts and deletes that host's jobs there.

A job that the supernode forgets (it restarted) is put again by the platform, which keeps every task in its database;
the host runs a job it is given again idempotently (blobs already stored count as done), so nothing is lost and a
re-put job does no work twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .api import BadRequest

JobKind = Literal["image", "file"]
JobMode = Literal["cache", "runtime"]
JobState = Literal["pending", "running", "succeeded", "failed", "stopped"]
JOB_KINDS: tuple[JobKind, ...] = ("image", "file")
JOB_MODES: tuple[JobMode, ...] = ("cache", "runtime")
JOB_STATES: tuple[JobState, ...] = ("pending", "running", "succeeded", "failed", "stopped")
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "stopped"})

# Bounds that keep one hostile or broken body small.
MAX_ID = 128
MAX_TEXT = 4096
MAX_BLOBS = 4096


def _text(body: dict[str, Any], key: str, *, limit: int = MAX_TEXT, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise BadRequest(f"'{key}' must be a printable string of up to {limit} characters")
    return value


def _number(body: dict[str, Any], key: str, default: int = 0) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**63:
        raise BadRequest(f"'{key}' must be a whole number >= 0")
    return value


def _seconds(body: dict[str, Any], key: str, default: float = 0.0) -> float:
    value = body.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 2**40:
        raise BadRequest(f"'{key}' must be a number of seconds >= 0")
    return float(value)


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"'{key}' must be true or false")
    return value


def _choice(body: dict[str, Any], key: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = body.get(key, default)
    if value not in choices:
        raise BadRequest(f"'{key}' must be one of {', '.join(choices)}")
    return str(value)


def _object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"'{key}' must be an object")
    return value


@dataclass(frozen=True, slots=True)
class RegistryCredential:
    """A task's registry credential (the platform's named secret), carried to the host for this job only.

    `repr` hides the password: a job may be logged, its secret never."""

    username: str
    password: str = field(repr=False)

    @classmethod
    def parse(cls, body: dict[str, Any]) -> RegistryCredential:
        return cls(_text(body, "username", limit=255), _text(body, "password", limit=MAX_TEXT))

    def to_json(self) -> dict[str, Any]:
        return {"username": self.username, "password": self.password}


@dataclass(frozen=True, slots=True)
class ImageSpec:
    # As a client names it: `registry.example.com/team/app:1.4`, `team/app@sha256:...`, or a name without a
    # registry host (the host's default upstream).
    reference: str
    # `os/arch[/variant]` to take from an index; empty: every platform the index lists.
    platforms: tuple[str, ...] = ()

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ImageSpec:
        platforms = body.get("platforms", [])
        if not isinstance(platforms, list) or not all(isinstance(p, str) and 0 < len(p) <= 64 for p in platforms):
            raise BadRequest("'image.platforms' must be a list of os/arch strings")
        return cls(_text(body, "reference", limit=1024), tuple(platforms))

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "platforms": list(self.platforms)}


@dataclass(frozen=True, slots=True)
class FileSpec:
    url: str
    # Where the file lands on the host (absolute); written atomically.
    path: str
    # `sha256:HEX` or "" (then the host reports the digest it computed).
    digest: str = ""

    @classmethod
    def parse(cls, body: dict[str, Any]) -> FileSpec:
        path = _text(body, "path", limit=MAX_TEXT)
        if not path.startswith("/"):
            raise BadRequest("'file.path' must be an absolute path")
        return cls(_text(body, "url", limit=MAX_TEXT), path, _text(body, "digest", limit=80, default=""))

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "path": self.path, "digest": self.digest}


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    task_id: str
    host_id: str
    kind: JobKind
    mode: JobMode = "cache"
    image: ImageSpec | None = None
    file: FileSpec | None = None
    # Bytes per second this job may take on this host (0: no limit of its own).
    rate: int = 0
    # Wall-clock (epoch) seconds after which the host gives the job up as failed (0: none).
    deadline: float = 0.0
    credential: RegistryCredential | None = None
    # Move nothing: the host only works out what it lacks and reports it as progress (each blob's `size`, and
    # `bytes_done` = what it already holds), then the job is `succeeded`. The platform's dry run of a task.
    dry_run: bool = False

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Job:
        kind = _choice(body, "kind", JOB_KINDS)
        image = _object(body, "image")
        file = _object(body, "file")
        if (kind == "image") != (image is not None) or (kind == "file") != (file is not None):
            raise BadRequest("a job has 'image' or 'file', as its kind says")
        credential = _object(body, "credential")
        return cls(
            job_id=_text(body, "job_id", limit=MAX_ID),
            task_id=_text(body, "task_id", limit=MAX_ID),
            host_id=_text(body, "host_id", limit=MAX_ID),
            kind=kind,  # type: ignore[arg-type]
            mode=_choice(body, "mode", JOB_MODES, "cache"),  # type: ignore[arg-type]
            image=ImageSpec.parse(image) if image is not None else None,
            file=FileSpec.parse(file) if file is not None else None,
            rate=_number(body, "rate"),
            deadline=_seconds(body, "deadline"),
            credential=RegistryCredential.parse(credential) if credential is not None else None,
            dry_run=_flag(body, "dry_run"),
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "job_id": self.job_id, "task_id": self.task_id, "host_id": self.host_id, "kind": self.kind,
            "mode": self.mode, "rate": self.rate, "deadline": self.deadline, "dry_run": self.dry_run,
        }
        if self.image is not None:
            body["image"] = self.image.to_json()
        if self.file is not None:
            body["file"] = self.file.to_json()
        if self.credential is not None:
            body["credential"] = self.credential.to_json()
        return body


@dataclass(frozen=True, slots=True)
class JobList:
    """A host's jobs now; `version` changes whenever the list does."""

    version: int
    jobs: tuple[Job, ...] = ()

    @classmethod
    def parse(cls, body: dict[str, Any]) -> JobList:
        jobs = body.get("jobs", [])
        if not isinstance(jobs, list) or not all(isinstance(job, dict) for job in jobs):
            raise BadRequest("'jobs' must be a list of objects")
        return cls(_number(body, "version"), tuple(Job.parse(job) for job in jobs))

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "jobs": [job.to_json() for job in self.jobs]}


@dataclass(frozen=True, slots=True)
class JobsQuery:
    since: int = -1
    wait: float = 0.0

    @classmethod
    def parse(cls, query: dict[str, str]) -> JobsQuery:
        try:
            return cls(since=int(query.get("since", "-1")), wait=float(query.get("wait", "0")))
        except ValueError as exc:
            raise BadRequest("'since' and 'wait' must be numbers") from exc

    def to_query(self) -> dict[str, str]:
        return {"since": str(self.since), "wait": str(self.wait)}


@dataclass(frozen=True, slots=True)
class BlobProgress:
    """One blob of an image job (a file job has one, keyed by its file key)."""

    digest: str
    size: int = 0
    bytes_done: int = 0
    from_upstream: int = 0
    from_peers: int = 0
    state: JobState = "pending"
    error: str = ""

    @classmethod
    def parse(cls, body: dict[str, Any]) -> BlobProgress:
        return cls(
            digest=_text(body, "digest", limit=MAX_ID),
            size=_number(body, "size"),
            bytes_done=_number(body, "bytes_done"),
            from_upstream=_number(body, "from_upstream"),
            from_peers=_number(body, "from_peers"),
            state=_choice(body, "state", JOB_STATES, "pending"),  # type: ignore[arg-type]
            error=_text(body, "error", default=""),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest, "size": self.size, "bytes_done": self.bytes_done,
            "from_upstream": self.from_upstream, "from_peers": self.from_peers, "state": self.state,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class JobProgress:
    job_id: str
    host_id: str
    state: JobState
    bytes_done: int = 0
    bytes_total: int = 0
    from_upstream: int = 0
    from_peers: int = 0
    # One line, for people; never a secret.
    error: str = ""
    # Wall-clock (epoch) seconds; 0: not yet.
    started_at: float = 0.0
    finished_at: float = 0.0
    blobs: tuple[BlobProgress, ...] = ()
    # What a file job computed (`sha256:HEX`), or the image's manifest digest.
    digest: str = ""

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @classmethod
    def parse(cls, body: dict[str, Any]) -> JobProgress:
        blobs = body.get("blobs", [])
        if not isinstance(blobs, list) or len(blobs) > MAX_BLOBS or not all(isinstance(b, dict) for b in blobs):
            raise BadRequest(f"'blobs' must be a list of up to {MAX_BLOBS} objects")
        return cls(
            job_id=_text(body, "job_id", limit=MAX_ID),
            host_id=_text(body, "host_id", limit=MAX_ID, default=""),
            state=_choice(body, "state", JOB_STATES),  # type: ignore[arg-type]
            bytes_done=_number(body, "bytes_done"),
            bytes_total=_number(body, "bytes_total"),
            from_upstream=_number(body, "from_upstream"),
            from_peers=_number(body, "from_peers"),
            error=_text(body, "error", default=""),
            started_at=_seconds(body, "started_at"),
            finished_at=_seconds(body, "finished_at"),
            blobs=tuple(BlobProgress.parse(blob) for blob in blobs),
            digest=_text(body, "digest", limit=MAX_ID, default=""),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "host_id": self.host_id, "state": self.state, "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total, "from_upstream": self.from_upstream, "from_peers": self.from_peers,
            "error": self.error, "started_at": self.started_at, "finished_at": self.finished_at,
            "blobs": [blob.to_json() for blob in self.blobs], "digest": self.digest,
        }


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """What a host posts: the progress of one or more of its jobs (the supernode fills in `host_id`)."""

    progress: tuple[JobProgress, ...]

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ProgressReport:
        items = body.get("progress")
        if not isinstance(items, list) or not 0 < len(items) <= 256 or not all(isinstance(i, dict) for i in items):
            raise BadRequest("'progress' must be a list of 1 to 256 objects")
        return cls(tuple(JobProgress.parse(item) for item in items))

    def to_json(self) -> dict[str, Any]:
        return {"progress": [item.to_json() for item in self.progress]}


@dataclass(frozen=True, slots=True)
class ProgressList:
    progress: tuple[JobProgress, ...] = ()

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ProgressList:
        items = body.get("progress", [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BadRequest("'progress' must be a list of objects")
        return cls(tuple(JobProgress.parse(item) for item in items))

    def to_json(self) -> dict[str, Any]:
        return {"progress": [item.to_json() for item in self.progress]}
