"""Hosts, live, with real processes: a `damselfly supernode` hosting the platform, two `damselfly peer`s registering
with it, and the CLI. The hosts appear healthy with their labels and disk; a cluster's label scope places one; a
cordon reaches the supernode's scheduler; a peer killed goes down and stays listed. The heartbeat is made short
(`--heartbeat-interval`) so that none of it waits long."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.manager.test_cli import damselfly
from tests.support.cluster import DamselflyCluster
from tests.support.ports import free_port
from tests.support.procs import ProcessFactory

PASSWORD = "live-admin-pass"
INTERVAL = 0.3
QUOTA = 1 << 30


def _until(what: Callable[[], Any], seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_peers_show_as_hosts_live_are_placed_cordoned_and_go_down(
    process_factory: ProcessFactory, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process_factory(
        [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(tmp_path / "sn"), "--heartbeat-interval", str(INTERVAL)],
        env={"DAMSELFLY_ADMIN_PASSWORD": PASSWORD, "XDG_DATA_HOME": str(tmp_path / "xdg")},
        ready_url=f"{url}/healthz", name="supernode",
    )
    _until(lambda: damselfly(["host", "list", "--server", url, "--token", "x"], tmp_path).stderr.find("503") < 0)
    cluster = DamselflyCluster(tmp_path / "peers", upstream_url="http://127.0.0.1:9", peers_count=0,
                               supernode_port=port)
    try:
        cluster.add_peer(0, ["--label", "zone=z1", "--disk-quota", "1GiB"])
        cluster.add_peer(1, ["--label", "zone=z2"])
        home = tmp_path / "home"
        login = damselfly(["login", "--server", url, "--username", "admin", "--password-stdin"], home, PASSWORD + "\n")
        assert login.returncode == 0, login.stderr

        def hosts(*extra: str) -> list[dict[str, Any]]:
            listed = damselfly(["host", "list", "--json", *extra], home)
            assert listed.returncode == 0, listed.stderr
            result: list[dict[str, Any]] = json.loads(listed.stdout)
            return result

        def healthy() -> list[dict[str, Any]]:
            found = [h for h in hosts("--state", "healthy") if h["disk"]["total"]]
            return found if len(found) == 2 else []

        found = _until(healthy)
        assert len(found) == 2, hosts()
        by_zone = {h["labels"]["zone"]: h for h in found}
        z1, z2 = by_zone["z1"], by_zone["z2"]
        assert z1["disk"]["quota"] == QUOTA and z2["disk"]["quota"] == 0
        assert z1["hostname"] and z1["version"] and z1["address"].startswith("http://127.0.0.1:")

        made = damselfly(["cluster", "create", "zone1", "--label", "zone=z1"], home)
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip().startswith("dfc_")
        assert [h["id"] for h in hosts("--cluster", "zone1")] == [z1["id"]]
        assert "zone1" in damselfly(["cluster", "list"], home).stdout

        cordon = damselfly(["host", "cordon", z2["id"]], home)
        assert cordon.returncode == 0 and cordon.stderr == "", cordon.stderr
        shown = json.loads(damselfly(["host", "show", z2["id"]], home).stdout)
        assert shown["cordoned"] and shown["cordon"]["by"] == "admin"

        # Killed (no leave): unheard, then expired by the supernode: down, and still listed with its last-seen.
        cluster.peers[1].process.kill_hard()
        gone = _until(lambda: [h for h in hosts("--state", "down") if h["id"] == z2["id"]])
        assert gone, hosts()
        assert gone[0]["last_seen"] and gone[0]["labels"] == {"zone": "z2"} and gone[0]["cordoned"]
        assert [h["id"] for h in hosts("--state", "healthy")] == [z1["id"]]

        assert damselfly(["cluster", "delete", "zone1"], home).returncode == 0
        viewer = damselfly(["user", "create", "vic", "--role", "viewer", "--password-stdin"], home, "vic-pass-123\n")
        assert viewer.returncode == 0, viewer.stderr
        vic = tmp_path / "vic"
        assert damselfly(["login", "--server", url, "--username", "vic", "--password-stdin"], vic,
                         "vic-pass-123\n").returncode == 0
        refused = damselfly(["host", "uncordon", z2["id"]], vic)
        assert (refused.returncode, refused.stderr) == (1, "damselfly host uncordon: 403 missing permission "
                                                           "targets:write\n")
        assert len(damselfly(["host", "list", "--json"], vic).stdout) > 2
    finally:
        cluster.stop()


@pytest.mark.parametrize("state", ["asleep"])
def test_a_bad_state_is_refused_by_the_cli(state: str, tmp_path: Path) -> None:
    bad = damselfly(["host", "list", "--state", state, "--server", "http://127.0.0.1:9", "--token", "x"], tmp_path)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
