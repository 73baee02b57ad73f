"""The console's server side, in process (no browser): its cookie, CSRF check, role checks, rate limit and audit.
tests/manager/test_console_browser.py drives the same in a real browser."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from manager.api_errors import ApiError
from manager.app import ManagerApp
from manager.config import ManagerConfig
from manager.console.forms import Form
from manager.console.tasks import task_fields
from manager.models import Task, TaskHost, TrafficHour
from tests.manager.conftest import ADMIN_PASSWORD

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ManagerApp]:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    made = ManagerApp(replace(ManagerConfig(), data_dir=tmp_path / "data"))
    assert await made.startup()
    yield made
    await made.shutdown()


def client(app: ManagerApp, base_url: str = "http://manager") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def log_in(http: httpx.AsyncClient, username: str = "admin", password: str = ADMIN_PASSWORD) -> httpx.Response:
    page = await http.get("/console/login")
    token = CSRF.search(page.text)
    assert token, page.text
    return await http.post("/console/login", data={"csrf": token.group(1), "username": username,
                                                   "password": password, "next": "/console/hosts"})


async def csrf_of(http: httpx.AsyncClient, path: str = "/console/") -> str:
    found = CSRF.search((await http.get(path)).text)
    assert found
    return found.group(1)


async def audit(app: ManagerApp) -> list[dict[str, str]]:
    async with client(app) as api:
        login = await api.post("/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        entries = await api.get("/api/v1/audit", headers={"Authorization": f"Bearer {login.json()['token']}"})
    return [e for e in entries.json()["items"] if e["action"] != "login"]


async def test_the_session_cookie_is_httponly_strict_and_secure_over_tls(app: ManagerApp) -> None:
    async with client(app, "https://manager") as http:
        done = await log_in(http)
    assert (done.status_code, done.headers["location"]) == (303, "/console/hosts")
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("damselfly_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
    async with client(app) as http:
        plain = await log_in(http)
    cookie = next(c for c in plain.headers.get_list("set-cookie") if c.startswith("damselfly_session="))
    assert "Secure" not in cookie


async def test_a_bad_password_sets_no_session_and_failures_are_rate_limited(app: ManagerApp) -> None:
    async with client(app) as http:
        statuses = [(await log_in(http, "admin", "wrong-password")).status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        assert "damselfly_session" not in http.cookies
        limited = await log_in(http, "admin", ADMIN_PASSWORD)
        assert limited.status_code == 429 and "too many failed logins" in limited.text


async def test_login_without_its_csrf_token_is_refused(app: ManagerApp) -> None:
    async with client(app) as http:
        forged = await http.post("/console/login", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert forged.status_code == 403 and "damselfly_session" not in http.cookies


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/console/\\evil", "/api/v1/me"])
async def test_login_goes_to_console_pages_only(app: ManagerApp, target: str) -> None:
    async with client(app) as http:
        page = await http.get("/console/login")
        token = CSRF.search(page.text)
        assert token
        done = await http.post("/console/login", data={"csrf": token.group(1), "username": "admin",
                                                       "password": ADMIN_PASSWORD, "next": target})
    assert done.headers["location"] == "/console/"


async def test_pages_need_a_session_and_say_so_safely(app: ManagerApp) -> None:
    async with client(app) as http:
        away = await http.get("/console/users")
        assert (away.status_code, away.headers["location"]) == (303, "/console/login?next=/console/users")
        # A POST without a session is not taken, and audited as refused like the API's 401.
        assert (await http.post("/console/clusters", data={"name": "x"})).status_code == 303
        await log_in(http)
        page = await http.get("/console/hosts")
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    entries = await audit(app)
    assert (entries[0]["action"], entries[0]["result"], entries[0]["actor"]) == ("create_cluster", "refused", "")


async def test_a_viewer_is_refused_every_write_and_each_is_audited(app: ManagerApp) -> None:
    async with client(app) as admin:
        await log_in(admin)
        made = await admin.post("/console/users", data={"csrf": await csrf_of(admin), "name": "vic",
                                                        "role": "viewer", "password": "viewer-pass-1"})
        assert made.status_code == 303
    async with client(app) as viewer:
        assert (await log_in(viewer, "vic", "viewer-pass-1")).status_code == 303
        token = await csrf_of(viewer)
        page = await viewer.get("/console/clusters")
        assert "Create cluster" not in page.text and "Delete" not in page.text
        for path, form in [("/console/clusters", {"name": "c"}), ("/console/clusters/c/delete", {}),
                           ("/console/clusters/c/token", {}), ("/console/users", {"name": "m", "role": "admin"}),
                           ("/console/users/admin", {"role": "viewer"}), ("/console/users/admin/delete", {}),
                           ("/console/hosts/h1/cordon", {})]:
            refused = await viewer.post(path, data={"csrf": token, **form})
            assert refused.status_code == 403, (path, refused.status_code)
            assert "missing permission" in refused.text
        assert (await viewer.get("/console/audit")).status_code == 403
    refusals = [(e["actor"], e["result"]) for e in (await audit(app))[:7]]
    assert refusals == [("vic", "refused")] * 7


async def test_a_bad_field_is_said_on_the_page_and_audited_as_failed(app: ManagerApp) -> None:
    async with client(app) as http:
        await log_in(http)
        token = await csrf_of(http)
        bad = await http.post("/console/clusters", data={"csrf": token, "name": "c", "labels": "no-equals"})
        assert bad.status_code == 400 and "expected KEY=VALUE" in bad.text
        mismatch = await http.post("/console/account/password",
                                   data={"csrf": token, "old": ADMIN_PASSWORD, "new": "new-pass-1", "confirm": "x"})
        assert mismatch.status_code == 400 and "differ" in mismatch.text
        last = await http.post("/console/users/admin", data={"csrf": token, "role": "viewer"})
        assert last.status_code == 409 and "the last admin" in last.text
    entries = await audit(app)
    assert [(e["action"], e["result"]) for e in entries[:3]] == [
        ("update_user", "failed"), ("change_password", "failed"), ("create_cluster", "failed")]


async def test_the_tasks_and_analysis_pages_render_and_say_what_the_api_refuses(app: ManagerApp) -> None:
    async with client(app) as http:
        assert (await log_in(http)).status_code == 303
        for path in ("/console/tasks", "/console/tasks/new", "/console/analysis", "/console/analysis?step=day"):
            shown = await http.get(path)
            assert shown.status_code == 200, (path, shown.text)
        assert 'id="traffic-chart"' in (await http.get("/console/analysis")).text
        assert (await http.get("/console/tasks?state=&kind=")).headers["location"] == "/console/tasks"
        bad = await http.get("/console/tasks?state=nope")
        assert bad.status_code == 400 and "state must be one of" in bad.text
        assert (await http.get("/console/tasks/12345")).status_code == 404
        # The API's CSV, through the session, as a download.
        csv = await http.get("/console/analysis/traffic.csv?since=2h&format=csv")
        assert csv.status_code == 200 and csv.text.startswith("start,fetched_upstream,")
        assert csv.headers["content-disposition"].startswith("attachment")
        # A manager alone without --supernode runs no task: the form says the API's 503, keeping what was typed.
        token = await csrf_of(http, "/console/tasks/new")
        made = await http.post("/console/tasks", data={"csrf": token, "kind": "image", "reference": "r.example/a:1",
                                                       "hosts": "h1", "action": "create"})
        assert made.status_code == 503 and "reaches no supernode" in made.text and "r.example/a:1" in made.text
        forged = await http.post("/console/tasks", data={"kind": "image", "reference": "x", "hosts": "h1"})
        assert forged.status_code == 403 and "CSRF" in forged.text
    async with client(app) as anonymous:
        stream = await anonymous.get("/console/tasks/1/stream")
        assert stream.status_code == 401 and stream.json()["code"] == "unauthenticated"


def test_the_task_forms_fields_become_the_apis_body() -> None:
    body = task_fields(Form([("kind", "file"), ("url", " https://f.example/m.bin "), ("path", "/srv/m.bin"),
                             ("digest", ""), ("clusters", "a, b"), ("selector", "zone=z1"), ("percent", "50"),
                             ("rate", "20MiB/s"), ("concurrency", ""), ("timeout", "30m"), ("mode", "cache")]))
    assert body == {"kind": "file", "mode": "cache", "file": {"url": "https://f.example/m.bin", "path": "/srv/m.bin",
                                                              "digest": ""},
                    "targets": {"clusters": ["a", "b"], "selector": ["zone=z1"], "percent": 50.0},
                    "rate": "20MiB/s", "timeout": "30m"}
    image = task_fields(Form([("reference", "r/a:1"), ("platforms", "linux/amd64 linux/arm64"), ("hosts", "h1 h2"),
                              ("count", "1"), ("secret", "reg")]))
    assert image["image"] == {"reference": "r/a:1", "platforms": ["linux/amd64", "linux/arm64"]}
    assert image["targets"] == {"hosts": ["h1", "h2"], "count": 1} and image["secret"] == "reg"
    with pytest.raises(ApiError, match=r"targets\.count must be a number"):
        task_fields(Form([("reference", "r/a:1"), ("hosts", "h1"), ("count", "two")]))


async def test_the_overview_shows_the_tasks_under_way_and_the_egress_saved_today(app: ManagerApp) -> None:
    now = time.time()
    async with app.platform.sessions.begin() as session:  # type: ignore[union-attr]
        session.add(TrafficHour(hour=int(now // 3600 * 3600), host_id="h1", fetched_upstream=1000, fetched_peers=3000))
        session.add(TrafficHour(hour=int(now // 3600 * 3600) - 2 * 86400, host_id="h1", fetched_upstream=99))
        for state in ("running", "running", "pending", "succeeded"):
            session.add(Task(kind="image", spec={}, targets={}, state=state, created_at=now))
        session.add(Task(kind="file", spec={}, targets={}, state="failed", created_at=now, finished_at=now,
                         error="1 of 2 hosts failed: h2: disk full"))
    async with client(app) as http:
        assert (await log_in(http)).status_code == 303
        page = (await http.get("/console/")).text

    def count(name: str) -> str:
        found = re.search(rf'data-count="{name}">([^<]*)<', page)
        assert found, page
        return found.group(1)

    assert (count("tasks-running"), count("tasks-pending")) == ("2", "1")
    failed = page[page.index('id="failed-tasks"'):]
    assert "1 of 2 hosts failed: h2: disk full" in failed[:failed.index("</ul>")]
    # Today's hours only: the day before yesterday's upstream bytes are not in today's figure.
    assert (count("saved-ratio"), count("fetched-peers"), count("fetched-upstream")) == ("75%", "3.0 kB", "1.0 kB")


async def test_the_analysis_page_charts_each_tasks_host_times_and_success_rate(app: ManagerApp) -> None:
    now = time.time()
    async with app.platform.sessions.begin() as session:  # type: ignore[union-attr]
        for seconds in ((4.0, 6.0), (2.0, 9.0, 30.0)):
            task = Task(kind="image", spec={}, targets={}, state="succeeded", created_at=now, started_at=now - 60,
                        finished_at=now)
            session.add(task)
            await session.flush()
            for n, took in enumerate(seconds):
                session.add(TaskHost(task_id=task.id, host_id=f"h{n}", state="failed" if took == 30.0 else "succeeded",
                                     started_at=now - 40, finished_at=now - 40 + took))
    async with client(app) as http:
        assert (await log_in(http)).status_code == 303
        page = (await http.get("/console/analysis")).text
    chart = page[page.index('id="tasks-chart"'):page.index("</svg>", page.index('id="tasks-chart"'))]
    bars = re.findall(r'class="bar (p50|p95|max)"[^>]*data-seconds="([0-9.]+)" data-task="(\d+)"', chart)
    assert [(kind, float(value)) for kind, value, _ in bars] == [
        ("p50", 4.0), ("p95", 6.0), ("max", 6.0), ("p50", 9.0), ("p95", 30.0), ("max", 30.0)]
    assert len({task for _, _, task in bars}) == 2
    rates = re.findall(r'class="ratio-point" cx="[0-9.]+" cy="([0-9.]+)"', chart)
    assert len(rates) == 2 and float(rates[0]) < float(rates[1])  # 100% is drawn higher than 67%


async def test_an_admin_makes_a_user_scoped_to_a_cluster_from_the_users_page(app: ManagerApp) -> None:
    async with client(app) as admin:
        await log_in(admin)
        token = await csrf_of(admin)
        made = await admin.post("/console/clusters", data={"csrf": token, "name": "edge"})
        # Answered with the page itself: the join token is shown this once.
        assert made.status_code == 201 and "The join token of cluster edge" in made.text, made.status_code
        made = await admin.post("/console/users", data={"csrf": token, "name": "eve", "role": "operator",
                                                        "clusters": " edge, ", "password": "operator-pass-1"})
        assert made.status_code == 303, made.text
        page = await admin.get("/console/users")
        row = page.text[page.text.index('data-user="eve"'):]
        assert '<td class="clusters">edge</td>' in row[: row.index("</tr>")]
        assert '<td class="clusters">all</td>' in page.text  # the admin
        # A cluster that is not there: the API's reason on the page, no user made.
        refused = await admin.post("/console/users", data={"csrf": token, "name": "fay", "role": "operator",
                                                           "clusters": "nowhere", "password": "operator-pass-1"})
        assert refused.status_code == 400 and "no cluster" in refused.text and "nowhere" in refused.text
        assert 'data-user="fay"' not in (await admin.get("/console/users")).text
