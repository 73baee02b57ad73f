"""Register checks the address a peer advertises before anyone is sent to dial it: an IP address only, and where the
supernode sees the peer unless it lies in `peer_networks`; the URL handed out is built from the checked parts."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from supernode.config import SupernodeConfig
from supernode.server import create_app
from tests.supernode.test_server import TOKEN, call
from tests.support.identities import OPERATOR_TOKEN, operator_headers, peer_id, register_body

# Where `call` says the request comes from.
SEEN = "10.1.2.3"


async def register(config: SupernodeConfig, advertise: Any, port: Any = 65002) -> tuple[int, dict[str, Any]]:
    """Register p0 advertising `advertise`; the answer without the credential, which is checked to be there."""
    # The listing is read as an operator: a refused host has no credential to read it with.
    app = create_app(replace(config, operator_token=OPERATOR_TOKEN))
    status, _, body = await call(app, "POST", "/api/v1/peers", register_body("p0", port, advertise_host=advertise))
    answer: dict[str, Any] = json.loads(body)
    listing_status, _, listed = await call(app, "GET", "/api/v1/peers", headers=operator_headers())
    assert listing_status == 200
    if status == 200:
        credential = answer.pop("credential")
        assert isinstance(credential, str) and credential
        # What other members would be handed is what register answered.
        assert [p["url"] for p in json.loads(listed)["peers"]] == [answer["url"]]
    else:
        assert json.loads(listed)["peers"] == []  # nobody is sent to a refused address
    return status, answer


@pytest.mark.parametrize(
    "advertise",
    [
        f"{SEEN}/chosen-by-rogue?cmd=x",
        f"{SEEN}?cmd=x",
        f"{SEEN}#frag",
        f"http://{SEEN}",
        f"user@{SEEN}",
        f"{SEEN}:8080",
        "[::1]:21298/chosen-by-rogue?cmd=x",
        "[::1",
        f"[{SEEN}]",
        "fe80::1%eth0",
        f" {SEEN}",
        f"{SEEN}\r\nX: y",
        "peer.example.test",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "10.1.2.3.4",
        "010.001.002.003",
    ],
)
async def test_an_address_that_is_not_just_an_ip_is_refused(advertise: str) -> None:
    status, answer = await register(SupernodeConfig(join_token=TOKEN, peer_networks=("0.0.0.0/0", "::/0")), advertise)
    assert status == 400
    assert set(answer) == {"error"} and "advertise_host" in answer["error"]


async def test_an_address_outside_the_peer_networks_is_refused() -> None:
    status, answer = await register(SupernodeConfig(join_token=TOKEN), "10.9.9.9")
    assert status == 400 and "neither the address the supernode sees this peer at (10.1.2.3)" in answer["error"]
    config = SupernodeConfig(join_token=TOKEN, peer_networks=("192.168.0.0/16", "fd00::/8"))
    for outside in ("10.9.9.9", "127.0.0.1", "fe80::1"):
        status, answer = await register(config, outside)
        assert status == 400, outside
        assert "192.168.0.0/16, fd00::/8" in answer["error"]


async def test_the_seen_address_and_addresses_in_the_peer_networks_are_accepted() -> None:
    config = SupernodeConfig(join_token=TOKEN)
    assert await register(config, "") == (200, {"peer_id": peer_id("p0"), "url": f"http://{SEEN}:65002",
                                                "heartbeat_interval": 2.0})
    assert (await register(config, SEEN))[1]["url"] == f"http://{SEEN}:65002"
    # The same address written as IPv4-mapped IPv6 is the same address; the URL says it plainly.
    assert (await register(config, f"[::ffff:{SEEN}]"))[1]["url"] == f"http://{SEEN}:65002"
    networks = SupernodeConfig(join_token=TOKEN, peer_networks=("192.168.0.0/16", "fd00::/8"))
    assert (await register(networks, "192.168.7.8", port=1))[1]["url"] == "http://192.168.7.8:1"
    assert (await register(networks, "fd00::7"))[1]["url"] == "http://[fd00::7]:65002"
    assert (await register(networks, "[fd00::7]"))[1]["url"] == "http://[fd00::7]:65002"


@pytest.mark.parametrize("port", [0, 65536, -1, "65002", True, 1.5, None])
async def test_a_port_out_of_range_is_refused(port: Any) -> None:
    status, answer = await register(SupernodeConfig(join_token=TOKEN), SEEN, port=port)
    assert status == 400 and "upload_port" in answer["error"]
