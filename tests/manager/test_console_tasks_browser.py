"""The console's tasks and analysis pages in a real browser (Debian's chromium, driven by Playwright) against a real
`damselfly supernode` hosting the platform, a real docker-registry and two real `damselfly peer`s that run the
tasks' jobs: a task made from the form fills its live grid (server-sent events, no reload) to 100% on every host,
a rate-limited one is stopped from its page, a viewer gets no controls (and a forged POST a 403), the analysis chart
draws the hosts' pulls.

Screenshots land in the test's tmp dir (`console-*.png`); `DAMSELFLY_CONSOLE_SHOTS=docs/console` copies the task's
and the analysis page's into the docs.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.helpers import pull_blob, push_blob, random_blob
from tests.manager.test_console_browser import (
    DESKTOP,
    _until,
    copy_for_the_docs,
    log_in,
    shot,
)
from tests.support.cluster import DamselflyCluster
from tests.support.fixtures import require_binary
from tests.support.images import ImageCache, PushedImage, push_image
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess
from tests.support.registry import RegistryServer

sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra's playwright is not installed")

pytestmark = pytest.mark.slow
PASSWORD = "console-tasks-admin"
VIEWER_PASSWORD = "viewer-pass-456"
MiB = 1024 * 1024
INTERVAL = 0.3


@dataclass
class Platform:
    url: str
    shots: Path
    hosts: list[str]
    cluster: DamselflyCluster
    registry: RegistryServer
    supernode: ManagedProcess
    token: str = ""

    def log_in(self) -> bool:
        login = httpx.post(self.url + "/api/v1/login", json={"username": "admin", "password": PASSWORD},
                           timeout=10, trust_env=False)
        self.token = login.json()["token"] if login.status_code == 200 else ""
        return bool(self.token)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, trust_env=False, **kwargs)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    require_binary("docker-registry")
    work = tmp_path_factory.mktemp("console-tasks")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with RegistryServer(work / "registry") as registry:
        supernode = ManagedProcess(
            [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{port}",
             "--data-dir", str(work / "sn"), "--heartbeat-interval", str(INTERVAL), "--traffic-every", str(INTERVAL)],
            env={"DAMSELFLY_ADMIN_PASSWORD": PASSWORD, "XDG_DATA_HOME": str(work / "xdg")},
            log_path=work / "supernode.log", ready_url=f"{url}/healthz", name="supernode",
        ).start()
        peers = DamselflyCluster(work / "peers", upstream_url=registry.url, peers_count=0, supernode_port=port)
        try:
            made = Platform(url, work, [], peers, registry, supernode)
            assert _until(made.log_in), "the platform did not come up"
            peers.add_peer(0)
            peers.add_peer(1)

            def healthy() -> list[str]:
                listed = made.api("GET", "/api/v1/hosts?state=healthy").json()["items"]
                return sorted(h["id"] for h in listed) if len(listed) == 2 else []

            made.hosts = _until(healthy, 30.0)
            assert made.hosts, "the two peers never showed as healthy hosts"
            viewer = made.api("POST", "/api/v1/users", json={"name": "vera", "role": "viewer",
                                                              "password": VIEWER_PASSWORD})
            assert viewer.status_code == 201, viewer.text
            yield made
            copy_for_the_docs(work, ("task", "analysis"))
        finally:
            peers.stop()
            supernode.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def pushed(platform: Platform, image_cache: ImageCache) -> PushedImage:
    return push_image(image_cache.get([1 * MiB, 2 * MiB, 3 * MiB], seed=91), platform.registry.url,
                      "console/app", "v1")


def test_a_task_made_from_the_form_fills_its_live_grid_to_100_percent_on_every_host(
    page: Any, platform: Platform, pushed: PushedImage
) -> None:
    log_in(page, platform, "admin", PASSWORD)  # type: ignore[arg-type]
    page.goto(platform.url + "/console/tasks")
    page.click("#new-task")
    page.fill("#n-reference", pushed.ref)
    page.fill("#n-hosts", " ".join(platform.hosts))
    # A rate keeps the task running for a few seconds: the grid is seen moving, not only finished.
    page.fill("#n-rate", "2MiB/s")
    page.click("#dry-run")
    result = page.locator("#dry-run-result")
    result.wait_for()
    # Both hosts lack every blob; the upstream sends one copy of each.
    assert page.locator("#upstream-bytes").inner_text() == "6.0 MiB"
    assert page.locator("#bytes-to-move").inner_text() == "12.0 MiB"
    for host in platform.hosts:
        assert page.locator(f'#dry-run-hosts tr[data-host="{host}"] code').count() == len(pushed.blobs)
    # What was typed is still there for the real thing.
    assert page.locator("#n-reference").input_value() == pushed.ref
    shot(page, platform, "task-dry-run")  # type: ignore[arg-type]
    page.click("#create")
    page.wait_for_url(re.compile(r".*/console/tasks/\d+$"))
    task_id = page.url.rsplit("/", 1)[1]
    # A marker on this document: a reload would lose it.
    page.evaluate("window.loadedOnce = 'still the same document'")
    assert page.locator("#task").get_attribute("data-final") == "false"
    page.wait_for_function(
        """(hosts) => {
            const rows = [...document.querySelectorAll('#grid tbody tr[data-host]')];
            return rows.length === hosts && rows.every(r => r.querySelector('td.total').textContent === '100%')
                && document.getElementById('task-state').textContent === 'succeeded';
        }""", arg=len(platform.hosts), timeout=60_000)
    assert page.evaluate("window.loadedOnce") == "still the same document"
    assert int(page.locator("#task").get_attribute("data-updates")) >= 2
    # Every cell of the grid: one per host and blob, each whole.
    cells = page.locator("#grid td.blob")
    assert cells.count() == len(platform.hosts) * len(pushed.blobs)
    assert set(cells.all_inner_texts()) == {"100%"}
    assert set(page.locator("#grid td.blob").evaluate_all("cells => cells.map(c => c.dataset.state)")) == {
        "succeeded"}
    log = page.locator("#events tbody").inner_text()
    assert "created" in log and "succeeded" in log
    assert "finished" in page.locator("#when").inner_text()
    # The controls follow the state: a finished task is deleted, not stopped.
    assert page.locator("#stop-form").is_hidden() and page.locator("#delete-form").is_visible()
    # Its figures came with the stream's end, still without a reload; half of its bytes came from peers.
    page.wait_for_function("() => !document.getElementById('figures-section').hidden", timeout=10_000)
    assert page.evaluate("window.loadedOnce") == "still the same document"
    assert page.locator("#task-saved").inner_text().startswith("50.0%")
    assert page.locator("#fig-succeeded").inner_text().startswith(f"{len(platform.hosts)} of {len(platform.hosts)}")
    # Loaded again, finished: the same figures, drawn by the server.
    page.reload()
    assert page.locator("#task-saved").inner_text().startswith("50.0%")
    shot(page, platform, "task")  # type: ignore[arg-type]
    shown = platform.api("GET", f"/api/v1/tasks/{task_id}").json()
    assert shown["state"] == "succeeded"
    assert shown["totals"]["bytes_done"] == len(platform.hosts) * pushed.total_blob_bytes


def test_a_rate_limited_task_is_stopped_from_its_page(
    page: Any, platform: Platform, image_cache: ImageCache
) -> None:
    slow = push_image(image_cache.get([8 * MiB], seed=92), platform.registry.url, "console/slow", "v1")
    made = platform.api("POST", "/api/v1/tasks", json={"image": {"reference": slow.ref},
                                                        "targets": {"hosts": platform.hosts[:1]},
                                                        "rate": 256 * 1024})
    assert made.status_code == 201, made.text
    task_id = made.json()["id"]
    log_in(page, platform, "admin", PASSWORD)  # type: ignore[arg-type]
    page.goto(f"{platform.url}/console/tasks/{task_id}")
    # Moving: some bytes on the host, as the stream says.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#grid td.blob')].some(c => parseInt(c.textContent) > 0)",
        timeout=30_000)
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#stop")
    page.wait_for_url(f"{platform.url}/console/tasks/{task_id}")
    assert page.locator("#task-state").inner_text() == "stopped"
    assert page.locator('#grid tbody tr[data-host] td.state').inner_text() == "stopped"
    assert "stopped" in page.locator("#events tbody").inner_text()
    assert page.locator("#retry-form").is_visible()
    assert platform.api("GET", f"/api/v1/tasks/{task_id}").json()["state"] == "stopped"
    # Retry: a new attempt for the stopped host, live again; stopped again; then deleted, with its log.
    page.click("#retry")
    page.wait_for_url(f"{platform.url}/console/tasks/{task_id}")
    assert page.locator("#task-state").inner_text() in ("pending", "running")
    assert "retried" in page.locator("#events tbody").inner_text()
    assert platform.api("GET", f"/api/v1/tasks/{task_id}").json()["hosts"][0]["attempt"] == 2
    page.wait_for_function("() => document.querySelector('#stop-form') && !document.querySelector('#stop-form').hidden")
    page.click("#stop")
    page.wait_for_url(f"{platform.url}/console/tasks/{task_id}")
    assert page.locator("#task-state").inner_text() == "stopped"
    page.click("#delete")
    page.wait_for_url(f"{platform.url}/console/tasks")
    assert page.locator(f'#tasks tr[data-task="{task_id}"]').count() == 0
    assert platform.api("GET", f"/api/v1/tasks/{task_id}").status_code == 404


def test_a_viewer_sees_no_task_controls_and_a_forged_post_is_refused(page: Any, platform: Platform) -> None:
    listed = platform.api("GET", "/api/v1/tasks?state=succeeded").json()["items"]
    assert listed, "the first test made a task that succeeded"
    task_id = listed[0]["id"]
    log_in(page, platform, "vera", VIEWER_PASSWORD)  # type: ignore[arg-type]
    page.goto(platform.url + "/console/tasks")
    assert page.locator(f'#tasks tr[data-task="{task_id}"]').count() == 1
    assert page.locator("#new-task").count() == 0
    # The filters: the task that succeeded, not among the stopped ones.
    page.select_option("#f-state", "stopped")
    page.click("form.filters button")
    page.wait_for_url(f"{platform.url}/console/tasks?state=stopped")
    assert page.locator(f'#tasks tr[data-task="{task_id}"]').count() == 0
    page.select_option("#f-state", "succeeded")
    page.click("form.filters button")
    page.wait_for_url(re.compile(r".*state=succeeded.*"))
    assert page.locator(f'#tasks tr[data-task="{task_id}"]').count() == 1
    page.goto(platform.url + "/console/tasks/new")
    assert page.locator("#task-form").count() == 0 and "may not create tasks" in page.locator("main").inner_text()
    page.goto(f"{platform.url}/console/tasks/{task_id}")
    for control in ("#stop-form", "#retry-form", "#delete-form"):
        assert page.locator(control).count() == 0
    csrf_token = page.locator("input[name=csrf]").first.get_attribute("value")
    forged = page.request.post(f"{platform.url}/console/tasks/{task_id}/delete", form={"csrf": csrf_token},
                               max_redirects=0)
    assert forged.status == 403 and "tasks:write" in forged.text()
    made = page.request.post(f"{platform.url}/console/tasks", max_redirects=0,
                             form={"csrf": csrf_token, "reference": "x/y:1", "hosts": platform.hosts[0],
                                   "action": "create"})
    assert made.status == 403
    assert platform.api("GET", f"/api/v1/tasks/{task_id}").status_code == 200
    refused = [e for e in platform.api("GET", "/api/v1/audit?limit=20").json()["items"] if e["actor"] == "vera"
               and e["result"] == "refused"]
    assert {e["action"] for e in refused} >= {"delete_task", "create_task"}


def test_the_analysis_chart_draws_the_hosts_pulls(page: Any, platform: Platform) -> None:
    data = random_blob(2 * MiB + 3, seed=93)
    digest = push_blob(platform.registry.url, "console/blob", data)
    for peer in platform.cluster.peers:
        pulled = pull_blob(peer.mirror_url, "console/blob", digest)
        assert (pulled.status, pulled.error) == (200, ""), pulled

    def sampled() -> bool:
        totals = platform.api("GET", "/api/v1/analysis/traffic?since=2h").json()["totals"]
        return bool(totals["fetched_peers"] >= len(data) and totals["fetched_upstream"] >= len(data))

    assert _until(sampled, 30.0), "the pulls never showed in the analysis"
    log_in(page, platform, "admin", PASSWORD)  # type: ignore[arg-type]
    page.goto(platform.url + "/console/analysis?since=6h&step=hour")
    chart = page.locator("#traffic-chart")
    assert chart.is_visible()
    drawn = chart.locator("rect.bar").evaluate_all(
        "bars => bars.map(b => [b.classList[1], Number(b.dataset.bytes), b.getBBox().height])")
    upstream = [d for d in drawn if d[0] == "upstream" and d[1] > 0]
    peers = [d for d in drawn if d[0] == "peers" and d[1] > 0]
    assert upstream and peers and all(d[2] > 0 for d in upstream + peers)
    # The saved ratio: a point per hour with traffic (one hour here: a point, no line yet).
    assert chart.locator("circle.ratio-point").count() >= 1
    assert page.locator("#saved-ratio").inner_text().endswith("%")
    # The tasks of the period: the first test's, which succeeded (the stopped one was deleted).
    assert page.locator("#tasks-summary").inner_text().startswith("1 task, 1 finished, 100% of them succeeded")
    assert page.locator("#task-figures tbody tr .state").all_inner_texts() == ["succeeded"]
    shot(page, platform, "analysis")  # type: ignore[arg-type]
    csv = page.request.get(platform.url + page.locator("#csv").get_attribute("href"))
    assert csv.status == 200 and csv.text().startswith("start,fetched_upstream,fetched_peers")
    assert sum(int(row.split(",")[1]) for row in csv.text().splitlines()[1:]) >= len(data)


def _slow_task(platform: Platform, image_cache: ImageCache, seed: int, host: str) -> int:
    slow = push_image(image_cache.get([4 * MiB], seed=seed), platform.registry.url, f"console/slow{seed}", "v1")
    made = platform.api("POST", "/api/v1/tasks", json={"image": {"reference": slow.ref}, "targets": {"hosts": [host]},
                                                        "rate": 128 * 1024})
    assert made.status_code == 201, made.text
    task_id: int = made.json()["id"]
    return task_id


def _events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) of a text/event-stream; ("", comment) for a comment, ("retry", ms) for the retry field."""
    name, data = "", ""
    for line in lines:
        if line.startswith(":"):
            yield "", line
        elif line.startswith("retry: "):
            yield "retry", line[7:]
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and name:
            yield name, data
            name, data = "", ""


