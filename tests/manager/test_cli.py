"""The platform's commands, run as `python -m damselfly ...` against a real `damselfly manager` process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.procs import ProcessFactory

PASSWORD = "cli-admin-pass"
REPO = Path(__file__).resolve().parents[2]


def damselfly(args: list[str], home: Path, stdin: str = "",
              env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DAMSELFLY_")}
    environment.update({"XDG_CONFIG_HOME": str(home), **(env or {})})
    return subprocess.run([sys.executable, "-m", "damselfly", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, env=environment, cwd=REPO)


@pytest.fixture
def server(process_factory: ProcessFactory, tmp_path: Path) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process_factory(
        [sys.executable, "-m", "damselfly", "manager", "--listen", f"127.0.0.1:{port}", "--data-dir",
         str(tmp_path / "manager")],
        env={"DAMSELFLY_ADMIN_PASSWORD": PASSWORD}, ready_url=f"{url}/api/v1/openapi.json", name="manager",
    )
    return url


def test_login_user_and_token_commands(server: str, tmp_path: Path) -> None:
    admin_home = tmp_path / "admin"
    login = damselfly(["login", "--server", server, "--username", "admin", "--password-stdin"], admin_home,
                      PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    session = admin_home / "damselfly" / "session.json"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600

    created = damselfly(["user", "create", "bob", "--role", "viewer"], admin_home)
    assert created.returncode == 0, created.stderr
    password = next(line.split(": ", 1)[1] for line in created.stdout.splitlines() if line.startswith("password: "))
    listed = damselfly(["user", "list", "--json"], admin_home)
    assert listed.returncode == 0
    assert {"bob", "admin"} <= set(listed.stdout.replace('"', " ").split())
    # A role scoped to a cluster: to one that exists; the refusal is the server's one line.
    made = damselfly(["cluster", "create", "edge", "--label", "zone=edge"], admin_home)
    assert made.returncode == 0, made.stderr
    scoped = damselfly(["user", "create", "eve", "--role", "operator", "--cluster", "edge"], admin_home)
    assert scoped.returncode == 0 and "(operator in clusters edge)" in scoped.stdout, scoped.stdout + scoped.stderr
    unknown = damselfly(["user", "create", "fay", "--role", "operator", "--cluster", "nowhere"], admin_home)
    assert unknown.returncode != 0 and "no cluster 'nowhere'" in unknown.stderr and "Traceback" not in unknown.stderr

    token = damselfly(["token", "create", "--scope", "users:read", "--expires", "1h", "--name", "ci"], admin_home)
    assert token.returncode == 0, token.stderr
    (value,) = token.stdout.split()
    assert value.startswith("dft_")
    tokens = damselfly(["token", "list"], admin_home)
    assert "ci" in tokens.stdout and value not in tokens.stdout

    # The token holds users:read only: listing works, creating is refused with the missing permission.
    env = {"DAMSELFLY_SERVER": server, "DAMSELFLY_TOKEN": value}
    assert damselfly(["user", "list"], tmp_path / "nobody", env=env).returncode == 0
    refused = damselfly(["user", "create", "carl", "--role", "viewer"], tmp_path / "nobody", env=env)
    assert refused.returncode == 1
    assert refused.stderr == "damselfly user create: 403 missing permission users:write\n"

    # Bob, a viewer, logs in with the generated password and is refused too.
    bob_home = tmp_path / "bob"
    assert damselfly(["login", "--server", server, "--username", "bob", "--password-stdin"], bob_home,
                     password + "\n").returncode == 0
    as_bob = damselfly(["user", "delete", "admin"], bob_home)
    assert (as_bob.returncode, as_bob.stderr) == (1, "damselfly user delete: 403 missing permission users:write\n")

    assert damselfly(["user", "delete", "bob"], admin_home).returncode == 0
    logout = damselfly(["logout"], admin_home)
    assert logout.returncode == 0 and not session.exists()
    after = damselfly(["user", "list"], admin_home, env={"DAMSELFLY_SERVER": server})
    assert after.returncode == 1 and len(after.stderr.splitlines()) == 1


def test_a_wrong_password_and_an_unreachable_server_are_one_line(server: str, tmp_path: Path) -> None:
    wrong = damselfly(["login", "--server", server, "--username", "admin", "--password-stdin"], tmp_path, "nope\n")
    assert (wrong.returncode, wrong.stderr) == (1, "damselfly login: 401 wrong username or password\n")
    away = f"http://127.0.0.1:{free_port()}"
    unreachable = damselfly(["user", "list", "--server", away, "--token", "dft_x"], tmp_path)
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(f"damselfly user list: cannot reach {away}")
    assert len(unreachable.stderr.splitlines()) == 1


def test_the_manager_alone_exits_if_its_database_cannot_be_opened(tmp_path: Path) -> None:
    database = f"postgresql://damselfly:very-secret-pw@127.0.0.1:{free_port()}/platform"
    run = damselfly(["manager", "--listen", f"127.0.0.1:{free_port()}", "--database", database], tmp_path)
    assert run.returncode == 1
    assert "the platform is unavailable" in run.stderr
    assert "very-secret-pw" not in run.stderr + run.stdout
    assert "Traceback" not in run.stderr


def test_a_database_url_with_a_password_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    database = f"postgresql://damselfly:very-secret-pw@127.0.0.1:{free_port()}/platform"
    url_file = tmp_path / "database-url"
    url_file.write_text(database + "\n")
    url_file.chmod(0o600)
    listen = ["manager", "--listen", f"127.0.0.1:{free_port()}"]
    for run in (damselfly([*listen, "--database-url-file", str(url_file)], tmp_path),
                damselfly(listen, tmp_path, env={"DAMSELFLY_DATABASE_URL": database})):
        # The URL was read: its server is tried (and is not there), its password shown as ***.
        assert run.returncode == 1
        assert "damselfly:***@127.0.0.1" in run.stderr and "very-secret-pw" not in run.stderr + run.stdout
    both = damselfly([*listen, "--database-url-file", str(url_file), "--database", "postgresql://x@h/db"], tmp_path)
    assert (both.returncode, both.stderr) == (
        1, "damselfly manager: --database and --database-url-file ($DAMSELFLY_DATABASE_URL): one of them\n")


def test_secret_and_task_commands_say_one_line_and_never_show_a_password(server: str, tmp_path: Path) -> None:
    home = tmp_path / "admin"
    assert damselfly(["login", "--server", server, "--username", "admin", "--password-stdin"], home,
                     PASSWORD + "\n").returncode == 0
    secret_file = tmp_path / "registry-password"
    secret_file.write_text("registry-pw-9Kq\n")
    made = damselfly(["secret", "create", "hub", "--username", "robot", "--password-file", str(secret_file)], home)
    assert made.returncode == 0, made.stderr
    by_env = damselfly(["secret", "create", "quay", "--username", "bot"], home,
                       env={"DAMSELFLY_SECRET_PASSWORD": "env-pw-77x"})
    assert by_env.returncode == 0, by_env.stderr
    none = damselfly(["secret", "create", "x", "--username", "u"], home)
    assert none.returncode == 1 and len(none.stderr.splitlines()) == 1 and "--password-file" in none.stderr
    for listed in (damselfly(["secret", "list"], home), damselfly(["secret", "list", "--json"], home)):
        assert listed.returncode == 0 and "hub" in listed.stdout and "quay" in listed.stdout
        assert "registry-pw-9Kq" not in listed.stdout and "env-pw-77x" not in listed.stdout

    # A manager alone without --supernode has no way to the hosts: refused, saying so, in one line.
    task = damselfly(["task", "create", "image", "team/app:1", "--hosts", "a,b", "--rate", "50MB/s"], home)
    assert task.returncode == 1 and len(task.stderr.splitlines()) == 1
    assert task.stderr.startswith("damselfly task create: 503 this manager reaches no supernode")
    bad = damselfly(["task", "create", "--image", "team/app:1", "--selector", "zone"], home)
    assert bad.stderr == "damselfly task create: --selector: expected KEY=VALUE, got 'zone'\n"
    neither = damselfly(["task", "create", "file", "http://files/x"], home)
    assert neither.stderr == "damselfly task create: a file needs --path: where it lands on each host\n"
    listed_tasks = damselfly(["task", "list"], home)
    assert listed_tasks.returncode == 0 and listed_tasks.stdout.split()[:2] == ["id", "kind"]
    missing = damselfly(["task", "show", "42", "--json"], home)
    assert (missing.returncode, missing.stderr) == (1, "damselfly task show: 404 no task 42\n")
    assert damselfly(["secret", "delete", "hub"], home).returncode == 0
    assert "hub" not in damselfly(["secret", "list"], home).stdout
