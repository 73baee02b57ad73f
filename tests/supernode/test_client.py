"""The typed client against the real app in process: every call reads its answer into the API's types, and the
supernode's 410 comes back as the scheduler's own UnknownPeer, its 403 as CredentialRefused. A client speaks for
the one host it registered (it keeps that host's credential), so each host here has its own."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from starlette.types import ASGIApp

from supernode.api import ROLE_FEEDER, JoinRequest, ReportRequest, SwarmSummary, UnknownPeer
from supernode.client import CredentialRefused, JoinRefused, SupernodeClient
from supernode.config import SupernodeConfig
from supernode.server import create_app
from tests.support.identities import peer_id, register_request

TOKEN = "s3cret"
DIGEST = "sha256:" + hashlib.sha256(b"blob").hexdigest()
SIZE = 10 << 20  # three pieces


def client_of(app: ASGIApp, token: str = TOKEN) -> SupernodeClient:
    # The ASGI transport buffers whole bodies: fine here, where no answer streams and no view waits.
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=5.0)
    return SupernodeClient("http://supernode/", http, join_token=token)


async def test_every_call_answers_in_the_api_types() -> None:
    # The advertised addresses are not where the supernode sees the client (loopback): the network admits them.
    app = create_app(SupernodeConfig(join_token=TOKEN, peer_networks=("10.0.0.0/24",)))
    first, second = client_of(app), client_of(app)
    p0, p1 = peer_id("p0"), peer_id("p1")
    registered = await first.register(register_request("p0", 65002, "10.0.0.1", {"zone": "a"}))
    assert (registered.peer_id, registered.url) == (p0, "http://10.0.0.1:65002")
    assert registered.credential
    await second.register(register_request("p1", 65002, "10.0.0.2"))
    peers = await first.list_peers()
    assert {(p.peer_id, p.url, tuple(p.labels.items())) for p in peers.peers} == {
        (p0, "http://10.0.0.1:65002", (("zone", "a"),)),
        (p1, "http://10.0.0.2:65002", ()),
    }
    assert (await first.join(DIGEST, JoinRequest(p0, SIZE))).role == ROLE_FEEDER
    await second.join(DIGEST, JoinRequest(p1, SIZE))
    # The feeder is told how many still wait for pieces; a child is told nothing.
    assert await first.report(DIGEST, ReportRequest(p0, pieces="1", piece_digests={0: "c" * 64})) == 1
    assert await second.report(DIGEST, ReportRequest(p1, pieces="1", done=False)) is None
    view = await second.view(DIGEST, p1, since=-1, wait=0.0)
    assert view.piece_digests == ["c" * 64, "", ""] and [p.peer_id for p in view.parents] == [p0]
    swarms = await second.list_swarms()
    assert swarms.swarms == [SwarmSummary(DIGEST, SIZE, 3, members=2, completed=0, feeder=p0)]
    # A client holds its own host's credential only: a call about another host is refused.
    with pytest.raises(CredentialRefused):
        await first.heartbeat(p1)
    await second.heartbeat(p1)
    await second.leave(p1)
    with pytest.raises(UnknownPeer):
        await second.heartbeat(p1)
    await first.heartbeat(p0)
    await first.http.aclose()
    await second.http.aclose()


async def test_a_wrong_token_is_refused() -> None:
    client = client_of(create_app(SupernodeConfig(join_token=TOKEN)), token="wrong")
    with pytest.raises(JoinRefused):
        await client.list_swarms()
    await client.http.aclose()
