"""Secure by default: the cluster's secret comes from a file or the environment, never from argv; a listener beyond
loopback needs it (or `--insecure-open-cluster`, which the log and `/healthz` then say); `up` makes one."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from damselfly import settings
from damselfly.cli import build_parser
from damselfly.cluster_secret import UP_SECRET_FILE, check_listeners, is_loopback, with_up_secret
from peer.config import PeerConfig
from supernode.config import SupernodeConfig
from supernode.server import create_app
from tests.supernode.test_server import call
from tests.support.cluster import CLEAN_ENV
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess

REPO = Path(__file__).resolve().parents[2]
SECRET = "the-cluster-secret-0123456789"


@pytest.fixture(autouse=True)
def no_secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAMSELFLY_JOIN_TOKEN", raising=False)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    return subprocess.run(
        [sys.executable, "-m", "damselfly", *args], capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**clean, **(env or {})},
    )


def build(argv: list[str], conf: dict[str, object] | None = None) -> settings.Settings:
    return settings.build(build_parser().parse_args(argv), conf or {})


def secret_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "join-token"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_secret_is_read_from_its_file_for_both_daemons(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = secret_file(tmp_path, SECRET + "\n")
    with caplog.at_level(logging.WARNING):
        assert build(["supernode", "--join-token-file", str(path)]).supernode.join_token == SECRET
        assert build(["peer", "--join-token-file", str(path)]).peer.join_token == SECRET
        assert build(["peer"], {"peer": {"join_token_file": str(path)}}).peer.join_token == SECRET
    assert caplog.records == []  # a 0600 file is as it should be


def test_a_file_others_may_read_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = secret_file(tmp_path, SECRET, mode=0o644)
    with caplog.at_level(logging.WARNING):
        assert build(["supernode", "--join-token-file", str(path)]).supernode.join_token == SECRET
    (warning,) = [r.getMessage() for r in caplog.records]
    assert str(path) in warning and "644" in warning and "chmod 600" in warning
    assert SECRET not in warning


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "is empty"), (" \n\t\n", "is empty"), ("two words", "one word of printable ASCII"), ("x" * 5000, "larger")],
)
def test_a_file_without_one_secret_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = secret_file(tmp_path, text)
    with pytest.raises(settings.SettingsError) as raised:
        build(["supernode", "--join-token-file", str(path)])
    assert str(raised.value).startswith(f"--join-token-file: {path}") and message in str(raised.value)


def test_a_missing_file_an_empty_variable_and_a_secret_in_the_config_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(settings.SettingsError, match=r"cannot read .*: No such file or directory"):
        build(["peer", "--join-token-file", str(tmp_path / "nowhere")])
    with pytest.raises(settings.SettingsError, match=r"^\[supernode\] join_token: the secret is not kept in"):
        build(["supernode"], {"supernode": {"join_token": SECRET}})
    monkeypatch.setenv("DAMSELFLY_JOIN_TOKEN", " ")
    with pytest.raises(settings.SettingsError, match=r"^\$DAMSELFLY_JOIN_TOKEN: the value is empty"):
        build(["supernode"])
    monkeypatch.setenv("DAMSELFLY_JOIN_TOKEN", SECRET)
    assert build(["up"]).peer.join_token == SECRET


@pytest.mark.parametrize("given", [["--join-token", SECRET], [f"--join-token={SECRET}"]])
@pytest.mark.parametrize("command", ["supernode", "peer", "up"])
def test_a_secret_on_the_command_line_is_refused_in_one_line(command: str, given: list[str]) -> None:
    result = run(command, "--listen", "127.0.0.1:1", *given)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"damselfly {command}: --join-token: a secret on the command line is readable")
    assert "--join-token-file FILE" in line and "$DAMSELFLY_JOIN_TOKEN" in line
    assert SECRET not in result.stderr + result.stdout


def test_loopback_is_told_from_everywhere_else() -> None:
    for host in ("127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "10.0.0.1", "::ffff:10.0.0.1", "example.test", "127.0.0.1.example.test"):
        assert not is_loopback(host), host


@pytest.mark.parametrize(
    ("argv", "listener"),
    [
        (["supernode", "--listen", "0.0.0.0:8002"], "0.0.0.0:8002 (--listen)"),
        (["supernode"], "0.0.0.0:8002 (--listen)"),  # the default
        (["supernode", "--listen", "[::]:8002"], ":::8002 (--listen)"),
        (["peer", "--upload-listen", "10.0.0.1:7000"], "10.0.0.1:7000 (--upload-listen)"),
        (["peer"], "0.0.0.0:65002 (--upload-listen)"),
    ],
)
def test_listening_beyond_loopback_without_a_secret_is_refused(argv: list[str], listener: str) -> None:
    config = build(argv)
    with pytest.raises(settings.SettingsError) as raised:
        check_listeners(argv[0], config)
    message = str(raised.value)
    assert message.startswith(f"refusing to listen on {listener} without the cluster's secret")
    assert "--insecure-open-cluster" in message and "\n" not in message


def test_loopback_or_a_secret_or_the_operators_word_lets_it_listen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = secret_file(tmp_path, SECRET)
    with caplog.at_level(logging.WARNING):
        check_listeners("supernode", build(["supernode", "--listen", "127.0.0.1:8002"]))
        check_listeners("peer", build(["peer", "--upload-listen", "[::1]:7000"]))
        check_listeners("supernode", build(["supernode", "--join-token-file", str(path)]))
        check_listeners("peer", build(["peer", "--join-token-file", str(path)]))
        assert caplog.records == []
        check_listeners("peer", build(["peer", "--insecure-open-cluster"]))
    (warning,) = [r for r in caplog.records]
    assert warning.levelno == logging.WARNING and warning.getMessage().startswith("INSECURE OPEN CLUSTER")


def test_the_command_refuses_in_one_line_without_a_traceback() -> None:
    result = run("supernode", "--listen", f"0.0.0.0:{free_port()}")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("damselfly supernode: refusing to listen on 0.0.0.0:")
    result = run("peer", "--listen", f"127.0.0.1:{free_port()}", "--upload-listen", f"0.0.0.0:{free_port()}")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("damselfly peer: refusing to listen on 0.0.0.0:")


def test_an_open_cluster_says_so_in_the_log_and_at_healthz(tmp_path: Path) -> None:
    port = free_port()
    args = [sys.executable, "-m", "damselfly", "supernode", "--listen", f"0.0.0.0:{port}", "--insecure-open-cluster",
            "--data-dir", str(tmp_path / "sn")]
    url = f"http://127.0.0.1:{port}"
    with ManagedProcess(args, log_path=tmp_path / "sn.log", env=CLEAN_ENV, ready_url=url + "/healthz", cwd=REPO) as sn:
        health = httpx.get(url + "/healthz", timeout=5.0, trust_env=False).json()
        assert health == {"status": "ok", "insecure_open_cluster": True}
        assert "WARNING damselfly.cluster_secret: INSECURE OPEN CLUSTER: the supernode listens on 0.0.0.0:" in (
            sn.log_text()
        )


async def test_healthz_says_nothing_is_open_with_a_secret() -> None:
    for config, open_cluster in [
        (SupernodeConfig(join_token=SECRET, insecure_open_cluster=True), False),
        (SupernodeConfig(join_token=SECRET), False),
        (SupernodeConfig(insecure_open_cluster=True), True),
    ]:
        status, _, body = await call(create_app(config), "GET", "/healthz", token=None)
        assert (status, json.loads(body)) == (200, {"status": "ok", "insecure_open_cluster": open_cluster})


def test_up_makes_its_secret_once_with_mode_0600_and_reuses_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = settings.Settings(peer=PeerConfig(data_dir=data))
    first = with_up_secret(config)
    path = data / UP_SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) >= 43 and first.supernode.join_token == first.peer.join_token == secret
    again = with_up_secret(config)
    assert again.supernode.join_token == again.peer.join_token == secret
    check_listeners("up", again)  # `up` listens beyond loopback by default: with its secret, it may


def test_up_takes_a_secret_given_and_makes_none(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = settings.Settings(supernode=SupernodeConfig(join_token=SECRET), peer=PeerConfig(data_dir=data))
    given = with_up_secret(config)
    assert given.supernode.join_token == given.peer.join_token == SECRET
    assert not (data / UP_SECRET_FILE).exists()