def test_the_event_stream_sends_progress_and_ends_with_the_task(platform: Platform, image_cache: ImageCache) -> None:
    task_id = _slow_task(platform, image_cache, 94, platform.hosts[1])
    stream_url = f"{platform.url}/console/tasks/{task_id}/stream"
    refused = httpx.get(stream_url, timeout=10, trust_env=False)
    assert (refused.status_code, refused.json()["code"]) == (401, "unauthenticated")
    cookies = {"damselfly_session": platform.token}
    missing = httpx.get(f"{platform.url}/console/tasks/999999/stream", cookies=cookies, timeout=10, trust_env=False)
    assert missing.status_code == 404
    seen: list[tuple[str, str]] = []
    with httpx.stream("GET", stream_url, cookies=cookies, timeout=30, trust_env=False) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers["cache-control"] == "no-store"
        for name, data in _events(answer.iter_lines()):
            seen.append((name, data))
            if name == "progress" and not any(n == "progress" for n, _ in seen[:-1]):
                assert json.loads(data)["task"]["id"] == task_id
                stopped = platform.api("POST", f"/api/v1/tasks/{task_id}/stop")
                assert stopped.status_code == 200, stopped.text
        # The stream ended by itself once the task was final.
    assert seen[0] == ("retry", "2000")
    end = json.loads(seen[-1][1])
    assert seen[-1][0] == "end" and end["state"] == "stopped"
    # The figures of the task, as the analysis has them, for the page to show without a reload.
    assert end["figures"]["id"] == task_id and end["figures"]["state"] == "stopped"
    progress = [json.loads(data) for name, data in seen if name == "progress"]
    assert progress[-1]["task"]["state"] == "stopped"
    assert any(e["what"] == "stopped" for e in progress[-1]["events"])


def test_a_supernode_stopping_ends_the_open_streams_at_once(platform: Platform, image_cache: ImageCache) -> None:
    """Last: it stops the module's supernode. An open stream does not hold the stop for its lifetime."""
    task_id = _slow_task(platform, image_cache, 95, platform.hosts[0])
    with httpx.stream("GET", f"{platform.url}/console/tasks/{task_id}/stream", timeout=30, trust_env=False,
                      cookies={"damselfly_session": platform.token}) as answer:
        events = _events(answer.iter_lines())
        assert next(events) == ("retry", "2000")
        assert next(events)[0] == "progress"
        began = time.monotonic()
        code = platform.supernode.stop()
        assert code == 0 and time.monotonic() - began < 8.0, (code, time.monotonic() - began)
