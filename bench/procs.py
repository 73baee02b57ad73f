"""Child processes of a benchmark: each in its own process group with a log file, always stopped.

Every command runs with a timeout (`run`) or is owned by a `ProcessSet` that stops it (SIGTERM, then SIGKILL
after a grace period) when the benchmark ends, also on error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

# Proxy settings of the machine must never carry benchmark traffic anywhere.
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class CommandFailed(RuntimeError):
    """A command exited non-zero or did not become ready; the message carries its output."""


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS and not k.startswith("REGISTRY_")}
    env.update(extra or {})
    return env


def run(args: Sequence[str], *, timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a short command to completion; on timeout it is killed and TimeoutExpired propagates."""
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=clean_env())
    if check and result.returncode != 0:
        raise CommandFailed(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return result


class Proc:
    """A long-running command in its own session, so it and whatever it forks can be signalled as one group."""

    def __init__(self, args: Sequence[str], *, log_path: Path, name: str, env: Mapping[str, str] | None = None):
        self.args = [str(a) for a in args]
        self.log_path = log_path
        self.name = name
        self.env = clean_env(env)
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError(f"{self.name} not started")
        return self._popen.pid

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for the command to exit by itself; raises subprocess.TimeoutExpired."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} not started")
        return self._popen.wait(timeout)

    def log_text(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def wait_for_log(self, needle: str, timeout: float) -> None:
        """Readiness by the line a daemon prints once it listens."""
        self.wait_until(lambda: needle in self.log_text(tail=1 << 20), timeout)

    def wait_for_http(self, url: str, timeout: float, prefix: Sequence[str] = ()) -> None:
        """Readiness by a 200 from `url`, asked with curl run through `prefix` (e.g. inside a namespace)."""
        args = [*prefix, "curl", "-sf", "-o", "/dev/null", "--max-time", "2", url]
        self.wait_until(lambda: subprocess.run(args, timeout=10, env=self.env).returncode == 0, timeout)

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.running():
                raise CommandFailed(f"{self.name} exited before it was ready:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise CommandFailed(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_text()}")
            time.sleep(0.1)

    def stop(self, grace: float = 5.0) -> None:
        popen = self._popen
        if popen is None or popen.returncode is not None:
            return
        # Signal the group only while the leader is unreaped: until then its pgid cannot belong to anyone else.
        self._signal(signal.SIGTERM)
        try:
            popen.wait(grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(10.0)

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig` to the whole group now: a fault injected on purpose (`stop` is the orderly end). Reap it
        with `wait`."""
        if self._popen is not None and self._popen.returncode is None:
            self._signal(sig)

    def _signal(self, sig: signal.Signals) -> None:
        assert self._popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)


class ProcessSet:
    """Owns the processes of one phase; leaving the block stops them all, newest first."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc.start()

    def stop_all(self) -> None:
        while self.procs:
            self.procs.pop().stop()

    def __enter__(self) -> ProcessSet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a live process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_together(
    procs: Sequence[Proc], timeout: float, at_start: Callable[[float], None] | None = None
) -> tuple[float, list[float | None], list[int | None]]:
    """Start every command at the same moment and wait for all: the start's `time.monotonic()`, each one's end
    (None: it timed out and was stopped) and exit code. `at_start` is called with the start once all are started.
    Ctrl-C while waiting: none outlives the caller."""
    ends: list[float | None] = [None] * len(procs)
    codes: list[int | None] = [None] * len(procs)

    def waiter(index: int) -> None:
        try:
            codes[index] = procs[index].wait(timeout)
        except subprocess.TimeoutExpired:
            procs[index].stop(grace=1.0)
            return
        ends[index] = time.monotonic()

    start = time.monotonic()
    for proc in procs:
        proc.start()
    if at_start is not None:
        at_start(start)
    threads = [threading.Thread(target=waiter, args=(i,), daemon=True) for i in range(len(procs))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        for proc in procs:
            proc.stop(grace=1.0)
    return start, ends, codes
