"""The platform cluster's join token a host registers with: the supernode keeps its sha256 only, shows it to
operators in the listing, and never says or logs the token."""

from __future__ import annotations

import hashlib
import logging

import httpx
import pytest

from supernode.api import BadRequest, PeerList, RegisterRequest, cluster_token_hash
from supernode.config import SupernodeConfig
from supernode.server import create_app
from tests.support.identities import OPERATOR_TOKEN, operator_headers, register_body, registered

TOKEN = "dfc_a-clusters-join-token"


def test_the_token_travels_only_when_there_is_one_and_is_never_printed() -> None:
    request = RegisterRequest("p0", 1, cluster_token=TOKEN)
    assert RegisterRequest.parse(request.to_json()).cluster_token == TOKEN
    assert "cluster_token" not in RegisterRequest("p0", 1).to_json()
    assert TOKEN not in repr(request) and TOKEN not in str(request)
    assert request.cluster_token_hash == hashlib.sha256(TOKEN.encode()).hexdigest() and cluster_token_hash("") == ""


@pytest.mark.parametrize("token", [5, "x" * 257, "tökén"])
def test_a_bad_token_is_refused(token: object) -> None:
    with pytest.raises(BadRequest, match="cluster_token"):
        RegisterRequest.parse({"peer_id": "p0", "upload_port": 1, "cluster_token": token})


async def test_the_supernode_keeps_the_hash_and_shows_it_to_operators_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(SupernodeConfig(operator_token=OPERATOR_TOKEN))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sn") as http:
        joiner = registered("p0", (await http.post("/api/v1/peers", json=register_body(
            "p0", cluster_token=TOKEN))).json())
        other = registered("p1", (await http.post("/api/v1/peers", json=register_body("p1"))).json())
        as_operator = await http.get("/api/v1/peers", headers=operator_headers())
        as_member = await http.get("/api/v1/peers", headers=other.headers)
    listed = {p.peer_id: p.cluster_token_hash for p in PeerList.from_json(as_operator.json()).peers}
    assert listed == {joiner.peer_id: cluster_token_hash(TOKEN), other.peer_id: ""}
    assert {p.cluster_token_hash for p in PeerList.from_json(as_member.json()).peers} == {""}
    assert TOKEN not in as_operator.text + as_member.text + caplog.text


@pytest.mark.parametrize("listed", [None, 5, "", "x" * 64, "A" * 64, "a" * 65, "é" * 64])
def test_a_listing_with_no_hash_or_a_wrong_one_reads_as_none(listed: object) -> None:
    body = {"peers": [{"peer_id": "p0", "url": "http://10.0.0.1:1", "labels": {}, "cluster_token_hash": listed}]}
    assert PeerList.from_json(body).peers[0].cluster_token_hash == ""
