"""The traffic analysis with real processes: a real registry, a `damselfly supernode` hosting the platform (sampling
the hosts' counters every fraction of a second), two `damselfly peer`s. A blob pulled through the first host comes
from the upstream once; pulled through the second, from the first: the analysis says so, to the byte, and that half
of what was fetched did not cost the upstream anything."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.faults.helpers import pull_blob, push_blob, random_blob
from tests.manager.test_cli import damselfly
from tests.manager.test_hosts_live import _until
from tests.support.cluster import DamselflyCluster
from tests.support.ports import free_port
from tests.support.procs import ProcessFactory
from tests.support.registry import RegistryServer

PASSWORD = "analysis-admin-pass"
SIZE = 3 * 1024 * 1024 + 17
REPO = "analysis/blob"


def test_analysis_counts_the_upstreams_bytes_once_and_the_peers_share_as_saved(
    process_factory: ProcessFactory, registry: RegistryServer, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process_factory(
        [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(tmp_path / "sn"), "--heartbeat-interval", "0.3", "--traffic-every", "0.3"],
        env={"DAMSELFLY_ADMIN_PASSWORD": PASSWORD, "XDG_DATA_HOME": str(tmp_path / "xdg")},
        ready_url=f"{url}/healthz", name="supernode",
    )
    home = tmp_path / "home"
    _until(lambda: damselfly(["login", "--server", url, "--username", "admin", "--password-stdin"], home,
                             PASSWORD + "\n").returncode == 0)
    cluster = DamselflyCluster(tmp_path / "peers", upstream_url=registry.url, peers_count=0, supernode_port=port)
    try:
        first, second = cluster.add_peer(0), cluster.add_peer(1)
        data = random_blob(SIZE, seed=13)
        digest = push_blob(registry.url, REPO, data)
        registry.reset_counts()
        for peer in (first, second):
            pulled = pull_blob(peer.mirror_url, REPO, digest)
            assert (pulled.status, pulled.error, pulled.digest) == (200, "", digest), pulled
        assert registry.served_bytes() == SIZE

        def totals() -> dict[str, Any]:
            shown = damselfly(["analysis", "--since", "2h", "--json"], home)
            assert shown.returncode == 0, shown.stderr
            answer: dict[str, Any] = json.loads(shown.stdout)["totals"]
            # Sampled: both hosts' counters have been heard, and taken, once the peers' share is in.
            return answer if answer["fetched_peers"] >= SIZE and answer["served_clients"] >= 2 * SIZE else {}

        found = _until(totals)
        assert found == {"fetched_upstream": SIZE, "fetched_peers": SIZE, "served_peers": SIZE,
                         "served_clients": 2 * SIZE, "saved_ratio": 0.5}, found
        # The same bytes as the registry's log and the peers' own counters say.
        assert first.stats()["bytes_from_upstream"] == SIZE and second.stats()["bytes_from_peers"] == SIZE

        hosts = {h["id"]: h for h in json.loads(damselfly(["host", "list", "--json"], home).stdout)}
        assert len(hosts) == 2
        metrics = _metrics(url, home)
        fed = [host for host, value in metrics["damselfly_host_fetched_upstream_bytes_total"].items() if value]
        assert metrics["damselfly_host_fetched_upstream_bytes_total"][fed[0]] == SIZE and len(fed) == 1
        other = next(h for h in hosts if h != fed[0])
        assert metrics["damselfly_host_fetched_peers_bytes_total"][other] == SIZE

        # One host's series: the second's fetched everything from peers.
        per_host = json.loads(damselfly(["analysis", "--host", other, "--json"], home).stdout)
        assert per_host["totals"]["saved_ratio"] == 1.0
        table = damselfly(["analysis", "--since", "2h", "--step", "day"], home)
        assert table.returncode == 0 and table.stdout.splitlines()[0].split() == [
            "start", "fetched_upstream", "fetched_peers", "served_peers", "served_clients", "saved"]
        assert table.stdout.splitlines()[-1].split()[0] == "total" and "50.0%" in table.stdout
        rows = list(csv.reader(io.StringIO(damselfly(["analysis", "--csv"], home).stdout)))
        assert rows[0][0] == "start" and sum(int(row[1]) for row in rows[1:]) == SIZE
        refused = damselfly(["analysis", "--cluster", "nope"], home)
        assert (refused.returncode, refused.stderr) == (1, "damselfly analysis: 404 no cluster 'nope'\n")
    finally:
        cluster.stop()


def _metrics(url: str, home: Path) -> dict[str, dict[str, int]]:
    """The Prometheus text of `/api/v1/analysis/metrics`, read with the session `damselfly login` stored."""
    token = json.loads((home / "damselfly" / "session.json").read_text())["token"]
    answer = httpx.get(f"{url}/api/v1/analysis/metrics", headers={"Authorization": f"Bearer {token}"},
                       timeout=10.0, trust_env=False)
    assert answer.status_code == 200, answer.text
    found: dict[str, dict[str, int]] = {}
    for line in answer.text.splitlines():
        if line.startswith("#") or '{host="' not in line:
            continue  # comments, and the metrics that are not per host (the tasks by state)
        name, _, rest = line.partition('{host="')
        host, _, value = rest.partition('"} ')
        found.setdefault(name, {})[host] = int(value)
    return found
