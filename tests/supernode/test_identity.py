"""A host's identity at the supernode (supernode/identity.py), through the app in process over raw ASGI.

A peer id commits to its host's secret, so nobody registers under it without the secret; each register is answered
a new credential, which every later call about that peer must carry, or it is refused (403) and changes nothing;
the listings answer a registered host or an operator only; and the secret is never answered or logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from supernode.api import RegisterRequest
from supernode.client import CredentialRefused, SupernodeClient
from supernode.config import SchedulerConfig, SupernodeConfig
from supernode.identity import CREDENTIAL_HEADER, PEER_HEADER, bound_peer_id, is_bound
from supernode.scheduler import Scheduler
from supernode.server import create_app
from tests.supernode.test_server import SIZE, TOKEN, call, register
from tests.support.identities import (
    OPERATOR_TOKEN,
    Registered,
    operator_headers,
    peer_id,
    register_body,
    registered,
    secret_of,
)

DIGEST = "sha256:" + hashlib.sha256(b"identity").hexdigest()
OTHER_DIGEST = "sha256:" + hashlib.sha256(b"another blob").hexdigest()
SWARM = f"/api/v1/swarms/{DIGEST}"


def supernode(scheduler: Scheduler | None = None, **config: Any) -> tuple[ASGIApp, Scheduler]:
    scheduler = scheduler or Scheduler(SchedulerConfig())
    settings = {"join_token": TOKEN, "view_wait": 0.2, "operator_token": OPERATOR_TOKEN, **config}
    return create_app(SupernodeConfig(**settings), scheduler), scheduler


async def post_register(app: ASGIApp, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, _, raw = await call(app, "POST", "/api/v1/peers", body)
    answer: dict[str, Any] = json.loads(raw)
    return status, answer


def test_a_bound_id_commits_to_its_secret_only() -> None:
    one = bound_peer_id("host one", "secret")
    assert one.startswith("host-one-") and is_bound(one, "secret")
    assert not is_bound(one, "secret2") and not is_bound(one, "") and not is_bound("secret", "secret")
    # The readable part is free; the commitment is what binds.
    commitment = one.rpartition("-")[2]
    assert is_bound(f"anyname-{commitment}", "secret")
    assert not is_bound(f"host-one-{commitment.upper()}", "secret")
    assert not is_bound(f"-{commitment}", "secret")


async def test_registering_an_id_that_does_not_commit_to_the_secret_is_refused() -> None:
    app, scheduler = supernode()
    p0 = peer_id("p0")
    refused = [
        {"peer_id": "p0", "upload_port": 65002},  # the old kind of id, no secret
        {"peer_id": "p0", "upload_port": 65002, "peer_secret": secret_of("p0")},  # an id that commits to nothing
        {"peer_id": p0, "upload_port": 65002},  # the right id without its secret
        {"peer_id": p0, "upload_port": 65002, "peer_secret": ""},
        {"peer_id": p0, "upload_port": 65002, "peer_secret": secret_of("p1")},
        {"peer_id": p0, "upload_port": 65002, "peer_secret": secret_of("p0") + "x"},
    ]
    for body in refused:
        status, answer = await post_register(app, body)
        assert status == 403, body
        assert set(answer) == {"error"} and "commit" in answer["error"]
    assert scheduler.peers == {}
    status, answer = await post_register(app, register_body("p0"))
    assert status == 200 and answer["peer_id"] == p0 and answer["credential"]


async def test_another_host_cannot_register_under_a_live_hosts_id() -> None:
    app, scheduler = supernode(peer_networks=("10.0.0.0/8",))
    p0 = await register(app, "p0")
    url = scheduler.peers[p0.peer_id].url
    for secret in ("", "guess", secret_of("p1")):
        status, _ = await post_register(
            app, {"peer_id": p0.peer_id, "upload_port": 1, "advertise_host": "10.6.6.6", "peer_secret": secret}
        )
        assert status == 403, secret
    # p0 is where it registered, with the credential it was issued.
    assert scheduler.peers[p0.peer_id].url == url
    status, _, _ = await call(app, "POST", f"/api/v1/peers/{p0.peer_id}/heartbeat", headers=p0.headers)
    assert status == 204


def bad_credentials(owner: Registered, other: Registered) -> list[dict[str, str]]:
    """Headers that do not speak for `owner`: none, empty, wrong, another peer's, its own id with another's."""
    return [
        {},
        {CREDENTIAL_HEADER: ""},
        {CREDENTIAL_HEADER: "wrong"},
        {CREDENTIAL_HEADER: owner.credential + "x"},
        {CREDENTIAL_HEADER: owner.credential[:-1]},
        other.headers,
        {PEER_HEADER: owner.peer_id, CREDENTIAL_HEADER: other.credential},
        operator_headers(),  # the operators' token is not a peer's credential
    ]


async def test_calls_about_a_peer_without_its_credential_are_refused_and_change_nothing() -> None:
    app, scheduler = supernode()
    p0, p1 = await register(app, "p0"), await register(app, "p1")
    join = {"peer_id": p0.peer_id, "size": SIZE}
    assert (await call(app, "POST", f"{SWARM}/join", join, headers=p0.headers))[0] == 200
    assert (await call(app, "POST", f"{SWARM}/join", {**join, "peer_id": p1.peer_id}, headers=p1.headers))[0] == 200
    seen = scheduler.peers[p0.peer_id].last_seen
    report = {"peer_id": p0.peer_id, "pieces": "1", "piece_digests": {"0": "c" * 64}, "done": True}
    view = f"peer_id={p0.peer_id}&since=-1&wait=0"
    for headers in bad_credentials(p0, p1):
        answers = [
            await call(app, "POST", f"/api/v1/peers/{p0.peer_id}/heartbeat", headers=headers),
            await call(app, "DELETE", f"/api/v1/peers/{p0.peer_id}", headers=headers),
            await call(app, "POST", f"/api/v1/swarms/{OTHER_DIGEST}/join", join, headers=headers),
            await call(app, "POST", f"{SWARM}/report", report, headers=headers),
            await call(app, "GET", f"{SWARM}/view", query=view, headers=headers),
        ]
        for status, _, body in answers:
            assert status == 403, (headers, status, body)
            assert "credential" in json.loads(body)["error"]
    # Nothing changed: p0 is still registered, not seen since, in no new swarm; its report never arrived.
    assert p0.peer_id in scheduler.peers and scheduler.peers[p0.peer_id].last_seen == seen
    assert OTHER_DIGEST not in scheduler.swarms
    status, _, body = await call(app, "GET", f"{SWARM}/view", query=f"peer_id={p1.peer_id}&since=-1&wait=0",
                                 headers=p1.headers)
    assert status == 200 and json.loads(body)["piece_digests"] == ["", "", ""]
    assert scheduler.swarms[DIGEST].completed_members == 0
    # With its own credential p0 does all of it.
    assert (await call(app, "POST", f"{SWARM}/report", report, headers=p0.headers))[0] == 200
    status, _, body = await call(app, "GET", f"{SWARM}/view", query=f"peer_id={p1.peer_id}&since=-1&wait=0",
                                 headers=p1.headers)
    assert json.loads(body)["piece_digests"][0] == "c" * 64
    assert (await call(app, "DELETE", f"/api/v1/peers/{p0.peer_id}", headers=p0.headers))[0] == 204
    assert p0.peer_id not in scheduler.peers and p1.peer_id in scheduler.peers


async def test_a_register_again_issues_a_new_credential_and_the_old_one_stops_working() -> None:
    app, _ = supernode()
    first = await register(app, "p0")
    second = await register(app, "p0")
    assert second.credential != first.credential
    heartbeat = f"/api/v1/peers/{first.peer_id}/heartbeat"
    assert (await call(app, "POST", heartbeat, headers=first.headers))[0] == 403
    assert (await call(app, "POST", heartbeat, headers=second.headers))[0] == 204


async def test_the_listings_answer_a_registered_host_or_an_operator_only() -> None:
    app, _ = supernode()
    p0, p1 = await register(app, "p0"), await register(app, "p1")
    await call(app, "POST", f"{SWARM}/join", {"peer_id": p0.peer_id, "size": SIZE}, headers=p0.headers)
    refused: list[dict[str, str]] = [
        {},
        {PEER_HEADER: p0.peer_id},
        {CREDENTIAL_HEADER: p0.credential},  # whose? the listing is told by PEER_HEADER
        {PEER_HEADER: p0.peer_id, CREDENTIAL_HEADER: p1.credential},
        {PEER_HEADER: "nobody", CREDENTIAL_HEADER: p0.credential},
        operator_headers("wrong"),
        operator_headers(OPERATOR_TOKEN + "x"),
        operator_headers(OPERATOR_TOKEN[:-1]),
        {"Authorization": f"Basic {OPERATOR_TOKEN}"},
        {"Authorization": OPERATOR_TOKEN},
    ]
    for path in ("/api/v1/peers", "/api/v1/swarms", "/api/v1/suspects"):
        for headers in refused:
            status, _, body = await call(app, "GET", path, headers=headers)
            assert status == 403, (path, headers, status)
            assert set(json.loads(body)) == {"error"}
        for headers in (p0.headers, p1.headers, operator_headers(), {"authorization": f"bearer {OPERATOR_TOKEN}"}):
            status, _, body = await call(app, "GET", path, headers=headers)
            assert status == 200, (path, headers, status)
        # The operators' token stands in for the join token there, and nowhere else.
        assert (await call(app, "GET", path, token=None, headers=operator_headers()))[0] == 200
        assert (await call(app, "GET", path, token=None, headers=p0.headers))[0] == 401
    _, _, listed = await call(app, "GET", "/api/v1/peers", headers=operator_headers())
    assert {p["peer_id"] for p in json.loads(listed)["peers"]} == {p0.peer_id, p1.peer_id}
    _, _, listed = await call(app, "GET", "/api/v1/swarms", headers=p1.headers)
    assert [s["digest"] for s in json.loads(listed)["swarms"]] == [DIGEST]
    heartbeat = f"/api/v1/peers/{p0.peer_id}/heartbeat"
    assert (await call(app, "POST", heartbeat, token=None, headers={**p0.headers, **operator_headers()}))[0] == 401
    status, _, _ = await call(app, "POST", "/api/v1/peers", register_body("p2"), token=None, headers=operator_headers())
    assert status == 401


async def test_only_an_operator_clears_a_suspect() -> None:
    app, _ = supernode()
    p0, p1 = await register(app, "p0"), await register(app, "p1")
    path = f"/api/v1/suspects/{p1.peer_id}"
    for headers in ({}, p0.headers, p1.headers, operator_headers("wrong")):
        assert (await call(app, "DELETE", path, headers=headers))[0] == 403, headers
    # Past the door: nobody is a suspect here.
    assert (await call(app, "DELETE", path, headers=operator_headers()))[0] == 404
    assert (await call(app, "DELETE", path, token=None, headers=operator_headers()))[0] == 404
    assert (await call(app, "DELETE", path, token=None, headers=p0.headers))[0] == 401


async def test_without_an_operator_token_no_bearer_opens_the_listings() -> None:
    app, _ = supernode(operator_token="")
    p0 = await register(app, "p0")
    for headers in (operator_headers(""), operator_headers(OPERATOR_TOKEN), {"Authorization": "Bearer"}):
        assert (await call(app, "GET", "/api/v1/peers", headers=headers))[0] == 403, headers
        assert (await call(app, "GET", "/api/v1/peers", token=None, headers=headers))[0] == 401, headers
    assert (await call(app, "GET", "/api/v1/peers", headers=p0.headers))[0] == 200


async def test_a_restarted_supernode_takes_the_host_back_when_it_registers_again() -> None:
    before, _ = supernode()
    old = await register(before, "p0")
    after, scheduler = supernode()  # a new process: it remembers nobody
    heartbeat = f"/api/v1/peers/{old.peer_id}/heartbeat"
    assert (await call(after, "POST", heartbeat, headers=old.headers))[0] == 410  # register again
    # Nobody else can take the id first, though the new process has never seen it.
    status, _ = await post_register(after, {"peer_id": old.peer_id, "upload_port": 1, "peer_secret": "guess"})
    assert status == 403 and scheduler.peers == {}
    new = await register(after, "p0")
    assert new.peer_id == old.peer_id and new.credential != old.credential
    assert (await call(after, "POST", heartbeat, headers=new.headers))[0] == 204
    assert (await call(after, "POST", heartbeat, headers=old.headers))[0] == 403  # the old process's credential


async def test_the_secret_is_never_answered_or_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another test may have turned httpx's logger off or away from the root; this one must see what it logs.
    httpx_log = logging.getLogger("httpx")
    monkeypatch.setattr(httpx_log, "disabled", False)
    monkeypatch.setattr(httpx_log, "propagate", True)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    app, _ = supernode()
    secret = secret_of("p0")
    answers: list[bytes] = []
    status, _, body = await call(app, "POST", "/api/v1/peers", register_body("p0"))
    answers.append(body)
    p0 = registered("p0", json.loads(body))
    # Refused registers too: a wrong id with the secret, a bad field beside it, an address that is refused.
    for refused in (
        {"peer_id": "p0", "upload_port": 1, "peer_secret": secret},
        register_body("p0", upload_port=0),
        register_body("p0", advertise_host="10.9.9.9"),
        register_body("p0", labels="not a mapping"),
    ):
        status, _, body = await call(app, "POST", "/api/v1/peers", refused)
        assert status in (400, 403), refused
        answers.append(body)
    for method, path in (("POST", f"/api/v1/peers/{p0.peer_id}/heartbeat"), ("GET", "/api/v1/peers")):
        answers.append((await call(app, method, path, headers=p0.headers))[2])
    assert "peer_secret" not in json.loads(answers[0])
    assert all(secret.encode() not in body for body in answers)
    # The typed client, which logs its requests (httpx), and a refused one.
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=5.0)
    client = SupernodeClient("http://supernode/", http, join_token=TOKEN)
    again = await client.register(RegisterRequest.parse(register_body("p0")))
    await client.heartbeat(again.peer_id)
    with pytest.raises(CredentialRefused):
        await client.register(RegisterRequest(again.peer_id, 65002, "", {}, secret + "x"))
    await http.aclose()
    assert "HTTP Request" in caplog.text  # the log was captured
    for private in (secret, p0.credential, again.credential):
        assert private not in caplog.text
    # Nor where a request or an answer is printed.
    assert secret not in repr(RegisterRequest.parse(register_body("p0")))
    assert again.credential not in repr(again)
