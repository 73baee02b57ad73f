"""Registry secrets: the password goes in once, is sealed at rest with a 0600 key, reaches only the hosts' jobs, and
is in no API answer and no log line."""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from manager.config import ManagerConfig
from manager.host_source import SchedulerSource
from manager.job_channel import BoardChannel
from manager.secret_box import KEY_FILE, SecretBox, SecretUnreadable
from supernode.scheduler import Scheduler
from tests.manager.conftest import ADMIN_PASSWORD, Running, start
from tests.manager.played_board import PlayedBoard

PASSWORD = "registry-pass-Zq81xv"


@pytest.fixture
async def hosted(manager_config: ManagerConfig, monkeypatch: pytest.MonkeyPatch,
                 ) -> AsyncIterator[tuple[Running, Scheduler, PlayedBoard]]:
    monkeypatch.setenv("DAMSELFLY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    scheduler, board = Scheduler(), PlayedBoard()
    async for running in start(replace(manager_config, task_round=0.05), SchedulerSource(scheduler),
                               BoardChannel(board)):
        yield running, scheduler, board


async def test_a_secrets_password_is_in_no_answer_nor_log_and_reaches_only_the_job(
    hosted: tuple[Running, Scheduler, PlayedBoard], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    platform, scheduler, board = hosted
    scheduler.register("a", "http://10.0.0.1:65002", {}, time.monotonic())
    admin = await platform.admin()
    operator = await platform.user("olga", "operator")
    http = platform.http
    made = await http.post("/api/v1/secrets", json={"name": "hub", "username": "robot", "password": PASSWORD},
                           headers=operator)
    assert made.status_code == 201, made.text
    assert made.json()["username"] == "robot" and made.json()["created_by"] == "olga"
    task = await http.post("/api/v1/tasks", json={"image": {"reference": "team/app:1"}, "targets": {"hosts": ["a"]},
                                                  "secret": "hub"}, headers=operator)
    assert task.status_code == 201, task.text
    assert task.json()["secret"] == "hub"
    deadline = time.monotonic() + 5
    while board.job_of("a") is None and time.monotonic() < deadline:
        await _pause()
    job = board.job_of("a")
    assert job is not None and job.credential is not None
    # The host needs it, and gets it in its job only; the job's repr (a log line's) hides it.
    assert (job.credential.username, job.credential.password) == ("robot", PASSWORD)
    assert PASSWORD not in repr(job)
    in_use = await http.delete("/api/v1/secrets/hub", headers=operator)
    assert in_use.status_code == 409
    dry = await http.post("/api/v1/tasks/dry-run", json={"image": {"reference": "team/app:1"},
                                                          "targets": {"hosts": ["a"]}, "secret": "hub", "wait": 0},
                          headers=operator)
    answers = [
        made, task, dry,
        await http.get("/api/v1/secrets", headers=operator),
        await http.get(f"/api/v1/tasks/{task.json()['id']}", headers=operator),
        await http.get("/api/v1/tasks", headers=operator),
        await http.get(f"/api/v1/tasks/{task.json()['id']}/events", headers=operator),
        await http.get("/api/v1/audit", headers=admin),
        await http.get("/api/v1/openapi.json"),
        await http.post("/api/v1/secrets", json={"name": "hub", "username": "x", "password": PASSWORD},
                        headers=operator),
        await http.post("/api/v1/secrets", json={"name": "hub2", "username": "x", "password": PASSWORD},
                        headers=await platform.user("vic", "viewer")),
    ]
    assert answers[-2].status_code == 409 and answers[-1].status_code == 403
    for answer in answers:
        assert PASSWORD not in answer.text, (answer.request.url, answer.text)
    assert PASSWORD not in caplog.text
    async with platform.app.platform.sessions() as db:  # type: ignore[union-attr]
        stored = (await db.execute(sa.text("SELECT password_encrypted FROM secrets"))).scalars().all()
        dumped = " ".join(str(row) for row in (await db.execute(sa.text("SELECT * FROM secrets"))).all())
    assert PASSWORD not in dumped and len(stored) == 1
    key = platform.config.data_dir / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert SecretBox.in_dir(platform.config.data_dir).open(stored[0]) == PASSWORD
    stopped = await http.post(f"/api/v1/tasks/{task.json()['id']}/stop", headers=operator)
    assert stopped.status_code == 200
    assert (await http.delete("/api/v1/secrets/hub", headers=operator)).status_code == 204
    assert (await http.get(f"/api/v1/tasks/{task.json()['id']}", headers=operator)).json()["secret"] is None


def test_the_key_is_made_once_and_another_key_reads_nothing(tmp_path: Path) -> None:
    box = SecretBox.in_dir(tmp_path / "d")
    sealed = box.seal("p")
    assert SecretBox.in_dir(tmp_path / "d").open(sealed) == "p"
    with pytest.raises(SecretUnreadable):
        SecretBox.in_dir(tmp_path / "other").open(sealed)
    assert "key" not in repr(box).replace("<key hidden>", "")


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)
