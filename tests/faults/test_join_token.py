"""Authentication inside the cluster: without the join token a process can neither join the supernode nor fetch
pieces from any peer's upload server; with it, the swarm works as usual.

Both checks compare with `hmac.compare_digest` (supernode/server.py `guarded`, peer/upload_server.py): constant
time, which a test on loopback cannot measure meaningfully, so it is stated here and reviewed, not timed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from supernode import routes
from tests.faults.helpers import MiB, pull_blob, push_blob, random_blob, supernode_peers
from tests.support.cluster import DamselflyCluster, env_with_token
from tests.support.identities import OPERATOR_TOKEN, operator_headers
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess
from tests.support.registry import RegistryServer

TOKEN = "join-token-of-the-cluster"
REPO = "faults/token"
PIECE = 4 * MiB


def test_without_the_token_no_join_and_no_pieces(tmp_path: Path, registry: RegistryServer) -> None:
    data = random_blob(10 * MiB, seed=9000)
    digest = push_blob(registry.url, REPO, data)
    with DamselflyCluster(
        tmp_path / "cluster", upstream_url=registry.url, peers_count=2, join_token=TOKEN, operator_token=OPERATOR_TOKEN
    ) as cl:
        ids = {p.stats()["peer_id"] for p in cl.peers}
        assert supernode_peers(cl.supernode_url) == ids  # peers with the token joined

        # The supernode's API refuses every call without the right token: every route but the probes', so a
        # route added later is checked too. The peer in paths is a real one, which the DELETE must not remove.
        # The operators' token stands in for the join token on the operators' routes only (the listings, clearing a
        # suspect: there is none here, so it is answered 404 past the door, and the platform's jobs).
        path_params = {"peer_id": sorted(ids)[0], "digest": digest, "job_id": "no-such-job"}
        bodies: dict[routes.ApiRoute, dict[str, object]] = {
            routes.REGISTER: {"peer_id": "intruder", "upload_port": 1},
            routes.JOIN: {"peer_id": "intruder", "size": 1},
            routes.REPORT: {"peer_id": "intruder"},
        }
        guarded = [route for route in routes.ROUTES if route not in (routes.HEALTHZ, routes.METRICS)]
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            for token in (None, "", "wrong", TOKEN + "x", TOKEN[:-1]):
                headers = {} if token is None else {"X-Damselfly-Token": token}
                for route in guarded:
                    filled = {route.param: path_params[route.param]} if route.param else {}
                    url = cl.supernode_url + route.url(**filled)
                    query = {"peer_id": "intruder"} if route is routes.VIEW else None
                    response = client.request(
                        route.method, url, json=bodies.get(route), params=query, headers=headers
                    )
                    assert response.status_code == 401, (token, route.name, response.status_code)
            for route in guarded:
                filled = {route.param: path_params[route.param]} if route.param else {}
                query = {"peer_id": "intruder"} if route is routes.VIEW else None
                response = client.request(
                    route.method, cl.supernode_url + route.url(**filled), json=bodies.get(route), params=query,
                    headers=operator_headers(),
                )
                # The jobs' and the cordon's: a put without a body is refused past the door (400); no job to cancel.
                operators = {routes.LIST_PEERS: 200, routes.LIST_SWARMS: 200, routes.LIST_SUSPECTS: 200,
                             routes.CLEAR_SUSPECT: 404, routes.SET_CORDONED: 400, routes.PUT_JOB: 400,
                             routes.CANCEL_JOB: 404,
                             routes.LIST_JOB_PROGRESS: 200,
                             # A manager alone reads the supernode directory too; this one runs without Redis.
                             routes.LIST_SUPERNODES: 404}
                expected = operators.get(route, 401)
                assert response.status_code == expected, (route.name, response.status_code)
        assert supernode_peers(cl.supernode_url) == ids  # the DELETE above removed nobody

        # A peer daemon started with a wrong token never joins, and says why.
        mirror_port, upload_port = free_port(), free_port()
        intruder = ManagedProcess(
            [sys.executable, "-m", "damselfly", "peer", "--supernode", cl.supernode_url,
             "--listen", f"127.0.0.1:{mirror_port}", "--upload-listen", f"127.0.0.1:{upload_port}",
             "--files-listen", f"127.0.0.1:{free_port()}",
             "--data-dir", str(tmp_path / "intruder"), "--upstream", registry.url, "--supernode-timeout", "2"],
            log_path=tmp_path / "intruder.log", env=env_with_token("not-the-token"),
            cwd=Path(__file__).resolve().parents[2], name="intruder",
        ).start()
        code = intruder.wait_exit(30.0)
        assert code != 0
        assert "refused our join token" in intruder.log_text()
        assert supernode_peers(cl.supernode_url) == ids

        # Pieces: a peer holding the blob hands them out only for the token.
        holder, other = cl.peers
        assert pull_blob(holder.mirror_url, REPO, digest).ok_for(digest, len(data))
        piece_url = f"http://127.0.0.1:{holder.upload_port}/pieces/{digest}/1"
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            # One kept-alive connection for all the refusals: answers to HEAD carry no body to confuse the next.
            for token in (None, "", "wrong", TOKEN.upper(), TOKEN + " x"):
                headers = {} if token is None else {"X-Damselfly-Token": token}
                for method in ("GET", "HEAD"):
                    refused = client.request(method, piece_url, headers=headers)
                    assert refused.status_code == 401, (token, method, refused.status_code)
                    assert data[PIECE : 2 * PIECE][:64] not in refused.content
            allowed = client.get(piece_url, headers={"X-Damselfly-Token": TOKEN})
            assert allowed.status_code == 200
            assert allowed.content == data[PIECE : 2 * PIECE]

        # And with the token the swarm works: the second host takes the blob from the first.
        assert pull_blob(other.mirror_url, REPO, digest).ok_for(digest, len(data))
        assert other.stats()["bytes_from_peers"] == len(data)
