"""Every endpoint of the supernode's HTTP API, declared once, as data.

The server builds its Starlette routes and its fast path (supernode/asgi.py) from this table, and the client and
the load generator build their URLs with `ApiRoute.url`, so a path is written in one place only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .api import (
    API_PREFIX,
    CordonSet,
    Health,
    HeartbeatRequest,
    JoinRequest,
    PeerList,
    RegisterRequest,
    RegisterResponse,
    ReportRequest,
    ReportResponse,
    SupernodeList,
    SuspectList,
    SwarmList,
    SwarmView,
    ViewQuery,
)
from .jobs import Job, JobList, JobsQuery, ProgressList, ProgressReport

# What a path segment may hold unquoted (RFC 3986 `pchar` but "/"): ids and digests ("sha256:...") go as they are.
_SEGMENT_SAFE = "!$&'()*+,;=:@"


@dataclass(frozen=True, slots=True)
class ApiRoute:
    name: str
    method: str
    # A Starlette path template: `{name}` is one non-empty path segment.
    path: str
    # What the request carries (a JSON body, or for a view its query); None: nothing.
    request: type[Any] | None = None
    # The JSON answer; None: no body (a 204), or for /metrics Prometheus' text.
    response: type[Any] | None = None

    @property
    def param(self) -> str:
        """The name of the path's parameter ("" if it has none; no route has two)."""
        start = self.path.find("{")
        return self.path[start + 1 : self.path.index("}")] if start >= 0 else ""

    @property
    def fast_key(self) -> tuple[str, str, str] | None:
        """(method, collection, action) for a path `API_PREFIX/<collection>/{param}/<action>`, the shape the fast
        path matches exactly; None for any other path."""
        if not self.path.startswith(API_PREFIX + "/"):
            return None
        parts = self.path[len(API_PREFIX) + 1 :].split("/")
        if len(parts) != 3 or parts[1] != "{" + self.param + "}":
            return None
        return self.method, parts[0], parts[2]

    def url(self, **params: str) -> str:
        """The path with its parameter filled in, quoted as one path segment."""
        if not params:
            return self.path
        return self.path.format_map({name: quote(value, safe=_SEGMENT_SAFE) for name, value in params.items()})


HEALTHZ = ApiRoute("healthz", "GET", "/healthz", response=Health)
METRICS = ApiRoute("metrics", "GET", "/metrics")
REGISTER = ApiRoute("register", "POST", f"{API_PREFIX}/peers", RegisterRequest, RegisterResponse)
LIST_PEERS = ApiRoute("list_peers", "GET", f"{API_PREFIX}/peers", response=PeerList)
# Its body, the host's facts, is optional (an older peer sends none).
HEARTBEAT = ApiRoute("heartbeat", "POST", f"{API_PREFIX}/peers/{{peer_id}}/heartbeat", HeartbeatRequest)
LEAVE = ApiRoute("leave", "DELETE", f"{API_PREFIX}/peers/{{peer_id}}")
LIST_SWARMS = ApiRoute("list_swarms", "GET", f"{API_PREFIX}/swarms", response=SwarmList)
JOIN = ApiRoute("join", "POST", f"{API_PREFIX}/swarms/{{digest}}/join", JoinRequest, SwarmView)
# Children's reports are answered 204; the feeder's with a ReportResponse.
REPORT = ApiRoute("report", "POST", f"{API_PREFIX}/swarms/{{digest}}/report", ReportRequest, ReportResponse)
VIEW = ApiRoute("view", "GET", f"{API_PREFIX}/swarms/{{digest}}/view", ViewQuery, SwarmView)

# Operators: hosts found sending bad bytes, and clearing one from quarantine (supernode/suspects.py).
LIST_SUSPECTS = ApiRoute("list_suspects", "GET", f"{API_PREFIX}/suspects", response=SuspectList)
CLEAR_SUSPECT = ApiRoute("clear_suspect", "DELETE", f"{API_PREFIX}/suspects/{{peer_id}}")
# The platform's cordon (manager/hosts.py), told by a manager that runs alone (one hosted sets it in place).
SET_CORDONED = ApiRoute("set_cordoned", "PUT", f"{API_PREFIX}/cordoned", CordonSet)

# The job channel (supernode/jobs.py): a host long-polls its jobs and posts their progress (its credential, like a
# heartbeat); the platform puts and cancels jobs and reads their progress (the operators' token).
HOST_JOBS = ApiRoute("host_jobs", "GET", f"{API_PREFIX}/peers/{{peer_id}}/jobs", JobsQuery, JobList)
JOB_PROGRESS = ApiRoute("job_progress", "POST", f"{API_PREFIX}/peers/{{peer_id}}/job-progress", ProgressReport)
PUT_JOB = ApiRoute("put_job", "PUT", f"{API_PREFIX}/jobs/{{job_id}}", Job)
CANCEL_JOB = ApiRoute("cancel_job", "DELETE", f"{API_PREFIX}/jobs/{{job_id}}")
LIST_JOB_PROGRESS = ApiRoute("list_job_progress", "GET", f"{API_PREFIX}/jobs", response=ProgressList)

# The supernode directory (supernode/directory.py): the supernodes alive, for peers given any one of them.
LIST_SUPERNODES = ApiRoute("list_supernodes", "GET", f"{API_PREFIX}/supernodes", response=SupernodeList)

# In the order Starlette tries them.
ROUTES = (
    HEALTHZ, METRICS, REGISTER, LIST_PEERS, HEARTBEAT, LEAVE, LIST_SWARMS, JOIN, REPORT, VIEW, LIST_SUSPECTS,
    CLEAR_SUSPECT, SET_CORDONED, HOST_JOBS, JOB_PROGRESS, PUT_JOB, CANCEL_JOB, LIST_JOB_PROGRESS,
    LIST_SUPERNODES,
)
