"""Every host pulls the image at the same moment (skopeo, podman or containerd: bench/clients.py); each pull is
timed and what it stored verified."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .image import ImageInfo
from .netns import Host
from .procs import Proc, run_together

if TYPE_CHECKING:
    from .clients import PullClient, Route

# skopeo's `dir:` target writes these besides the blobs.
_DIR_METADATA = {"manifest.json", "version"}


@dataclass(slots=True)
class PullOutcome:
    host: str
    seconds: float
    exit_code: int | None
    # Every blob present, of the right size and hashing to its digest, and the manifest the upstream's.
    digests_ok: bool
    problems: list[str]


def skopeo_args(ref: str, out: Path) -> list[str]:
    return ["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"dir:{out}"]


def pull_everywhere(
    pulls: list[tuple[Host, Route, Path]],
    client: PullClient,
    logs: Path,
    image: ImageInfo,
    timeout: float,
    at_start: Callable[[float], None] | None = None,
) -> list[PullOutcome]:
    """Start `client`'s pull on every (host, route, output dir) at once (each prepared by the client already);
    wait for all; verify.

    `at_start` is called with the start's `time.monotonic()` once every pull is started (a fault's clock).
    """
    procs = [
        Proc(host.cmd(*client.args(host, route, out)), log_path=logs / f"{client.name}-{host.role}.log",
             name=host.role)
        for host, route, out in pulls
    ]
    start, ends, codes = run_together(procs, timeout, at_start)
    outcomes = []
    for (host, route, out), proc, end, code in zip(pulls, procs, ends, codes, strict=True):
        if code == 0:
            problems = client.problems(host, route, out, image)
        else:
            problems = [f"{client.name} exited {code}: {proc.log_text(600)}"]
        seconds = (end - start) if end is not None else float(timeout)
        outcomes.append(PullOutcome(host.role, seconds, code, code == 0 and not problems, problems))
    return outcomes


def verify_pull(out: Path, image: ImageInfo) -> list[str]:
    """What is wrong with a `dir:` pull of `image` (nothing: the empty list)."""
    return dir_pull_problems(out, image.blobs, image.manifest_digest)


def dir_pull_problems(out: Path, blobs: Sequence[tuple[str, int]], manifest_digest: str | None) -> list[str]:
    """What is wrong with the skopeo `dir:` pull in `out` (nothing: the empty list).

    Every blob file (named by its hex digest, without `sha256:`) must hash to its name; the blobs must be
    exactly `blobs`, (digest, size) pairs, with those sizes; and manifest.json, which skopeo stores verbatim,
    must hash to `manifest_digest` (None: not checked). The tests' `verify_dir_blobs` uses this too.
    """
    problems: list[str] = []
    found: dict[str, int] = {}
    for entry in sorted(out.iterdir()):
        if entry.name in _DIR_METADATA or entry.name.startswith("signature-"):
            continue
        actual = _sha256_file(entry)
        if actual != entry.name:
            problems.append(f"{entry.name}: content hashes to {actual}")
        found[entry.name] = entry.stat().st_size
    wanted = {digest.removeprefix("sha256:"): size for digest, size in blobs}
    for name, size in wanted.items():
        if name not in found:
            problems.append(f"missing blob {name}")
        elif found[name] != size:
            problems.append(f"blob {name}: {found[name]} bytes, expected {size}")
    problems += [f"unexpected file {name}" for name in sorted(found.keys() - wanted.keys())]
    if manifest_digest is not None:
        manifest = out / "manifest.json"
        if not manifest.exists():
            problems.append("no manifest.json")
        elif "sha256:" + _sha256_file(manifest) != manifest_digest:
            problems.append(f"manifest.json is not {manifest_digest}")
    return problems


def _sha256_file(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
