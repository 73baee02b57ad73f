"""A throwaway PostgreSQL cluster from Debian's packages: initdb in a temp dir, started on a free loopback port with
its unix socket in that dir, stopped and removed afterwards. As root the server runs as an unprivileged user
(postgres refuses to run as root), which owns the temp dir."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.ports import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "damselfly"


class PostgresMissing(RuntimeError):
    pass


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"]
    raise PostgresMissing("running as root, and neither user postgres nor nobody exists to run the server")


class PostgresCluster:
    def __init__(self) -> None:
        if not (BIN / "initdb").is_file() or not (BIN / "pg_ctl").is_file():
            raise PostgresMissing(f"PostgreSQL 15 binaries not found in {BIN} (Debian package postgresql-15)")
        self.prefix = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="damselfly-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.started = False

    def _chown(self) -> None:
        if self.prefix:
            user = pwd.getpwnam(self.prefix[2])
            for path in (self.root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)

    def start(self) -> PostgresCluster:
        self.socket_dir.mkdir()
        self._chown()
        subprocess.run(
            [*self.prefix, str(BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
             "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, timeout=120,
        )
        options = f"-p {self.port} -k {self.socket_dir} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(
            [*self.prefix, str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
             "-t", "60", "start"],
            check=True, capture_output=True, timeout=90,
        )
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        subprocess.run(
            [str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name],
            check=True, capture_output=True, timeout=30,
        )
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                [*self.prefix, str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True, timeout=60, check=False,
            )
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)
