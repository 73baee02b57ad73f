"""The registry clients a pull storm can run on every host: skopeo, podman, containerd (`ctr`).

Each host's client gets state of its own under the storm's output directory (podman's storage root, a containerd
daemon with its own root, state and socket), so hosts share nothing but the network. What works with these
versions (skopeo 1.9.3, podman 4.3.1, containerd 1.6.20) is in /work/shared/CLIENTS.md and tests/support/:
- podman: `--runroot` must be at most 50 characters, so it lives in a short directory under /tmp;
  `--events-backend file` and `--cgroup-manager cgroupfs` keep it from needing journald or systemd.
- containerd: the CRI plugin is disabled; `ctr images pull` does the registry traffic in the ctr process (in the
  host's namespace), the daemon stores and unpacks. A unix socket path must fit in 108 bytes: /tmp again.
Every client started inside `ip netns exec` runs in a mount namespace of its own, so the overlay mounts podman and
containerd make vanish with their processes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .image import ImageInfo
from .netns import Host
from .procs import Proc, ProcessSet, cpu_seconds, run
from .pull import dir_pull_problems, skopeo_args

CLIENTS = ("skopeo", "podman", "containerd")
# How the hosts' clients reach their Damselfly in scenario (c): through a mirror entry for a made-up registry
# name (registries.conf, hosts.toml), or by pulling the mirror's address as if it were a registry.
MIRROR_MODES = ("entry", "registry")
# What each client command looks like, for the report.
COMMANDS = {
    "skopeo": "`skopeo copy docker://… dir:…`",
    "podman": "`podman pull …` (a storage root of its own per host, overlay driver)",
    "containerd": "`ctr images pull …` (a containerd of its own per host, overlayfs snapshotter, unpacked)",
}
START_TIMEOUT = 30.0
VERIFY_TIMEOUT = 60.0
_CONTENT_STORE = Path("io.containerd.content.v1.content") / "blobs" / "sha256"


@dataclass(frozen=True, slots=True)
class Route:
    """How one storm's clients reach their registry: the reference they pull, and the containerd hosts directory
    (None: no mirror entry; the reference's host is spoken to as plain http)."""

    ref: str
    hosts_dir: Path | None = None


class PullClient:
    """One kind of client. `prepare` runs before the storm's clock starts; `cleanup` after its processes ended."""

    name = ""

    def prepare(self, host: Host, out: Path, logs: Path, procs: ProcessSet) -> None:
        out.mkdir(parents=True, exist_ok=True)

    def ready(self) -> None:
        """Wait until what `prepare` started answers (all hosts' daemons start together)."""

    def args(self, host: Host, route: Route, out: Path) -> list[str]:
        raise NotImplementedError

    def problems(self, host: Host, route: Route, out: Path, image: ImageInfo) -> list[str]:
        """What is wrong with this host's pull (nothing: the empty list)."""
        raise NotImplementedError

    def cpu_seconds(self) -> float:
        """CPU the client's own daemons used so far (the pull commands' CPU is not counted anywhere)."""
        return 0.0

    def cleanup(self) -> None:
        """Remove what lives outside the storm's directories."""


class Skopeo(PullClient):
    name = "skopeo"

    def args(self, host: Host, route: Route, out: Path) -> list[str]:
        return skopeo_args(route.ref, out)

    def problems(self, host: Host, route: Route, out: Path, image: ImageInfo) -> list[str]:
        return dir_pull_problems(out, image.blobs, image.manifest_digest)


class Podman(PullClient):
    name = "podman"

    def __init__(self) -> None:
        self._runroots: dict[str, Path] = {}

    def prepare(self, host: Host, out: Path, logs: Path, procs: ProcessSet) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self._runroots[host.role] = Path(tempfile.mkdtemp(prefix="dfb-pm-", dir="/tmp"))

    def _base(self, host: Host, out: Path) -> list[str]:
        return [
            "podman", "--root", str(out / "root"), "--runroot", str(self._runroots[host.role]),
            "--tmpdir", str(out / "tmp"), "--storage-driver", "overlay", "--events-backend", "file",
            "--cgroup-manager", "cgroupfs",
        ]

    def args(self, host: Host, route: Route, out: Path) -> list[str]:
        return [*self._base(host, out), "pull", "--quiet", "--tls-verify=false", route.ref]

    def problems(self, host: Host, route: Route, out: Path, image: ImageInfo) -> list[str]:
        # podman checks every blob's digest as it pulls; what it stored must be this image: its id is the config's
        # digest, its digest the manifest's, one stored layer per layer blob.
        result = run(host.cmd(*self._base(host, out), "image", "inspect", route.ref), timeout=VERIFY_TIMEOUT,
                     check=False)
        if result.returncode != 0:
            return [f"podman image inspect exited {result.returncode}: {result.stderr.strip()[-300:]}"]
        (found,) = json.loads(result.stdout)
        problems = []
        config = image.blobs[0][0].removeprefix("sha256:")
        if found.get("Id") != config:
            problems.append(f"image id {found.get('Id')}, expected the config's {config}")
        if found.get("Digest") != image.manifest_digest:
            problems.append(f"manifest digest {found.get('Digest')}, expected {image.manifest_digest}")
        layers = found.get("RootFS", {}).get("Layers") or []
        if len(layers) != len(image.layers):
            problems.append(f"{len(layers)} layers stored, expected {len(image.layers)}")
        return problems

    def cleanup(self) -> None:
        for runroot in self._runroots.values():
            shutil.rmtree(runroot, ignore_errors=True)
        self._runroots.clear()


class Containerd(PullClient):
    name = "containerd"

    def __init__(self) -> None:
        self._sockets: dict[str, Path] = {}
        self._daemons: list[tuple[Path, Proc]] = []

    def prepare(self, host: Host, out: Path, logs: Path, procs: ProcessSet) -> None:
        out.mkdir(parents=True, exist_ok=True)
        rundir = Path(tempfile.mkdtemp(prefix="dfb-ctd-", dir="/tmp"))
        socket = rundir / "c.sock"
        self._sockets[host.role] = rundir
        q = json.dumps  # a JSON string of a path is a valid TOML string
        config = out / "config.toml"
        config.write_text("\n".join([
            "version = 2",
            f"root = {q(str(out / 'root'))}",
            f"state = {q(str(rundir / 'state'))}",
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
            "[grpc]", f"  address = {q(str(socket))}",
            "[ttrpc]", f"  address = {q(str(socket) + '.ttrpc')}",
            "[debug]", '  address = ""',
            "[metrics]", '  address = ""',
            '[plugins."io.containerd.internal.v1.opt"]', f"  path = {q(str(out / 'opt'))}",
            "",
        ]))
        proc = procs.start(Proc(host.cmd("containerd", "--config", str(config)),
                                log_path=logs / f"containerd-daemon-{host.role}.log",
                                name=f"containerd-{host.role}"))
        self._daemons.append((socket, proc))

    def ready(self) -> None:
        for socket, proc in self._daemons:
            proc.wait_until(functools.partial(_answers, socket), START_TIMEOUT)

    def args(self, host: Host, route: Route, out: Path) -> list[str]:
        socket = self._sockets[host.role] / "c.sock"
        how = ["--hosts-dir", str(route.hosts_dir)] if route.hosts_dir is not None else ["--plain-http"]
        return ["ctr", "--address", str(socket), "--namespace", "bench", "images", "pull", *how, route.ref]

    def problems(self, host: Host, route: Route, out: Path, image: ImageInfo) -> list[str]:
        # The content store keeps every blob as fetched, named by its digest: each must be there and hash right.
        store = out / "root" / _CONTENT_STORE
        problems = []
        for digest, size in image.blobs:
            problems += _stored_blob_problems(store / digest.removeprefix("sha256:"), digest, size)
        problems += _stored_blob_problems(store / image.manifest_digest.removeprefix("sha256:"), image.manifest_digest)
        return problems

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(proc.pid) for _, proc in self._daemons if proc.running())

    def cleanup(self) -> None:
        for rundir in self._sockets.values():
            shutil.rmtree(rundir, ignore_errors=True)
        self._sockets.clear()
        self._daemons.clear()


def _answers(socket: Path) -> bool:
    return socket.exists() and run(["ctr", "--address", str(socket), "version"], timeout=10.0,
                                   check=False).returncode == 0


def _stored_blob_problems(path: Path, digest: str, size: int | None = None) -> list[str]:
    if not path.exists():
        return [f"missing blob {digest}"]
    if size is not None and path.stat().st_size != size:
        return [f"blob {digest}: {path.stat().st_size} bytes, expected {size}"]
    with path.open("rb") as file:
        actual = "sha256:" + hashlib.file_digest(file, "sha256").hexdigest()
    return [] if actual == digest else [f"blob {digest}: content hashes to {actual}"]


def make_client(name: str) -> PullClient:
    clients: dict[str, type[PullClient]] = {"skopeo": Skopeo, "podman": Podman, "containerd": Containerd}
    if name not in clients:
        raise ValueError(f"unknown client {name!r} (one of {', '.join(CLIENTS)})")
    return clients[name]()
