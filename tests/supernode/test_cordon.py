"""A host cordoned on the platform is nobody's parent and no swarm's feeder, and the heartbeat carries the host's
facts, parsed strictly."""

from __future__ import annotations

import httpx
import pytest

from core.pieces import MiB
from supernode.api import ROLE_FEEDER, BadRequest, HeartbeatRequest, HostFacts, PeerList, RegisterRequest
from supernode.config import SupernodeConfig
from supernode.scheduler import Scheduler, UnknownSwarm
from supernode.server import create_app
from tests.support.identities import OPERATOR_TOKEN, operator_headers, register_body, registered

DIGEST = "sha256:" + "cd" * 32
SIZE = 10 * MiB
ALL = 0b111


def _scheduler(n: int) -> Scheduler:
    scheduler = Scheduler()
    for i in range(n):
        scheduler.register(f"p{i}", f"http://10.0.0.{i}:65002", {}, now=0.0)
    return scheduler


def _parents(scheduler: Scheduler, peer: str) -> list[str]:
    return [p.peer_id for p in scheduler.view(DIGEST, peer, now=1.0).parents]


def test_a_cordoned_host_that_holds_the_blob_is_offered_to_nobody() -> None:
    scheduler = _scheduler(3)
    scheduler.set_cordoned({"p0"})
    scheduler.join(DIGEST, "p0", SIZE, ALL, now=1.0)  # holds the whole blob
    scheduler.join(DIGEST, "p1", SIZE, ALL, now=1.0)
    scheduler.join(DIGEST, "p2", SIZE, 0, now=1.0)
    assert _parents(scheduler, "p2") == ["p1"]
    # Uncordoned, and joining again, it is a parent like any other.
    scheduler.set_cordoned(set())
    scheduler.join(DIGEST, "p0", SIZE, ALL, now=1.0)
    assert sorted(_parents(scheduler, "p2")) == ["p0", "p1"]


def test_cordoning_a_parent_takes_it_from_its_children_and_a_feeder_is_replaced() -> None:
    scheduler = _scheduler(3)
    feeder = scheduler.join(DIGEST, "p0", SIZE, 0, now=1.0)
    assert feeder.role == ROLE_FEEDER
    scheduler.join(DIGEST, "p1", SIZE, 0, now=1.0)
    assert _parents(scheduler, "p1") == ["p0"]
    scheduler.set_cordoned(["p0"])
    assert "p0" not in _parents(scheduler, "p1")
    # The cordoned feeder is no member any more: its view says to join again, and then it feeds nobody.
    with pytest.raises(UnknownSwarm):
        scheduler.view(DIGEST, "p0", now=1.0)
    assert scheduler.join(DIGEST, "p0", SIZE, 0, now=1.0).role != ROLE_FEEDER
    assert scheduler.swarms[DIGEST].feeder == "p1"
    assert scheduler.take_wakes()[DIGEST] is None  # everyone's long-poll woke to hear it


def test_heartbeat_facts_are_kept_per_host() -> None:
    scheduler = _scheduler(1)
    facts = HostFacts(hostname="node-1", version="0.1.0", disk_used=5, disk_total=100, swarms=2)
    scheduler.heartbeat("p0", now=3.0, host=facts)
    scheduler.heartbeat("p0", now=4.0)  # a heartbeat without facts keeps the last ones
    assert scheduler.peers["p0"].host == facts and scheduler.peers["p0"].last_seen == 4.0


@pytest.mark.parametrize(
    "body",
    [{"host": []}, {"host": {"disk_used": -1}}, {"host": {"disk_used": "5"}}, {"host": {"swarms": True}},
     {"host": {"hostname": "a\nb"}}, {"host": {"hostname": "x" * 256}}, {"other": 1},
     # A newer peer's unknown fields are ignored (tests/supernode/test_host_facts.py), but not without bound.
     {"host": {f"cpu{i}": 1 for i in range(17)}},
     {"host": {"upload_rate": 2**64}}],
)
def test_bad_facts_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        HeartbeatRequest.parse(body)


def test_facts_round_trip_and_are_optional() -> None:
    facts = HostFacts(hostname="h", version="v", disk_used=1, disk_total=2, disk_quota=3, upload_rate=4,
                      download_rate=5, swarms=6)
    assert HeartbeatRequest.parse(HeartbeatRequest(facts).to_json()).host == facts
    assert HeartbeatRequest.parse({}).host is None
    register = {"peer_id": "p0", "upload_port": 1, "host": facts.to_json()}
    assert RegisterRequest.parse(register).host == facts
    assert RegisterRequest.parse({"peer_id": "p0", "upload_port": 1}).host is None


async def test_the_supernode_answers_a_bad_heartbeat_body_400_and_keeps_good_facts() -> None:
    app = create_app(SupernodeConfig(operator_token=OPERATOR_TOKEN))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sn") as http:
        host = registered("p0", (await http.post("/api/v1/peers", json=register_body("p0"))).json())
        beat = f"/api/v1/peers/{host.peer_id}/heartbeat"
        bad = await http.post(beat, json={"host": {"disk_used": -5}}, headers=host.headers)
        assert bad.status_code == 400 and "disk_used" in bad.json()["error"]
        assert (await http.post(beat, content=b"[1]", headers=host.headers)).status_code == 400
        assert (await http.post(beat, headers=host.headers)).status_code == 204  # an older peer's: no body
        facts = HostFacts(hostname="n1", disk_used=7, swarms=1)
        assert (await http.post(beat, json={"host": facts.to_json()}, headers=host.headers)).status_code == 204
        listed = PeerList.from_json((await http.get("/api/v1/peers", headers=operator_headers())).json())
    assert listed.peers[0].host == facts and listed.heartbeat_interval == 2.0
