"""ManagedProcess and the port helpers, on small Python child processes."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.support.ports import NotReadyError, free_port, wait_http
from tests.support.procs import ManagedProcess, ProcessExitedError, ProcessFactory


def _http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_http_times_out_on_closed_port() -> None:
    started = time.monotonic()
    with pytest.raises(NotReadyError):
        wait_http(f"http://127.0.0.1:{free_port()}/", timeout=0.5)
    assert time.monotonic() - started < 5


def test_start_ready_stop(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = ManagedProcess(_http_server(port), log_path=tmp_path / "http.log", ready_url=url)
    with proc:
        assert proc.is_running()
        assert wait_http(url, timeout=1, expect_status=200).status_code == 200
        pid = proc.pid
    assert not proc.is_running()
    assert proc.returncode == -signal.SIGTERM
    assert not _pid_alive(pid)
    assert "GET / HTTP" in proc.log_text()  # stderr went to the log


def test_sigterm_ignored_escalates_to_sigkill(tmp_path: Path) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    proc = ManagedProcess([sys.executable, "-c", script], log_path=tmp_path / "p.log", stop_timeout=0.5).start()
    time.sleep(0.2)  # let it install the handler
    started = time.monotonic()
    assert proc.stop() == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_stop_kills_grandchildren(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    proc = ManagedProcess([sys.executable, "-c", script], log_path=tmp_path / "p.log").start()
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child = int(pid_file.read_text())
    assert _pid_alive(child)
    proc.stop()
    deadline = time.monotonic() + 5
    # The grandchild is reparented to init, which reaps it shortly after.
    while _pid_alive(child):
        assert time.monotonic() < deadline, "grandchild survived stop()"
        time.sleep(0.02)


def test_kill_hard(tmp_path: Path) -> None:
    port = free_port()
    proc = ManagedProcess(
        _http_server(port), log_path=tmp_path / "p.log", ready_url=f"http://127.0.0.1:{port}/"
    ).start()
    assert proc.kill_hard() == -signal.SIGKILL
    assert proc.stop() == -signal.SIGKILL  # idempotent


def test_early_exit_fails_fast_with_log(tmp_path: Path) -> None:
    script = "import sys; print('boom: bad flag', file=sys.stderr); sys.exit(3)"
    proc = ManagedProcess(
        [sys.executable, "-c", script],
        log_path=tmp_path / "p.log",
        ready_url=f"http://127.0.0.1:{free_port()}/",
        ready_timeout=30,
    )
    started = time.monotonic()
    with pytest.raises(ProcessExitedError, match="boom: bad flag"):
        proc.start()
    assert time.monotonic() - started < 10
    assert proc.returncode == 3


def test_env_overrides_and_removal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAMSELFLY_TEST_DROP", "x")
    script = "import os; print(os.environ.get('A'), os.environ.get('DAMSELFLY_TEST_DROP'))"
    proc = ManagedProcess(
        [sys.executable, "-c", script],
        log_path=tmp_path / "p.log",
        env={"A": "1", "DAMSELFLY_TEST_DROP": None},
    ).start()
    assert proc.wait_exit(10) == 0
    assert proc.log_text().strip() == "1 None"


def test_process_factory_stops_everything(process_factory: ProcessFactory) -> None:
    port = free_port()
    proc = process_factory(_http_server(port), ready_url=f"http://127.0.0.1:{port}/")
    assert proc.is_running()
