"""A subprocess that is always cleaned up.

``ManagedProcess`` starts a command in its own session (so it and anything it
forks share one process group that we can signal as a unit), sends its output
to a log file, waits for it to become ready by polling a URL, and on stop sends
SIGTERM, then SIGKILL after a grace period.

Cleanup is belt and braces: use it as a context manager or through a fixture,
and an ``atexit`` hook still kills whatever a crashed test left running.

The group is signalled only while the leader is still unreaped (alive or a
zombie): until we reap it, its pid, and so its process-group id, cannot be
reused by an unrelated process, so a group signal can only reach processes
this library started.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from tests.support.ports import wait_http

# Every started, not yet reaped process, so the atexit hook can kill
# leftovers. Strong references on purpose: a test that drops a running
# process object must not make it unreachable for cleanup.
_LIVE: set[ManagedProcess] = set()

# What the process_factory fixture hands a test: ManagedProcess arguments in,
# a started process out.
ProcessFactory = Callable[..., "ManagedProcess"]


class ProcessExitedError(RuntimeError):
    """The process exited while we were waiting for it to become ready."""


class ManagedProcess:
    """A command run in its own process group with readiness and cleanup.

    ``env`` entries are laid over the current environment; a value of ``None``
    removes that variable (so tests can strip e.g. proxy settings).
    ``ready_url=None`` means "ready as soon as it is spawned".
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        ready_url: str | None = None,
        ready_status: int | None = 200,
        ready_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        name: str | None = None,
    ) -> None:
        self.args = [str(a) for a in args]
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self.cwd = cwd
        self.ready_url = ready_url
        self.ready_status = ready_status
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.name = name or Path(self.args[0]).name
        self._popen: subprocess.Popen[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> ManagedProcess:
        """Spawn the command and wait until it is ready; return self."""
        if self._popen is not None:
            raise RuntimeError(f"{self.name} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        # Append mode: stdout and stderr share one file without overwriting
        # each other, and O_APPEND keeps each write whole.
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        _LIVE.add(self)
        if self.ready_url is not None:
            try:
                wait_http(
                    self.ready_url,
                    timeout=self.ready_timeout,
                    expect_status=self.ready_status,
                    check=self._raise_if_exited,
                )
            except BaseException:
                # Never leave a half-started process behind a failed start.
                self.stop()
                raise
        return self

    def stop(self) -> int | None:
        """SIGTERM the group, SIGKILL after ``stop_timeout``; return the exit code."""
        if self._popen is None:
            return None
        if self._popen.returncode is None:
            self._signal_group(signal.SIGTERM)
            if not self._wait_unreaped(self.stop_timeout):
                self._signal_group(signal.SIGKILL)
        return self._finish()

    def kill_hard(self) -> int | None:
        """SIGKILL the whole group at once (simulates a crash); return the exit code."""
        if self._popen is None:
            return None
        if self._popen.returncode is None:
            self._signal_group(signal.SIGKILL)
        return self._finish()

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit by itself; raise TimeoutError if it does not."""
        popen = self._require_started()
        if not self._wait_unreaped(timeout):
            raise TimeoutError(f"{self.name} (pid {popen.pid}) still running after {timeout}s")
        code = self._finish()
        assert code is not None
        return code

    # -- inspection ----------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._require_started().pid

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.returncode

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.returncode is None and not self._exited()

    def log_text(self, tail: int | None = None) -> str:
        """The process's output so far (the last ``tail`` characters if given)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text if tail is None else text[-tail:]

    # -- context manager -----------------------------------------------------

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "not started" if self._popen is None else f"pid={self._popen.pid}"
        return f"ManagedProcess({self.name!r}, {state}, rc={self.returncode})"

    # -- internals -----------------------------------------------------------

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError(f"{self.name} not started")
        return self._popen

    def _exited(self) -> bool:
        """Has the leader exited? Checked with WNOWAIT so it stays unreaped."""
        popen = self._require_started()
        if popen.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _wait_unreaped(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _signal_group(self, sig: signal.Signals) -> None:
        popen = self._require_started()
        if popen.returncode is not None:
            return  # reaped: its pgid may belong to someone else now
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, sig)

    def _finish(self) -> int | None:
        """Kill stragglers in the group, then reap the leader."""
        popen = self._require_started()
        if popen.returncode is None:
            # The leader may have exited on SIGTERM while children it forked
            # live on; they are ours, and the zombie leader still pins the pgid.
            self._signal_group(signal.SIGKILL)
            # A process in uninterruptible sleep may outlive even SIGKILL
            # for a while; do not hang the test session on it.
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=10.0)
        _LIVE.discard(self)
        return popen.returncode

    def _raise_if_exited(self) -> None:
        if self._exited():
            code = self._finish()
            raise ProcessExitedError(
                f"{self.name} exited with {code} before it was ready; "
                f"log {self.log_path} ends with:\n{self.log_text(tail=4000)}"
            )


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        proc.kill_hard()
