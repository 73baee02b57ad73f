"""The command line's promises: where it listens, and one-line reasons for a non-zero exit."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.support.ports import free_port


def run(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "damselfly", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_a_bad_flag_is_one_line_and_exit_2() -> None:
    result = run("peer", "--no-such-flag")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--no-such-flag" in result.stderr


def test_a_bad_address_is_refused() -> None:
    result = run("supernode", "--listen", "nowhere")
    assert result.returncode == 1
    assert result.stderr.strip() == "damselfly supernode: --listen: expected HOST:PORT, got 'nowhere'"


def test_a_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("supernode", "--listen", f"127.0.0.1:{port}", "--no-manager")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"damselfly supernode: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_an_unreachable_supernode_is_retried_then_reported(tmp_path: Path) -> None:
    dead = free_port()
    result = run(
        "peer",
        "--supernode",
        f"http://127.0.0.1:{dead}",
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--upload-listen",
        f"127.0.0.1:{free_port()}",
        "--files-listen",
        f"127.0.0.1:{free_port()}",
        "--data-dir",
        str(tmp_path),
        "--upstream",
        "http://127.0.0.1:1",
        "--supernode-timeout",
        "2",
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"damselfly peer: supernode http://127.0.0.1:{dead} unreachable")


def test_starting_a_daemon_does_not_import_the_benchmark() -> None:
    # The benchmark is most of the code base; a daemon's start-up needs only the flags of `bench` and `simulate`.
    probe = (
        "import sys, damselfly.cli\n"
        "damselfly.cli.build_parser().parse_args(['peer'])\n"
        "print(' '.join(sorted(m for m in sys.modules if m == 'bench' or m.startswith('bench.'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[1]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["bench", "bench.cli", "bench.sim_model"]


def test_the_benchmark_commands_show_their_flags() -> None:
    bench = run("bench", "--help")
    simulate = run("simulate", "--help")
    assert bench.returncode == simulate.returncode == 0
    assert "--scenarios" in bench.stdout and "--cleanup" in bench.stdout
    assert "--report-interval" in simulate.stdout and "--sequential" in simulate.stdout
