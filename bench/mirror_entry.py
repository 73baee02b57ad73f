"""A made-up registry name whose mirror is each host's Damselfly: how podman, cri-o, skopeo and containerd users
configure a mirror, and the only form in which a client's silent fallback cannot hide a failure.

The name (`registry-<run id>.example.test`, `.test` is reserved) never resolves: a client that gave up on the
mirror and went to the registry itself fails instead of quietly pulling from the upstream. Only the peers know
where it really is (a `[[registry]]` of their config). skopeo 1.9.3 reads no registries.conf but the machine's
(CLIENTS.md), so the entry is a drop-in in /etc/containers/registries.conf.d/ whose file and registry name carry
the run id: no one else's pulls are affected, and it is removed when the storm ends. containerd reads a
`hosts.toml` from the directory its `--hosts-dir` names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .netns import OWNERS_DIR, PREFIX

DROPIN_DIR = Path("/etc/containers/registries.conf.d")
_DROPIN_PREFIX = "zz-damselfly-bench-"


def registry_name(run_id: str) -> str:
    return f"registry-{run_id}.example.test"


def _toml(value: str) -> str:
    # A JSON string of printable ASCII is a valid TOML basic string.
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"refusing odd characters in {value!r}")
    return json.dumps(value)


def registries_conf(name: str, mirror: str) -> str:
    return (
        f"[[registry]]\nprefix = {_toml(name)}\nlocation = {_toml(name)}\n\n"
        f"[[registry.mirror]]\nlocation = {_toml(mirror)}\ninsecure = true\n"
    )


def hosts_toml(name: str, mirror: str) -> str:
    return (
        f"server = {_toml('https://' + name)}\n\n"
        f"[host.{_toml('http://' + mirror)}]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )


def peer_config(name: str, upstream_url: str) -> str:
    """The peers' TOML: the made-up name is the upstream, and the registry of requests that name none (skopeo and
    podman send no `ns`)."""
    return (
        f"[proxy]\ndefault_registry = {_toml(name)}\n\n"
        f"[[registry]]\nname = {_toml(name)}\nurl = {_toml(upstream_url)}\n"
    )


@contextmanager
def mirror_entry(name: str, mirror: str, workdir: Path, dropin_dir: Path = DROPIN_DIR) -> Iterator[Path]:
    """Route `name` to `mirror` (host:port, the same on every host: its own loopback) for skopeo and podman, and
    for containerd through the hosts directory yielded; the drop-in is removed on leaving, also on error."""
    hosts_dir = workdir / "certs.d"
    (hosts_dir / name).mkdir(parents=True, exist_ok=True)
    (hosts_dir / name / "hosts.toml").write_text(hosts_toml(name, mirror))
    dropin_dir.mkdir(parents=True, exist_ok=True)
    # "zz-" sorts after the distribution's own drop-ins; the .tmp rename keeps a half-written file from being read.
    dropin = dropin_dir / f"{_DROPIN_PREFIX}{name}.conf"
    tmp = dropin.with_suffix(".tmp")
    tmp.write_text(registries_conf(name, mirror))
    tmp.rename(dropin)
    try:
        yield hosts_dir
    finally:
        dropin.unlink(missing_ok=True)


def cleanup_abandoned(dropin_dir: Path = DROPIN_DIR) -> list[str]:
    """Remove the drop-ins of runs that no longer have an owner file (run after `netns.cleanup_abandoned`, which
    removes the owner files of dead runs): what a run killed with SIGKILL left."""
    removed: list[str] = []
    if not dropin_dir.is_dir():
        return removed
    for dropin in sorted(dropin_dir.glob(f"{_DROPIN_PREFIX}registry-*.example.test.conf")):
        run_id = dropin.name.removeprefix(f"{_DROPIN_PREFIX}registry-").removesuffix(".example.test.conf")
        if not (OWNERS_DIR / f"{PREFIX}{run_id}.pid").exists():
            dropin.unlink(missing_ok=True)
            removed.append(dropin.name)
    return removed
