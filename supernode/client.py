"""Typed clients of the supernode's API: `SupernodeClient`, a host's (it speaks for the one host it registered), and
`OperatorClient`, the platform's (the operators' token: jobs, supernode/jobs.py)."""

from __future__ import annotations

from typing import Any

import httpx

from . import routes
from .api import (
    TOKEN_HEADER,
    CredentialRefused,
    HeartbeatRequest,
    HostFacts,
    JoinRefused,
    JoinRequest,
    PeerList,
    RegisterRequest,
    RegisterResponse,
    ReportRequest,
    ReportResponse,
    SupernodeList,
    SupernodeUnavailable,
    SwarmList,
    SwarmView,
    UnknownPeer,
    ViewQuery,
)
from .identity import CREDENTIAL_HEADER, PEER_HEADER
from .jobs import Job, JobList, JobsQuery, ProgressList, ProgressReport
from .routes import ApiRoute

# The errors a call raises live beside the wire types (the scheduler raises UnknownPeer too); callers take them
# from here, with the client.
__all__ = [
    "CredentialRefused", "JobRefused", "JoinRefused", "NoDirectory", "OperatorClient", "OperatorRefused",
    "SupernodeClient", "SupernodeUnavailable", "SupernodeUnreachable", "UnknownPeer",
]


class SupernodeUnreachable(SupernodeUnavailable):
    """No answer at all (refused, reset, timed out): the process is likely dead or hung, not merely saying no.
    Several supernodes (supernode/shards.py) leave such a one out of the owners for a while."""


class NoDirectory(SupernodeUnavailable):
    """The supernode keeps no directory (it runs without --redis): the list the peer was given is the list."""


class OperatorRefused(SupernodeUnavailable):
    """The supernode refused the operators' token (401 or 403): retrying cannot help."""


class JobRefused(SupernodeUnavailable):
    """The supernode refused a job: 400 (not a job), 409 (it is another host's job already) or 429 (the supernode
    holds its most jobs: put it again later)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"supernode answered {status}: {message}")
        self.status = status


async def _send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any] | None,
    params: dict[str, str] | None,
    timeout: float | None,
) -> httpx.Response:
    extra: dict[str, Any] = {}
    if timeout is not None:
        extra["timeout"] = httpx.Timeout(5.0, read=timeout)
    try:
        return await http.request(method, url, json=body, params=params, headers=headers, **extra)
    except httpx.TransportError as exc:
        raise SupernodeUnreachable(f"supernode unreachable: {exc!r}") from exc
    except httpx.HTTPError as exc:
        raise SupernodeUnavailable(f"supernode unreachable: {exc!r}") from exc


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise SupernodeUnavailable(f"supernode answered {response.status_code}: {response.text[:200]}")
    return response.json() if response.content else None


class SupernodeClient:
    def __init__(self, base_url: str, http: httpx.AsyncClient, join_token: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.headers = {TOKEN_HEADER: join_token} if join_token else {}

    def _identify(self, peer_id: str, credential: str) -> None:
        """Every later call carries the credential this supernode issued at register (supernode/identity.py)."""
        self.headers[PEER_HEADER] = peer_id
        self.headers[CREDENTIAL_HEADER] = credential

    async def _call(
        self,
        route: ApiRoute,
        *,
        path: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        url = self.base_url + route.url(**(path or {}))
        response = await _send(self.http, route.method, url, self.headers, body, params, timeout)
        if response.status_code == 410:
            raise UnknownPeer(response.text[:200])
        if response.status_code == 401:
            raise JoinRefused("the supernode refused our join token")
        if response.status_code == 403:
            raise CredentialRefused(response.text[:200])
        return _answer(response)

    async def register(self, request: RegisterRequest) -> RegisterResponse:
        response = RegisterResponse.from_json(await self._call(routes.REGISTER, body=request.to_json()))
        self._identify(response.peer_id, response.credential)
        return response

    async def heartbeat(self, peer_id: str, host: HostFacts | None = None) -> None:
        body = HeartbeatRequest(host).to_json() if host is not None else None
        await self._call(routes.HEARTBEAT, path={"peer_id": peer_id}, body=body)

    async def leave(self, peer_id: str) -> None:
        await self._call(routes.LEAVE, path={"peer_id": peer_id})

    async def join(self, digest: str, request: JoinRequest) -> SwarmView:
        body = await self._call(routes.JOIN, path={"digest": digest}, body=request.to_json())
        return SwarmView.from_json(body)

    async def report(self, digest: str, request: ReportRequest) -> int | None:
        """Send a member's news; returns how many other members still need pieces (None: not told)."""
        body = await self._call(routes.REPORT, path={"digest": digest}, body=request.to_json())
        return ReportResponse.from_json(body).waiting if body else None

    async def view(self, digest: str, peer_id: str, since: int, wait: float, digests_from: int = 0) -> SwarmView:
        """The swarm as this peer sees it, once its version passes `since` or `wait` seconds pass."""
        query = ViewQuery(peer_id, since, wait, digests_from).to_query()
        body = await self._call(routes.VIEW, path={"digest": digest}, params=query, timeout=wait + 10.0)
        return SwarmView.from_json(body)

    async def list_peers(self) -> PeerList:
        return PeerList.from_json(await self._call(routes.LIST_PEERS))

    async def list_supernodes(self) -> SupernodeList:
        """The supernodes alive as this one knows them (supernode/directory.py); NoDirectory if it keeps none."""
        return await _list_supernodes(self.http, self.base_url, self.headers)

    async def list_swarms(self) -> SwarmList:
        return SwarmList.from_json(await self._call(routes.LIST_SWARMS))

    async def jobs(self, peer_id: str, since: int, wait: float) -> JobList:
        """This host's jobs, once their list's version is not `since` or `wait` seconds pass (the supernode holds
        a poll 30 s at most)."""
        query = JobsQuery(since, wait).to_query()
        body = await self._call(routes.HOST_JOBS, path={"peer_id": peer_id}, params=query, timeout=wait + 10.0)
        return JobList.parse(body)

    async def post_job_progress(self, peer_id: str, report: ProgressReport) -> None:
        await self._call(routes.JOB_PROGRESS, path={"peer_id": peer_id}, body=report.to_json())


