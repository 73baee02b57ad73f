"""The supernode under mutual TLS: a host's identity is its client certificate (supernode/identity.py).

Real processes: a supernode serving https with a client CA, two peers each with a certificate of its own, the real
registry as upstream. What must hold: a pull works through the swarm; each peer's id is its certificate's common
name; a connection without a certificate is refused at the handshake; a host cannot register, heartbeat, report
for or delete another with its own certificate.
"""

from __future__ import annotations

import secrets
import ssl
import sys
import time
from pathlib import Path

import httpx
import pytest

from supernode import routes
from supernode.api import TOKEN_HEADER
from tests.faults.helpers import MiB, check_store, pull_blob, push_blob, random_blob
from tests.support.cluster import env_with_token
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess
from tests.support.registry import RegistryServer
from tests.support.tls import IssuedCert, TestCA

ROOT = Path(__file__).resolve().parents[2]
REPO = "mtls/blob"


def _client(ca: TestCA, cert: IssuedCert | None, token: str) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    if cert is not None:
        context.load_cert_chain(str(cert.cert_path), str(cert.key_path))
    return httpx.Client(verify=context, headers={TOKEN_HEADER: token}, timeout=10.0, trust_env=False)


def _wait_https(url: str, ca: TestCA, cert: IssuedCert, token: str) -> None:
    deadline = time.monotonic() + 20.0
    with _client(ca, cert, token) as client:
        while True:
            try:
                if client.get(url + "/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)


def test_under_mutual_tls_a_host_is_its_certificate(tmp_path: Path, registry: RegistryServer) -> None:
    ca = TestCA.create(tmp_path / "ca")
    server = ca.issue(tmp_path / "supernode", "127.0.0.1")
    host_a, host_b = (ca.issue(tmp_path / name, name, client=True) for name in ("host-a", "host-b"))
    token = secrets.token_urlsafe(16)
    env = env_with_token(token)
    port = free_port()
    supernode_url = f"https://127.0.0.1:{port}"
    supernode = ManagedProcess(
        [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(tmp_path / "sn"),
         "--tls-cert", str(server.cert_path), "--tls-key", str(server.key_path), "--client-ca", str(ca.cert_path)],
        log_path=tmp_path / "supernode.log", env=env, cwd=ROOT, name="supernode",
    ).start()
    peers: list[ManagedProcess] = []
    try:
        _wait_https(supernode_url, ca, host_a, token)
        mirrors = []
        for name, cert in (("host-a", host_a), ("host-b", host_b)):
            mirror_port = free_port()
            peers.append(ManagedProcess(
                [sys.executable, "-m", "damselfly", "peer", "--supernode", supernode_url,
                 "--supernode-ca", str(ca.cert_path), "--tls-client-cert", str(cert.cert_path),
                 "--tls-client-key", str(cert.key_path), "--listen", f"127.0.0.1:{mirror_port}",
                 "--upload-listen", f"127.0.0.1:{free_port()}", "--files-listen", f"127.0.0.1:{free_port()}",
                 "--data-dir", str(tmp_path / name / "data"),
                 "--upstream", registry.url],
                log_path=tmp_path / f"{name}.log", env=env, cwd=ROOT, name=name,
                ready_url=f"http://127.0.0.1:{mirror_port}/healthz", ready_timeout=30.0,
            ).start())
            mirrors.append(f"http://127.0.0.1:{mirror_port}")

        data = random_blob(12 * MiB, seed=91)
        digest = push_blob(registry.url, REPO, data)
        for mirror in mirrors:
            assert pull_blob(mirror, REPO, digest).ok_for(digest, len(data))
        for name in ("host-a", "host-b"):
            assert check_store(tmp_path / name / "data").get(digest) == len(data)

        with _client(ca, host_a, token) as as_a:
            listed = as_a.get(supernode_url + routes.LIST_PEERS.url())
            assert listed.status_code == 200, listed.text
            # Each host is known by its certificate's common name, whatever id it had on disk.
            assert sorted(p["peer_id"] for p in listed.json()["peers"]) == ["host-a", "host-b"]
            swarms = as_a.get(supernode_url + routes.LIST_SWARMS.url()).json()["swarms"]
            assert [s["completed"] for s in swarms if s["digest"] == digest] == [2]
            # With its own certificate, host-a can speak for host-b in no way.
            assert as_a.post(supernode_url + routes.HEARTBEAT.url(peer_id="host-b")).status_code == 403
            assert as_a.delete(supernode_url + routes.LEAVE.url(peer_id="host-b")).status_code == 403
            report = {"peer_id": "host-b", "piece_digests": {"0": "0" * 64}, "bad_feeder": True}
            assert as_a.post(supernode_url + routes.REPORT.url(digest=digest), json=report).status_code == 403
            # Registering "as host-b" with host-a's certificate registers host-a, not host-b.
            body = {"peer_id": "host-b", "upload_port": 1}
            answer = as_a.post(supernode_url + routes.REGISTER.url(), json=body)
            assert answer.status_code == 200 and answer.json()["peer_id"] == "host-a"
            still = [p["peer_id"] for p in as_a.get(supernode_url + routes.LIST_PEERS.url()).json()["peers"]]
            assert "host-b" in still

        # No certificate: the handshake itself fails, no request is answered.
        with _client(ca, None, token) as stranger, pytest.raises(httpx.HTTPError):
            stranger.get(supernode_url + routes.LIST_PEERS.url())
    finally:
        for peer in peers:
            peer.stop()
        supernode.stop()
