"""`damselfly configure docker|containerd|podman`: point this host's container clients at its Damselfly mirror.

What each client needs (../shared/CLIENTS.md has the observed behaviour):
- docker: `registry-mirrors` in daemon.json. Docker uses mirrors for Docker Hub names only; they arrive with
  no registry in the path and are served by the proxy's default registry. `kill -HUP` of dockerd reloads them.
- containerd: `certs.d/<registry>/hosts.toml` with the mirror as the first host; requests carry `?ns=<registry>`.
  `_default` covers every registry without a directory of its own.
- podman, skopeo, buildah (containers/image): a registries.conf.d drop-in with a mirror location
  `<mirror>/<registry>`, so requests arrive as `/v2/<registry>/<repo>/...` (containers/image sends no `ns`).

Existing files are merged, never clobbered: other daemon.json keys and mirrors stay, hosts.toml keeps its
server, hosts and comments (our host is inserted first), our drop-in keeps the entries of other registries.
A file that cannot be merged safely (not JSON/TOML, an unexpected shape) is left alone with an error.
Every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.config import ProxyConfig

from . import client_configs
from .client_configs import ConfigureError

# Where `damselfly peer` listens by default.
DEFAULT_MIRROR = f"http://{ProxyConfig().listen_host}:{ProxyConfig().listen_port}"
DOCKER_HUB = "docker.io"
# Paths relative to --root (default "/").
DAEMON_JSON = "etc/docker/daemon.json"
CERTS_D = "etc/containerd/certs.d"
DROPIN = "etc/containers/registries.conf.d/90-damselfly.conf"

__all__ = ["ConfigureError", "FileChange", "add_parser", "plan", "run"]


@dataclass(frozen=True, slots=True)
class FileChange:
    path: Path
    old: str | None  # None: the file does not exist yet
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new


def add_parser(commands: Any) -> None:
    """Register `configure` on the CLI's subparsers."""
    sub: argparse.ArgumentParser = commands.add_parser(
        "configure", help="point docker, containerd or podman on this host at the Damselfly mirror"
    )
    sub.add_argument("client", choices=["docker", "containerd", "podman"])
    sub.add_argument("--mirror", default=None, help=f"the mirror's URL (default: from --config, else {DEFAULT_MIRROR})")
    sub.add_argument(
        "--registry",
        action="append",
        default=[],
        metavar="NAME",
        help="a registry to mirror, repeatable (default: the [[registry]] names of --config, and docker.io)",
    )
    sub.add_argument("--root", default="/", help="prefix of every path written (default /)")
    sub.add_argument(
        "--path",
        default=None,
        help=f"the file or directory to write instead of ROOT/{DAEMON_JSON}, ROOT/{CERTS_D} or ROOT/{DROPIN}",
    )
    sub.add_argument("--dry-run", action="store_true", help="print what would be written, write nothing")
    sub.add_argument("--config", default=None, help="Damselfly TOML file to take the mirror and registries from")
    sub.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace, conf: dict[str, Any]) -> int:
    mirror = args.mirror or mirror_from_settings(conf)
    registries = list(dict.fromkeys([*args.registry, *registries_from_settings(conf)])) or [DOCKER_HUB]
    changes = plan(args.client, mirror, registries, Path(args.root), Path(args.path) if args.path else None)
    for change in changes:
        if not change.changed:
            print(f"unchanged {change.path}")
        elif args.dry_run:
            print(f"would write {change.path}:\n{change.new}", end="" if change.new.endswith("\n") else "\n")
        else:
            write_atomically(change.path, change.new)
            print(f"wrote {change.path}")
    for note in notes(args.client, registries, Path(args.root)):
        print(f"note: {note}", file=sys.stderr)
    return 0


def plan(client: str, mirror: str, registries: list[str], root: Path, path: Path | None = None) -> list[FileChange]:
    """The files to write for `client`, each with its current and its merged text."""
    mirror = client_configs.check_mirror(mirror)
    names = [client_configs.check_registry(name) for name in registries]
    if client == "docker":
        target = path or root / DAEMON_JSON
        old = _read(target)
        return [FileChange(target, old, client_configs.merge_daemon_json(old, mirror))]
    if client == "containerd":
        certs_d = path or root / CERTS_D
        changes = []
        for name in dict.fromkeys(["_default", *names]):
            target = certs_d / name / "hosts.toml"
            old = _read(target)
            changes.append(FileChange(target, old, client_configs.merge_hosts_toml(old, name, mirror)))
        return changes
    if client == "podman":
        target = path or root / DROPIN
        old = _read(target)
        return [FileChange(target, old, client_configs.merge_registries_dropin(old, names, mirror))]
    raise ConfigureError(f"unknown client {client!r}: expected docker, containerd or podman")


def notes(client: str, registries: list[str], root: Path) -> list[str]:
    if client == "docker":
        others = [name for name in registries if name not in client_configs.DOCKER_HUB_NAMES]
        found = [
            "dockerd applies registry-mirrors to Docker Hub names only; it reaches the proxy's default registry"
        ]
        if others:
            found.append(
                f"not mirrored by docker: {', '.join(others)} (use containerd or podman for those; the platform's "
                "runtime jobs have docker pull them from the mirror by name)"
            )
        found.append("reload with `kill -HUP $(pidof dockerd)` or restart docker")
        return found
    if client == "containerd":
        return [
            f"the CRI plugin reads these only with config_path = \"/{CERTS_D}\" under "
            '[plugins."io.containerd.grpc.v1.cri".registry] in config.toml; '
            f"ctr needs --hosts-dir /{CERTS_D}"
        ]
    return []


def mirror_from_settings(conf: dict[str, Any]) -> str:
    proxy = conf.get("proxy", {})
    if not isinstance(proxy, dict) or "listen" not in proxy:
        return DEFAULT_MIRROR
    host, _, port = str(proxy["listen"]).rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"  # a wildcard listener is reached on loopback from this host
    scheme = "https" if proxy.get("tls_cert") else "http"
    return f"{scheme}://{host}:{port}"


def registries_from_settings(conf: dict[str, Any]) -> list[str]:
    entries = conf.get("registry", [])
    if not isinstance(entries, list):
        return []
    return [str(entry["name"]) for entry in entries if isinstance(entry, dict) and "name" in entry]


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigureError(f"cannot read {path}: {exc.strerror}") from exc


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename, keeping the old file's permissions."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            Path(tmp).chmod(mode)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigureError(f"cannot write {path}: {exc.strerror}") from exc
