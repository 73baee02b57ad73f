"""A host's identity with the real daemons: the peer keeps a bound id and its secret in its data directory, and
another process that knows the id (the listings and views show it) and even the cluster's join token can neither
take the id over nor remove or speak for the host. The secret appears in no log."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from supernode import routes
from supernode.identity import CREDENTIAL_HEADER, is_bound
from tests.faults.helpers import supernode_peers
from tests.support.cluster import DamselflyCluster
from tests.support.identities import OPERATOR_TOKEN, operator_headers
from tests.support.registry import RegistryServer

TOKEN = "join-token-of-the-identity-test"


def test_a_peer_is_its_bound_id_and_nobody_else_can_be(tmp_path: Path, registry: RegistryServer) -> None:
    with DamselflyCluster(
        tmp_path / "cluster", upstream_url=registry.url, peers_count=1, join_token=TOKEN, operator_token=OPERATOR_TOKEN
    ) as cluster:
        (peer,) = cluster.peers
        peer_id = str(peer.stats()["peer_id"])
        secret = (peer.data_dir / "peer-secret").read_text().strip()
        assert (peer.data_dir / "peer-id").read_text().strip() == peer_id
        assert is_bound(peer_id, secret)
        assert stat.S_IMODE((peer.data_dir / "peer-secret").stat().st_mode) == 0o600
        assert supernode_peers(cluster.supernode_url) == {peer_id}

        def listed_url() -> str:
            answer = httpx.get(cluster.supernode_url + routes.LIST_PEERS.url(), headers=operator_headers(),
                               timeout=5.0, trust_env=False)
            return str(next(p["url"] for p in answer.json()["peers"] if p["peer_id"] == peer_id))

        url = listed_url()
        joined = {"X-Damselfly-Token": TOKEN}
        with httpx.Client(base_url=cluster.supernode_url, headers=joined, timeout=5.0, trust_env=False) as intruder:
            taken = intruder.post(routes.REGISTER.url(), json={
                "peer_id": peer_id, "upload_port": 1, "advertise_host": "127.0.0.1", "peer_secret": "a guess",
            })
            assert taken.status_code == 403, taken.text
            for headers in ({}, {CREDENTIAL_HEADER: "a guess"}):
                assert intruder.delete(routes.LEAVE.url(peer_id=peer_id), headers=headers).status_code == 403
                assert intruder.post(routes.HEARTBEAT.url(peer_id=peer_id), headers=headers).status_code == 403
                assert intruder.get(routes.LIST_PEERS.url(), headers=headers).status_code == 403
        assert supernode_peers(cluster.supernode_url) == {peer_id} and listed_url() == url

        # Restarted, the host is the same peer, and registers again as itself.
        peer.restart()
        assert peer.stats()["peer_id"] == peer_id
        assert (peer.data_dir / "peer-secret").read_text().strip() == secret
        assert supernode_peers(cluster.supernode_url) == {peer_id}
        assert peer.log_path.read_text().count(f"registered with the supernode as {peer_id}") >= 1
    for log in (cluster.workdir / "supernode.log", peer.log_path):
        assert secret not in log.read_text(), log