class OperatorClient:
    """The platform's calls to one supernode's jobs, with the operators' token (`Authorization: Bearer`). With
    several supernodes, a host's jobs are put at `owner_index(urls, host_id)` (supernode/shards.py)."""

    def __init__(self, base_url: str, http: httpx.AsyncClient, operator_token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.headers = {"Authorization": f"Bearer {operator_token}"}

    def __repr__(self) -> str:
        return f"OperatorClient({self.base_url!r})"

    async def _call(
        self, route: ApiRoute, *, path: dict[str, str] | None = None, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        url = self.base_url + route.url(**(path or {}))
        response = await _send(self.http, route.method, url, self.headers, body, None, None)
        if response.status_code in (401, 403):
            raise OperatorRefused(f"the supernode refused the operators' token: {response.text[:200]}")
        if response.status_code in (400, 409, 429):
            raise JobRefused(response.status_code, response.text[:200])
        return response

    async def put_job(self, job: Job) -> None:
        """Idempotent: the same job put again is one job."""
        _answer(await self._call(routes.PUT_JOB, path={"job_id": job.job_id}, body=job.to_json()))

    async def cancel_job(self, job_id: str) -> None:
        """Cancel the job (and forget it once its last progress is final: supernode/job_board.py); a job the
        supernode does not hold is cancelled already."""
        response = await self._call(routes.CANCEL_JOB, path={"job_id": job_id})
        if response.status_code != 404:
            _answer(response)

    async def list_job_progress(self) -> ProgressList:
        return ProgressList.parse(_answer(await self._call(routes.LIST_JOB_PROGRESS)))

    async def list_supernodes(self) -> SupernodeList:
        return await _list_supernodes(self.http, self.base_url, self.headers)


async def _list_supernodes(http: httpx.AsyncClient, base_url: str, headers: dict[str, str]) -> SupernodeList:
    url = base_url + routes.LIST_SUPERNODES.url()
    response = await _send(http, routes.LIST_SUPERNODES.method, url, headers, None, None, None)
    if response.status_code == 404:
        raise NoDirectory(f"{base_url} keeps no supernode directory")
    try:
        return SupernodeList.from_json(_answer(response))
    except ValueError as exc:
        raise SupernodeUnavailable(f"{base_url}: {exc}") from None
