"""A host joins a cluster with its join token, with real processes: a `damselfly supernode` hosting the platform, a
`damselfly peer` started with `--cluster-token-file` holding a cluster's token, and one without. The first is listed
in that cluster though no scope of it matches the host; after the token's rotation it is not. The token is never in
an answer of the platform or the supernode, nor in the log of either daemon (logging at debug)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.manager.test_cli import damselfly
from tests.manager.test_hosts_live import _until
from tests.support.cluster import DamselflyCluster
from tests.support.ports import free_port
from tests.support.procs import ProcessFactory

PASSWORD = "join-admin-pass"
OPERATOR_TOKEN = "operators-token-for-the-listing-0123456789"


def test_a_host_joins_a_cluster_by_its_token_and_leaves_it_at_rotation(
    process_factory: ProcessFactory, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    supernode_log = tmp_path / "supernode.log"
    process_factory(
        [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(tmp_path / "sn"), "--heartbeat-interval", "0.3", "--log-level", "debug"],
        env={"DAMSELFLY_ADMIN_PASSWORD": PASSWORD, "XDG_DATA_HOME": str(tmp_path / "xdg"),
             "DAMSELFLY_OPERATOR_TOKEN": OPERATOR_TOKEN},
        ready_url=f"{url}/healthz", name="supernode", log_path=supernode_log,
    )
    home = tmp_path / "home"
    _until(lambda: damselfly(["login", "--server", url, "--username", "admin", "--password-stdin"], home,
                             PASSWORD + "\n").returncode == 0)
    answers: list[str] = []

    def cli(*args: str) -> str:
        done = damselfly(list(args), home)
        assert done.returncode == 0, done.stderr
        answers.append(done.stdout + done.stderr)
        return done.stdout

    # No scope at all: only the token can place a host in it.
    token = cli("cluster", "create", "joiners", "--description", "hosts that joined by token").strip()
    assert token.startswith("dfc_")
    token_file = tmp_path / "cluster-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    cluster = DamselflyCluster(tmp_path / "peers", upstream_url="http://127.0.0.1:9", peers_count=0,
                               supernode_port=port)
    try:
        joiner = cluster.add_peer(0, ["--cluster-token-file", str(token_file), "--log-level", "debug"])
        cluster.add_peer(1, ["--log-level", "debug"])

        def hosts(*extra: str) -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = json.loads(cli("host", "list", "--json", *extra))
            return result

        every = _until(lambda: (lambda found: found if len(found) == 2 else [])(hosts("--state", "healthy")))
        assert len(every) == 2
        joined = _until(lambda: hosts("--cluster", "joiners"))
        assert len(joined) == 1 and joined[0]["clusters"] == ["joiners"]
        joiner_id = joined[0]["id"]
        other = next(h for h in every if h["id"] != joiner_id)
        assert other["clusters"] == []
        shown = cli("host", "show", joiner_id)
        cli("cluster", "show", "joiners")

        # The supernode's operators' listing names the token's hash, never the token.
        listing = httpx.get(f"{url}/api/v1/peers", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
                            timeout=10.0, trust_env=False)
        assert listing.status_code == 200
        answers.append(listing.text)
        by_id = {p["peer_id"]: p for p in listing.json()["peers"]}
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert by_id[joiner_id]["cluster_token_hash"] == digest and by_id[other["id"]]["cluster_token_hash"] == ""
        # The platform shows neither.
        assert digest not in shown

        rotated = cli("cluster", "token", "joiners").strip()
        assert rotated.startswith("dfc_") and rotated != token
        assert hosts("--cluster", "joiners") == []
        assert json.loads(cli("host", "show", joiner_id))["clusters"] == []
    finally:
        cluster.stop()
    # The first answer held the token (its creation): every other answer, and every log, holds none.
    assert all(token not in text for text in answers[1:]), "a cluster token in an answer"
    logs = {path.name: path.read_text(errors="replace") for path in (supernode_log, *cluster.workdir.glob("*.log"))}
    assert len(logs) == 3 and all(logs.values())
    for name, text in logs.items():
        assert token not in text and rotated not in text, f"a cluster token in {name}"
    assert "registered with the supernode" in logs[joiner.log_path.name]
