"""The web console in a real browser (Debian's chromium, driven by Playwright) against a real `damselfly supernode`
hosting the platform, with a real peer registered, so that the hosts table shows a live host.

Each page is saved as a screenshot in the test's tmp dir (`console-*.png`); `DAMSELFLY_CONSOLE_SHOTS=docs/console`
copies a few into the docs.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.manager.conftest import CHROMIUM
from tests.support.cluster import DamselflyCluster
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; scripts/test.sh does as root)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra's playwright is not installed")

pytestmark = pytest.mark.slow
PASSWORD = "console-admin-pass"
VIEWER_PASSWORD = "viewer-pass-123"
INTERVAL = 0.5
DESKTOP = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}


@dataclass
class Console:
    url: str
    peer_id: str
    shots: Path

    def api(self, method: str, path: str, token: str = "", **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, trust_env=False, **kwargs)

    def token(self, username: str = "admin", password: str = PASSWORD) -> str:
        answer = self.api("POST", "/api/v1/login", json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["token"]
        return token

    def audit(self) -> list[dict[str, Any]]:
        """The latest entries but the logins (this very read logs in first)."""
        entries = self.api("GET", "/api/v1/audit?limit=20", self.token()).json()["items"]
        return [e for e in entries if e["action"] != "login"]

    def host(self) -> dict[str, Any]:
        shown = self.api("GET", f"/api/v1/hosts/{self.peer_id}", self.token())
        assert shown.status_code == 200, shown.text
        result: dict[str, Any] = shown.json()
        return result


def _until(what: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    work = tmp_path_factory.mktemp("console")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    supernode = ManagedProcess(
        [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(work / "sn"), "--heartbeat-interval", str(INTERVAL)],
        env={"DAMSELFLY_ADMIN_PASSWORD": PASSWORD, "XDG_DATA_HOME": str(work / "xdg")},
        log_path=work / "supernode.log", ready_url=f"{url}/healthz", name="supernode",
    ).start()
    peers = DamselflyCluster(work / "peers", upstream_url="http://127.0.0.1:9", peers_count=0, supernode_port=port)
    try:
        def platform_up() -> bool:
            answer = httpx.post(f"{url}/api/v1/login", json={"username": "admin", "password": PASSWORD},
                                timeout=10, trust_env=False)
            return answer.status_code == 200

        assert _until(platform_up), "the platform did not come up"
        peers.add_peer(0, ["--label", "zone=z1"])
        made = Console(url, "", work)
        token = made.token()

        def healthy() -> list[dict[str, Any]]:
            listed = made.api("GET", "/api/v1/hosts?state=healthy", token).json()["items"]
            return [h for h in listed if h["disk"]["total"]]

        found = _until(healthy)
        assert found, "the peer never showed as a healthy host"
        made.peer_id = found[0]["id"]
        yield made
        copy_for_the_docs(work)
    finally:
        peers.stop()
        supernode.stop()


DOCS_SHOTS = ("overview", "hosts", "cluster-token", "viewer-hosts", "hosts-narrow")


def copy_for_the_docs(shots: Path, names: tuple[str, ...] = DOCS_SHOTS) -> None:
    """`DAMSELFLY_CONSOLE_SHOTS=docs/console` refreshes the docs' screenshots `names` from this run."""
    target = os.environ.get("DAMSELFLY_CONSOLE_SHOTS")
    if not target:
        return
    for name in names:
        source = shots / f"console-{name}.png"
        if source.exists():
            shutil.copy(source, Path(target) / source.name)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookie) at 1280x800."""
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def log_in(page: Any, console: Console, username: str = "admin", password: str = PASSWORD) -> None:
    """By keyboard only: the form is usable without a mouse."""
    page.goto(console.url + "/")
    assert page.url == console.url + "/console/login?next=/console/"
    # The user name field has the focus as the page opens.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'username'")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(console.url + "/console/")


def shot(page: Any, console: Console, name: str) -> None:
    page.screenshot(path=str(console.shots / f"console-{name}.png"), full_page=True)


def session_cookie(page: Any) -> dict[str, Any] | None:
    for cookie in page.context.cookies():
        if cookie["name"] == "damselfly_session":
            return dict(cookie)
    return None


def csrf(page: Any) -> str:
    value: str = page.locator("input[name=csrf]").first.get_attribute("value")
    return value


def test_root_is_the_console_and_the_supernodes_paths_stay_its_own(console: Console) -> None:
    root = console.api("GET", "/", follow_redirects=False)
    assert (root.status_code, root.headers["location"]) == (303, "/console/")
    assert console.api("GET", "/console", follow_redirects=False).headers["location"] == "/console/"
    assert console.api("GET", "/healthz").json()["status"] == "ok"
    # The supernode's own answer, in its own shape (not the platform's {"code", "message"}).
    peers = console.api("GET", "/api/v1/peers")
    assert peers.status_code == 403 and "error" in peers.json() and "code" not in peers.json()
    # Nothing of the console from anywhere but here: the stylesheet and script are the package's.
    assert console.api("GET", "/console/static/console.css").headers["content-type"].startswith("text/css")


def test_log_in_see_every_page_and_log_out(page: Any, console: Console) -> None:
    loaded: list[int] = []
    foreign: list[str] = []

    def count(response: Any) -> None:
        if not response.url.startswith(console.url):
            foreign.append(response.url)
        body = response.body() if response.status < 300 else b""
        loaded.append(len(body))

    page.on("response", count)
    log_in(page, console)
    page.remove_listener("response", count)
    assert not foreign, foreign
    # The login page, the redirect, the overview, its stylesheet, script and vendored font.
    assert sum(loaded) < 300_000, loaded
    # The font the console vendors is the one the page is drawn in, loaded from the console.
    assert page.evaluate("document.fonts.ready.then(() => document.fonts.check('15px Inter'))")
    assert page.evaluate("[...document.fonts].some(f => f.family.includes('Inter') && f.status === 'loaded')")
    cookie = session_cookie(page)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["value"].startswith("dfs_")
    assert page.locator("[data-count=healthy]").inner_text() == "1"
    # Read from the supernode's scheduler in place: no pull has made a swarm in this run.
    assert page.locator("[data-count=swarms]").inner_text() == "0"
    shot(page, console, "overview")

    for path, heading, name in [("/console/hosts", "Hosts", "hosts"), ("/console/clusters", "Clusters", "clusters"),
                                ("/console/users", "Users", "users"), ("/console/tokens", "API tokens", "tokens"),
                                ("/console/audit", "Audit log", "audit"), ("/console/account", "Account", "account")]:
        page.goto(console.url + path)
        assert page.locator("h1").inner_text() == heading
        shot(page, console, name)
        if name == "audit":
            assert "login" in page.locator("#audit").inner_text()

    page.set_viewport_size(NARROW)
    for path in ("/console/", "/console/hosts", "/console/clusters", "/console/users", "/console/tokens",
                 "/console/audit", "/console/account"):
        page.goto(console.url + path)
        # Narrow, tables scroll inside their box and forms stack: the page itself does not scroll sideways.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
    page.goto(console.url + "/console/hosts")
    shot(page, console, "hosts-narrow")
    page.set_viewport_size(DESKTOP)

    token = cookie["value"]
    assert console.api("GET", "/api/v1/me", token).status_code == 200
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(console.url + "/console/login")
    assert session_cookie(page) is None
    # The session is over on the server too, not only forgotten by the browser.
    assert console.api("GET", "/api/v1/me", token).status_code == 401
    page.goto(console.url + "/console/hosts")
    assert "/console/login" in page.url


def test_a_bad_password_shows_an_error_and_sets_no_session(page: Any, console: Console) -> None:
    page.goto(console.url + "/console/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "wrong username or password"
    assert session_cookie(page) is None
    shot(page, console, "login-error")
    audit = console.api("GET", "/api/v1/audit?limit=5", console.token()).json()["items"]
    assert any(e["action"] == "login" and e["result"] == "refused" and e["target"] == "admin" for e in audit)


def test_cordon_a_host_from_the_table(page: Any, console: Console) -> None:
    log_in(page, console)
    page.goto(console.url + "/console/hosts?state=healthy")
    row = page.locator(f"tr[data-host='{console.peer_id}']")
    assert "zone=z1" in row.inner_text()
    row.get_by_role("button", name=re.compile("^Cordon ")).click()
    page.wait_for_url(console.url + "/console/hosts")
    assert "cordoned" in page.locator(f"tr[data-host='{console.peer_id}']").inner_text()
    host = console.host()
    assert host["cordoned"] and host["cordon"]["by"] == "admin"
    audit = console.audit()
    assert any(e["action"] == "cordon_host" and e["target"] == console.peer_id and e["result"] == "ok"
               and e["via"].startswith("session:") for e in audit)
    shot(page, console, "hosts-cordoned")
    page.locator(f"tr[data-host='{console.peer_id}']").get_by_role("button", name=re.compile("^Uncordon ")).click()
    page.wait_for_url(console.url + "/console/hosts")
    assert not console.host()["cordoned"]


def test_create_a_cluster_and_see_its_token_once(page: Any, console: Console) -> None:
    log_in(page, console)
    page.goto(console.url + "/console/clusters")
    page.get_by_label("Name", exact=True).fill("zone1")
    page.get_by_label("Description").fill("the first zone")
    page.get_by_label("Label selector").fill("zone=z1")
    page.get_by_role("button", name="Create cluster").click()
    token = page.locator("#secret-value").inner_text()
    assert token.startswith("dfc_")
    shot(page, console, "cluster-token")
    assert page.locator("tr[data-cluster=zone1]").count() == 1
    page.goto(console.url + "/console/clusters")
    assert page.locator("#secret-value").count() == 0 and token not in page.content()
    clusters = console.api("GET", "/api/v1/clusters", console.token()).json()["items"]
    assert [c["name"] for c in clusters] == ["zone1"] and clusters[0]["labels"] == {"zone": "z1"}
    assert console.api("GET", "/api/v1/hosts?cluster=zone1", console.token()).json()["items"][0]["id"] == \
        console.peer_id

    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("tr[data-cluster=zone1]").get_by_role("button", name="New join token").click()
    rotated = page.locator("#secret-value").inner_text()
    assert rotated.startswith("dfc_") and rotated != token
    page.goto(console.url + "/console/clusters")
    page.locator("tr[data-cluster=zone1]").get_by_role("button", name="Delete").click()
    page.wait_for_url(console.url + "/console/clusters")
    assert console.api("GET", "/api/v1/clusters", console.token()).json()["items"] == []


def test_a_post_without_the_csrf_token_is_refused(page: Any, console: Console) -> None:
    log_in(page, console)
    page.goto(console.url + "/console/hosts")
    forged = page.request.post(f"{console.url}/console/hosts/{console.peer_id}/cordon", form={"csrf": ""},
                               max_redirects=0)
    assert forged.status == 403
    wrong = page.request.post(f"{console.url}/console/hosts/{console.peer_id}/cordon", form={"csrf": "0" * 64},
                              max_redirects=0)
    assert wrong.status == 403
    assert not console.host()["cordoned"]
    audit = console.audit()
    assert audit[0]["action"] == "cordon_host" and audit[0]["result"] == "refused"
    assert "CSRF" in audit[0]["detail"]
    page.goto(console.url + "/console/")
    assert "cordon_host" in page.get_by_role("region", name="Recent refused and failed writes").inner_text()
    # The same form with its token goes through.
    allowed = page.request.post(f"{console.url}/console/hosts/{console.peer_id}/uncordon",
                                form={"csrf": csrf(page)}, max_redirects=0)
    assert allowed.status == 303


def test_a_viewer_sees_no_write_controls_and_a_forged_post_is_refused(page: Any, console: Console) -> None:
    made = console.api("POST", "/api/v1/users", console.token(),
                       json={"name": "vic", "role": "viewer", "password": VIEWER_PASSWORD})
    assert made.status_code in (201, 409), made.text
    log_in(page, console, "vic", VIEWER_PASSWORD)
    assert page.get_by_role("region", name="Recent refused and failed writes").count() == 0
    nav = page.get_by_role("navigation", name="Sections").inner_text()
    assert "Hosts" in nav and "Users" not in nav and "Audit log" not in nav
    page.goto(console.url + "/console/hosts")
    assert page.locator(f"tr[data-host='{console.peer_id}']").count() == 1
    assert page.get_by_role("button", name=re.compile("ordon")).count() == 0
    shot(page, console, "viewer-hosts")
    page.goto(console.url + "/console/clusters")
    assert page.get_by_role("button", name="Create cluster").count() == 0
    assert page.get_by_role("button", name="Delete").count() == 0
    page.goto(console.url + "/console/users")
    assert page.locator("h1").inner_text() == "Not allowed"

    token = csrf(page)
    cordon = page.request.post(f"{console.url}/console/hosts/{console.peer_id}/cordon", form={"csrf": token},
                               max_redirects=0)
    assert cordon.status == 403 and "missing permission targets:write" in cordon.text()
    cluster = page.request.post(f"{console.url}/console/clusters", form={"csrf": token, "name": "sneaky"},
                                max_redirects=0)
    assert cluster.status == 403
    user = page.request.post(f"{console.url}/console/users", max_redirects=0,
                             form={"csrf": token, "name": "mallory", "role": "admin", "password": "mallory-pass"})
    assert user.status == 403
    assert not console.host()["cordoned"]
    names = [u["name"] for u in console.api("GET", "/api/v1/users", console.token()).json()["items"]]
    assert "mallory" not in names
    audit = console.audit()
    assert [(e["action"], e["actor"], e["result"]) for e in audit[:3]] == [
        ("create_user", "vic", "refused"), ("create_cluster", "vic", "refused"), ("cordon_host", "vic", "refused")]

    # What a viewer may write (its own tokens, its password) it can.
    page.goto(console.url + "/console/tokens")
    page.get_by_label("Name", exact=True).fill("ci")
    page.get_by_role("button", name="Create token").click()
    api_token = page.locator("#secret-value").inner_text()
    assert api_token.startswith("dft_")
    assert console.api("GET", "/api/v1/hosts", api_token).status_code == 200
    page.goto(console.url + "/console/account")
    page.get_by_label("Current password").fill(VIEWER_PASSWORD)
    page.get_by_label("New password", exact=True).fill("viewer-pass-456")
    page.get_by_label("New password, again").fill("viewer-pass-456")
    page.get_by_role("button", name="Change password").click()
    assert "Your password is changed" in page.locator("main").inner_text()
    assert console.api("POST", "/api/v1/login", json={"username": "vic", "password": "viewer-pass-456"}
                       ).status_code == 200
