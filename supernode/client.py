"""A typed client of the supernode's API, used by peers."""

from __future__ import annotations

from typing import Any

import httpx

from .api import (
    API_PREFIX,
    TOKEN_HEADER,
    JoinRequest,
    RegisterRequest,
    RegisterResponse,
    ReportRequest,
    SwarmView,
)


class SupernodeUnavailable(Exception):
    """The supernode could not be reached or answered with an error."""


class JoinRefused(SupernodeUnavailable):
    """The supernode refused our join token: retrying cannot help."""


class PeerUnknown(SupernodeUnavailable):
    """The supernode no longer knows this peer (it restarted, or our heartbeats lapsed): register again."""


class SupernodeClient:
    def __init__(self, base_url: str, http: httpx.AsyncClient, join_token: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.headers = {TOKEN_HEADER: join_token} if join_token else {}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(5.0, read=timeout)
        try:
            response = await self.http.request(
                method, self.base_url + API_PREFIX + path, json=body, params=params, headers=self.headers, **extra
            )
        except httpx.HTTPError as exc:
            raise SupernodeUnavailable(f"supernode unreachable: {exc!r}") from exc
        if response.status_code == 410:
            raise PeerUnknown(response.text[:200])
        if response.status_code == 401:
            raise JoinRefused("the supernode refused our join token")
        if response.status_code >= 300:
            raise SupernodeUnavailable(f"supernode answered {response.status_code}: {response.text[:200]}")
        return response.json() if response.content else None

    async def register(self, request: RegisterRequest) -> RegisterResponse:
        body = await self._call("POST", "/peers", body=request.to_json())
        return RegisterResponse(**body)

    async def heartbeat(self, peer_id: str) -> None:
        await self._call("POST", f"/peers/{peer_id}/heartbeat")

    async def leave(self, peer_id: str) -> None:
        await self._call("DELETE", f"/peers/{peer_id}")

    async def join(self, digest: str, request: JoinRequest) -> SwarmView:
        return SwarmView.from_json(await self._call("POST", f"/swarms/{digest}/join", body=request.to_json()))

    async def report(self, digest: str, request: ReportRequest) -> int | None:
        """Send a member's news; returns how many other members still need pieces (None: not told)."""
        body = await self._call("POST", f"/swarms/{digest}/report", body=request.to_json())
        waiting = body.get("waiting") if isinstance(body, dict) else None
        return waiting if isinstance(waiting, int) else None

    async def view(self, digest: str, peer_id: str, since: int, wait: float, digests_from: int = 0) -> SwarmView:
        """The task as this peer sees it, once its version passes `since` or `wait` seconds pass."""
        params = {"peer_id": peer_id, "since": str(since), "wait": str(wait), "from": str(digests_from)}
        body = await self._call("GET", f"/swarms/{digest}/view", params=params, timeout=wait + 10.0)
        return SwarmView.from_json(body)
