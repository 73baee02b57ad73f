"""Every host pulls the image with skopeo at the same moment; each pull is timed and its blobs verified."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .image import ImageInfo
from .netns import Host
from .procs import Proc

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
    pulls: list[tuple[Host, str, Path]], logs: Path, image: ImageInfo, timeout: float
) -> list[PullOutcome]:
    """Start `skopeo copy` for (host, image reference, output dir) all at once; wait for all; verify."""
    procs = []
    for host, ref, out in pulls:
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        procs.append(Proc(host.cmd(*skopeo_args(ref, out)), log_path=logs / f"skopeo-{host.role}.log", name=host.role))
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
    threads = [threading.Thread(target=waiter, args=(i,), daemon=True) for i in range(len(procs))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        # Ctrl-C while waiting: no skopeo outlives the benchmark.
        for proc in procs:
            proc.stop(grace=1.0)
    outcomes = []
    for (host, _, out), proc, end, code in zip(pulls, procs, ends, codes, strict=True):
        problems = verify_pull(out, image) if code == 0 else [f"skopeo exited {code}: {proc.log_text(600)}"]
        seconds = (end - start) if end is not None else float(timeout)
        outcomes.append(PullOutcome(host.role, seconds, code, code == 0 and not problems, problems))
    return outcomes


def verify_pull(out: Path, image: ImageInfo) -> list[str]:
    """What is wrong with a `dir:` pull of `image` (nothing: the empty list)."""
    problems: list[str] = []
    found: dict[str, int] = {}
    for entry in sorted(out.iterdir()):
        if entry.name in _DIR_METADATA or entry.name.startswith("signature-"):
            continue
        actual = _sha256_file(entry)
        if actual != entry.name:
            problems.append(f"{entry.name}: content hashes to {actual}")
        found[entry.name] = entry.stat().st_size
    wanted = {digest.removeprefix("sha256:"): size for digest, size in image.blobs}
    for name, size in wanted.items():
        if found.get(name) != size:
            problems.append(f"blob {name}: {found.get(name, 'missing')} bytes, expected {size}")
    problems += [f"unexpected file {name}" for name in sorted(found.keys() - wanted.keys())]
    manifest = out / "manifest.json"
    if not manifest.exists() or "sha256:" + _sha256_file(manifest) != image.manifest_digest:
        problems.append("manifest.json is not the upstream's manifest")
    return problems


def _sha256_file(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
