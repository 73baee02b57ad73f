"""Distribution tasks from the operator's command line to the hosts' stores, with every part real: a registry, an
nginx origin, a `damselfly supernode` hosting the platform, four `damselfly peer`s whose agents run the jobs.

Each peer runs in its own mount namespace in which one directory, the same path for all, is the peer's own
(a bind mount of a directory of its own): so "this path on these hosts" can be checked on one machine, by
reading each host's directory from outside.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.manager.test_cli import damselfly
from tests.manager.test_hosts_live import _until
from tests.support.cluster import DamselflyCluster, PeerProcess
from tests.support.images import ImageCache, push_image, push_index
from tests.support.jobs import host_id, stored
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port
from tests.support.procs import ProcessFactory
from tests.support.registry import RegistryServer

PASSWORD = "tasks-e2e-admin-pass"
MiB = 1024 * 1024
# Run `damselfly peer` with `landing` bound to `own` in a mount namespace of its own.
BIND_AND_RUN = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'


def _task(home: Path, task_id: str) -> dict[str, Any]:
    shown = damselfly(["task", "show", task_id, "--json"], home)
    assert shown.returncode == 0, shown.stderr
    answer: dict[str, Any] = json.loads(shown.stdout)
    return answer


def _until_task(home: Path, task_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        task = _task(home, task_id)
        if done(task):
            return task
        assert time.monotonic() < deadline, json.dumps(task, indent=1)[:3000]
        time.sleep(0.3)


def _create(home: Path, *args: str) -> str:
    made = damselfly(["task", "create", *args, "--json"], home)
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["id"])


@pytest.mark.root
def test_tasks_from_the_command_line_land_on_exactly_the_targeted_hosts(
    process_factory: ProcessFactory, registry: RegistryServer, image_cache: ImageCache, tmp_path: Path
) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare: each peer gets a mount namespace of its own")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process_factory(
        [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(tmp_path / "sn"), "--heartbeat-interval", "0.5"],
        env={"DAMSELFLY_ADMIN_PASSWORD": PASSWORD, "XDG_DATA_HOME": str(tmp_path / "xdg")},
        ready_url=f"{url}/healthz", name="supernode",
    )
    home = tmp_path / "home"
    _until(lambda: damselfly(["login", "--server", url, "--username", "admin", "--password-stdin"], home,
                             PASSWORD + "\n").returncode == 0)
    landing = tmp_path / "landing"  # the same path on every host; each host's own directory behind it
    landing.mkdir()
    with NginxOrigin(tmp_path / "nginx") as nginx:
        cluster = DamselflyCluster(
            tmp_path / "peers", upstream_url=registry.url, peers_count=0, supernode_port=port,
            config_text=f'[peer]\nfile_job_dirs = "{landing}"\n\n[[file_origin]]\nurl = "{nginx.url}/"\n',
        )
        (tmp_path / "peers").mkdir()
        try:
            peers: list[PeerProcess] = []
            owns: list[Path] = []
            for index in range(4):
                own = tmp_path / f"host{index}-files"
                own.mkdir()
                owns.append(own)
                wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c", BIND_AND_RUN, "sh", str(own),
                        str(landing)]
                # Host 2 is the one the label names; host 3 is named by nothing.
                zone = ["--label", "zone=b" if index == 2 else "zone=a"]
                peers.append(cluster.add_peer(index, extra_args=zone, wrap=wrap))
            all_ids = [host_id(peer) for peer in peers]
            ids, bystander = all_ids[:3], peers[3]

            def listed_healthy() -> bool:
                hosts = json.loads(damselfly(["host", "list", "--json"], home).stdout)
                return bool(sum(h["state"] == "healthy" for h in hosts if h["id"] in ids) == len(ids))

            _until(listed_healthy)

            # A multi-arch index; its amd64 image to two hosts by id and one by label: every blob of that image in
            # the stores of exactly those three, the upstream sending about one copy; none of the arm64 image's.
            image = push_image(image_cache.get([2 * MiB, 3 * MiB, 4 * MiB], seed=303), registry.url, "e2e/app",
                               "amd64")
            other = push_image(image_cache.get([1 * MiB, 2 * MiB], architecture="arm64", seed=313), registry.url,
                               "e2e/app", "arm64")
            push_index(registry.url, "e2e/app", "v1", [image, other])
            size = sum(s for _, s in image.blobs)
            registry.reset_counts()
            task_id = _create(home, "image", "e2e/app:v1", "--platform", "linux/amd64", "--hosts",
                              ",".join(ids[:2]), "--selector", "zone=b")
            task = _until_task(home, task_id, lambda t: t["state"] in ("succeeded", "failed", "stopped"))
            assert task["state"] == "succeeded", json.dumps(task, indent=1)[:3000]
            assert {h["host"] for h in task["hosts"]} == set(ids)
            for host in task["hosts"]:
                assert (host["state"], host["bytes_done"], host["bytes_total"]) == ("succeeded", size, size), host
                assert {b["digest"] for b in host["blobs"]} == {d for d, _ in image.blobs}
            for peer in peers[:3]:
                for digest, blob_size in image.blobs:
                    path = stored(peer, digest)
                    assert path.stat().st_size == blob_size
                    assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == digest
                for digest, _ in other.blobs:
                    assert not stored(peer, digest).exists(), f"the arm64 blob {digest} landed on {peer.index}"
            for digest, _ in [*image.blobs, *other.blobs]:
                assert not stored(bystander, digest).exists(), f"{digest} landed on the host no target named"
            assert task["totals"]["from_peers"] > 0, "the hosts shared nothing"
            assert registry.served_bytes() <= 1.1 * size, registry.served_bytes()
            assert task["totals"]["from_upstream"] + task["totals"]["from_peers"] == 3 * size
            # The task's figures: every host succeeded; the bytes the hosts fetched, and what the peers spared.
            shown = damselfly(["analysis", "--task", task_id, "--json"], home)
            assert shown.returncode == 0, shown.stderr
            figures = json.loads(shown.stdout)
            assert (figures["hosts"], figures["succeeded"], figures["success_rate"]) == (3, 3, 1.0)
            assert figures["from_upstream"] == task["totals"]["from_upstream"] <= 1.1 * size
            # What the analysis says the upstream sent is what the upstream's own log says it sent.
            assert figures["from_upstream"] == registry.served_bytes(), (figures, registry.served_bytes())
            assert figures["from_peers"] == task["totals"]["from_peers"]
            assert figures["saved_ratio"] >= 0.5  # two of three copies, about, came from peers
            assert 0 < figures["host_p50"] <= figures["host_p95"] <= figures["host_max"] <= figures["duration"]

            # A file on two of the three hosts: at the path on exactly those, with its sha256.
            data = os.urandom(5 * MiB + 11)
            (nginx.root / "tool.tar").write_bytes(data)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            file_task = _create(home, "file", f"{nginx.url}/tool.tar", "--path", str(landing / "tool.tar"),
                                "--digest", digest, "--host", ids[0], "--host", ids[2])
            done = _until_task(home, file_task, lambda t: t["state"] in ("succeeded", "failed", "stopped"))
            assert done["state"] == "succeeded", json.dumps(done, indent=1)[:3000]
            assert {h["host"] for h in done["hosts"]} == {ids[0], ids[2]}
            assert (owns[0] / "tool.tar").read_bytes() == data and (owns[2] / "tool.tar").read_bytes() == data
            assert list(owns[1].iterdir()) == [] and list(owns[3].iterdir()) == [] and list(landing.iterdir()) == []
            assert nginx.sent_bytes("/tool.tar") <= 1.1 * len(data)

            # A task held to a slow rate, stopped: every host's job stops within seconds, the task is `stopped`.
            push_image(image_cache.get([24 * MiB], seed=304), registry.url, "e2e/slow", "v1")
            slow_task = _create(home, "image", "e2e/slow:v1", "--hosts", ",".join(ids), "--rate", "1MB/s")
            _until_task(home, slow_task, lambda t: all(h["bytes_done"] > 0 for h in t["hosts"]))
            # The task's rate holds on every host, as the task's own figures show over a few seconds: none moves
            # faster (progress is reported about every second, so a window's edges move a figure by a second's
            # bytes), and the one fetching from the upstream moves at about the rate (the others take its pieces a
            # piece behind it).
            before, began = _task(home, slow_task), time.monotonic()
            time.sleep(5)
            after, lasted = _task(home, slow_task), time.monotonic() - began
            rates = [(new["bytes_done"] - old["bytes_done"]) / lasted
                     for old, new in zip(before["hosts"], after["hosts"], strict=True)]
            assert max(rates) <= 1.5e6 and max(rates) >= 0.5e6, rates
            stopped = damselfly(["task", "stop", slow_task], home)
            assert stopped.returncode == 0, stopped.stderr
            asked = time.monotonic()
            ended = _until_task(home, slow_task, lambda t: t["state"] == "stopped", timeout=20)
            assert time.monotonic() - asked < 15
            assert all(h["state"] == "stopped" for h in ended["hosts"]), ended["hosts"]
            assert all(h["bytes_done"] < h["bytes_total"] for h in ended["hosts"])
            # Over the tasks: one per line in the CSV; the metrics count them by state.
            table = damselfly(["analysis", "--tasks", "--csv"], home)
            assert table.returncode == 0, table.stderr
            lines = table.stdout.splitlines()
            assert lines[0].startswith("id,kind,state,") and len(lines) == 4
            states = {line.split(",")[0]: line.split(",")[2] for line in lines[1:]}
            assert states == {task_id: "succeeded", file_task: "succeeded", slow_task: "stopped"}
            # The task's log says who did what.
            events = damselfly(["task", "events", slow_task], home)
            assert events.returncode == 0 and "admin" in events.stdout and "stop" in events.stdout, events.stdout
        finally:
            cluster.stop()
