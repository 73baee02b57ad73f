"""Run the real CNCF registry (``docker-registry serve``) for tests.

``RegistryServer`` writes a config file, starts the registry on a free
loopback port with its own storage root, waits until ``GET /v2/`` answers, and
counts the bytes it served by parsing its JSON log (see ``registry_log`` for
what docker-registry 2.8.2 actually logs and how disconnects are counted).

The config is written as JSON: JSON is valid YAML, and the registry's YAML
parser reads it, which spares us a YAML dependency.

Things found by running it:

- ``REGISTRY_*`` environment variables override the config file, so they are
  removed from the child's environment to keep each server hermetic.
- Without ``http.secret`` it logs a warning and picks a random one; we set a
  random secret ourselves.
- In ``proxy:`` mode the registry refuses pushes; push to its remote instead.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.registry import settle as settle_log
from tests.support.ports import LOOPBACK, free_port
from tests.support.procs import ManagedProcess
from tests.support.registry_log import (
    RequestRecord,
    end_offset,
    read_access_log,
    read_requests,
    sum_written,
)

BINARY = "docker-registry"


# What the registry_factory fixture hands a test: RegistryServer kwargs in,
# a started server out.
RegistryFactory = Callable[..., "RegistryServer"]


def htpasswd_entry(user: str, password: str, timeout: float = 30.0) -> str:
    """A bcrypt htpasswd line made by apache2-utils' ``htpasswd -Bbn``.

    The registry accepts only bcrypt entries, which is why we do not write
    the file with a hand-rolled hash.
    """
    result = subprocess.run(
        ["htpasswd", "-Bbn", user, password],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    line = result.stdout.strip()
    if not line.startswith(f"{user}:$2"):
        raise RuntimeError(f"unexpected htpasswd output: {result.stdout!r}")
    return line


class RegistryServer:
    """A ``docker-registry serve`` process on 127.0.0.1 with byte accounting.

    Usable as a context manager or with ``start()``/``stop()``. If
    ``workdir`` is None a temporary directory is created and removed on stop;
    a given ``workdir`` is kept so a failing test's log can be read.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        htpasswd: tuple[str, str] | None = None,
        token_auth: dict[str, Any] | None = None,
        proxy_remote_url: str | None = None,
        proxy_credentials: tuple[str, str] | None = None,
        addr: str | None = None,
        extra_config: dict[str, Any] | None = None,
        start_timeout: float = 15.0,
        stop_timeout: float = 5.0,
    ) -> None:
        if htpasswd is not None and token_auth is not None:
            raise ValueError("the registry takes one auth method: htpasswd or token_auth")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="damselfly-registry-"))
        self.htpasswd = htpasswd
        self.token_auth = token_auth
        self.proxy_remote_url = proxy_remote_url
        self.proxy_credentials = proxy_credentials
        self.addr = addr or f"{LOOPBACK}:{free_port()}"
        self.extra_config = extra_config or {}
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.storage_dir = self.workdir / "storage"
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self._offset = 0
        self._process: ManagedProcess | None = None

    # -- addresses -----------------------------------------------------------

    @property
    def host(self) -> str:
        """``host:port``, the form image references and skopeo use."""
        return self.addr

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def ref(self, repo: str, tag: str) -> str:
        """An image reference on this registry, e.g. ``127.0.0.1:5000/test/app:v1``."""
        return f"{self.host}/{repo}:{tag}"

    # -- config --------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The registry configuration this server runs with."""
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {
                "level": "info",
                "formatter": "json",
                "accesslog": {"disabled": False},
            },
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.addr, "secret": secrets.token_hex(16)},
        }
        if self.htpasswd is not None:
            config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(self.workdir / "htpasswd")}}
        if self.token_auth is not None:
            config["auth"] = {"token": dict(self.token_auth)}
        if self.proxy_remote_url is not None:
            proxy: dict[str, str] = {"remoteurl": self.proxy_remote_url}
            if self.proxy_credentials is not None:
                proxy["username"], proxy["password"] = self.proxy_credentials
            config["proxy"] = proxy
        _deep_merge(config, self.extra_config)
        return config

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> RegistryServer:
        if self._process is not None:
            raise RuntimeError("registry already started")
        if shutil.which(BINARY) is None:
            raise FileNotFoundError(f"{BINARY} not on PATH (apt-get install docker-registry)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        if self.htpasswd is not None:
            user, password = self.htpasswd
            (self.workdir / "htpasswd").write_text(htpasswd_entry(user, password) + "\n")
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("REGISTRY_")}
        self._process = ManagedProcess(
            [BINARY, "serve", str(self.config_path)],
            log_path=self.log_path,
            env=env,
            ready_url=f"{self.url}/v2/",
            ready_status=None,  # 401 with auth on is "up" too
            ready_timeout=self.start_timeout,
            stop_timeout=self.stop_timeout,
            name=f"docker-registry@{self.addr}",
        )
        try:
            self._process.start()
        except BaseException:
            self._process = None
            raise
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def process(self) -> ManagedProcess:
        if self._process is None:
            raise RuntimeError("registry not running")
        return self._process

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- byte accounting -----------------------------------------------------

    def reset_counts(self, settle: bool = True) -> None:
        """Count only requests finished after this call.

        With ``settle`` it first waits for the log to go quiet, so a request
        that finished just before is not counted as the caller's.
        """
        if settle:
            self.settle()
        self._offset = end_offset(self.log_path)

    def settle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until the log has not grown for ``quiet`` seconds.

        Needed because the registry writes a request's line after the client
        may already have its last byte (see ``registry_log``).
        """
        settle_log(self.log_path, quiet, timeout)

    def requests(self, settle: bool = True) -> list[RequestRecord]:
        """Requests finished since the last ``reset_counts()`` (or start)."""
        if settle:
            self.settle()
        return read_requests(self.log_path, self._offset)

    def access_log(self, settle: bool = True) -> list[RequestRecord]:
        """Like ``requests()`` but from the access log, so 401 challenges are in it."""
        if settle:
            self.settle()
        return read_access_log(self.log_path, self._offset)

    def served_bytes(
        self,
        method: str | None = "GET",
        path_contains: str | None = "/blobs/",
        *,
        status: int | None = None,
        settle: bool = True,
    ) -> int:
        """Sum of ``http.response.written`` over matching finished requests.

        The default counts blob bodies served by GET, the number a mirror
        test compares with an image's blob bytes. ``None`` means "any".
        """
        return sum_written(self.requests(settle=settle), method, path_contains, status)

    def log_text(self, tail: int | None = None) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text if tail is None else text[-tail:]


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    """Merge ``extra`` into ``base`` in place, recursing into nested dicts."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
