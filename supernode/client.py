"""A typed client of the supernode's API, used by peers."""

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
    SupernodeUnavailable,
    SwarmList,
    SwarmView,
    UnknownPeer,
    ViewQuery,
)
from .identity import CREDENTIAL_HEADER, PEER_HEADER
from .routes import ApiRoute

# The errors a call raises live beside the wire types (the scheduler raises UnknownPeer too); callers take them
# from here, with the client.
__all__ = ["CredentialRefused", "JoinRefused", "SupernodeClient", "SupernodeUnavailable", "UnknownPeer"]


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
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(5.0, read=timeout)
        url = self.base_url + route.url(**(path or {}))
        try:
            response = await self.http.request(
                route.method, url, json=body, params=params, headers=self.headers, **extra
            )
        except httpx.HTTPError as exc:
            raise SupernodeUnavailable(f"supernode unreachable: {exc!r}") from exc
        if response.status_code == 410:
            raise UnknownPeer(response.text[:200])
        if response.status_code == 401:
            raise JoinRefused("the supernode refused our join token")
        if response.status_code == 403:
            raise CredentialRefused(response.text[:200])
        if response.status_code >= 300:
            raise SupernodeUnavailable(f"supernode answered {response.status_code}: {response.text[:200]}")
        return response.json() if response.content else None

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

    async def list_swarms(self) -> SwarmList:
        return SwarmList.from_json(await self._call(routes.LIST_SWARMS))
