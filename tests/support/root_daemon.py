"""The lifecycle shared by the daemons tests start as root (containerd, dockerd): stop the process, unmount
what it mounted under its directories, remove its run directory; usable as a context manager."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.mounts import unmount_under
from tests.support.procs import ManagedProcess


class RootDaemon:
    workdir: Path
    rundir: Path | None
    process: ManagedProcess | None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        unmount_under(self.workdir)
        if self.rundir is not None:
            unmount_under(self.rundir)
            shutil.rmtree(self.rundir, ignore_errors=True)
            self.rundir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
