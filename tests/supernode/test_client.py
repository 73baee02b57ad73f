"""The typed client against the real app in process: every call reads its answer into the API's types, and the
supernode's 410 comes back as the scheduler's own UnknownPeer."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from starlette.types import ASGIApp

from supernode.api import ROLE_FEEDER, JoinRequest, RegisterRequest, ReportRequest, SwarmSummary, UnknownPeer
from supernode.client import JoinRefused, SupernodeClient
from supernode.config import SupernodeConfig
from supernode.server import create_app

TOKEN = "s3cret"
DIGEST = "sha256:" + hashlib.sha256(b"blob").hexdigest()
SIZE = 10 << 20  # three pieces


def client_of(app: ASGIApp, token: str = TOKEN) -> SupernodeClient:
    # The ASGI transport buffers whole bodies: fine here, where no answer streams and no view waits.
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=5.0)
    return SupernodeClient("http://supernode/", http, join_token=token)


async def test_every_call_answers_in_the_api_types() -> None:
    # The advertised addresses are not where the supernode sees the client (loopback): the network admits them.
    client = client_of(create_app(SupernodeConfig(join_token=TOKEN, peer_networks=("10.0.0.0/24",))))
    registered = await client.register(RegisterRequest("p0", 65002, "10.0.0.1", {"zone": "a"}))
    assert (registered.peer_id, registered.url) == ("p0", "http://10.0.0.1:65002")
    await client.register(RegisterRequest("p1", 65002, "10.0.0.2"))
    peers = await client.list_peers()
    assert {(p.peer_id, p.url, tuple(p.labels.items())) for p in peers.peers} == {
        ("p0", "http://10.0.0.1:65002", (("zone", "a"),)),
        ("p1", "http://10.0.0.2:65002", ()),
    }
    assert (await client.join(DIGEST, JoinRequest("p0", SIZE))).role == ROLE_FEEDER
    await client.join(DIGEST, JoinRequest("p1", SIZE))
    # The feeder is told how many still wait for pieces; a child is told nothing.
    assert await client.report(DIGEST, ReportRequest("p0", pieces="1", piece_digests={0: "c" * 64})) == 1
    assert await client.report(DIGEST, ReportRequest("p1", pieces="1", done=False)) is None
    view = await client.view(DIGEST, "p1", since=-1, wait=0.0)
    assert view.piece_digests == ["c" * 64, "", ""] and [p.peer_id for p in view.parents] == ["p0"]
    swarms = await client.list_swarms()
    assert swarms.swarms == [SwarmSummary(DIGEST, SIZE, 3, members=2, completed=0, feeder="p0")]
    await client.heartbeat("p1")
    await client.leave("p1")
    with pytest.raises(UnknownPeer):
        await client.heartbeat("p1")
    await client.http.aclose()


async def test_a_wrong_token_is_refused() -> None:
    client = client_of(create_app(SupernodeConfig(join_token=TOKEN)), token="wrong")
    with pytest.raises(JoinRefused):
        await client.list_swarms()
    await client.http.aclose()
