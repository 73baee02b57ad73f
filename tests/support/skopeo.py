"""Pull with skopeo, route a registry name to a mirror, and verify a pull.

skopeo 1.9.3 ignores ``CONTAINERS_REGISTRIES_CONF`` and has no
``--registries-conf`` flag (CLIENTS.md), so a mirror is configured by a
drop-in file in /etc/containers/registries.conf.d/, which needs root and is
machine-wide: each drop-in gets a unique file name, and tests that run at the
same time should use distinct made-up registry names (``unique_registry_name``)
so their drop-ins do not override each other.

The made-up name never resolves, so if the mirror fails skopeo's fallback to
the "real" registry fails too: a pull that succeeds went through the mirror.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench.pull import dir_pull_problems
from tests.support.images import PushedImage

DROPIN_DIR = Path("/etc/containers/registries.conf.d")
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class SkopeoError(RuntimeError):
    """skopeo exited non-zero; the message carries its stderr."""


def _clean_env() -> dict[str, str]:
    # A proxy from the environment must not carry loopback test traffic
    # (or a fallback attempt) anywhere else.
    return {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}


def skopeo_copy(
    ref: str,
    dest_dir: Path,
    *,
    tls_verify: bool = False,
    timeout: float = 300.0,
    creds: tuple[str, str] | None = None,
    extra_args: Sequence[str] = (),
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``skopeo copy docker://REF dir:DEST_DIR``; raise SkopeoError on failure.

    ``ref`` is ``host[:port]/repo:tag`` (a ``docker://`` prefix is allowed).
    On timeout skopeo is killed (subprocess.run does that) and
    ``subprocess.TimeoutExpired`` propagates.
    """
    source = ref if ref.startswith("docker://") else f"docker://{ref}"
    dest_dir = Path(dest_dir)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["skopeo", "copy", f"--src-tls-verify={'true' if tls_verify else 'false'}"]
    if creds is not None:
        cmd += ["--src-creds", f"{creds[0]}:{creds[1]}"]
    cmd += [*extra_args, source, f"dir:{dest_dir}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_clean_env())
    if check and result.returncode != 0:
        raise SkopeoError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
    return result


def unique_registry_name(prefix: str = "registry") -> str:
    """A made-up registry host that never resolves (``.test`` is reserved)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}.example.test"


def _toml_string(value: str) -> str:
    # A JSON string of printable ASCII is a valid TOML basic string; refusing
    # anything else keeps a stray quote or newline from breaking the file.
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"refusing odd characters in {value!r}")
    return json.dumps(value)


def dropin_text(registry_name: str, mirror_location: str, insecure: bool = True) -> str:
    """The registries.conf (v2 format) text routing ``registry_name`` to a mirror."""
    return (
        "[[registry]]\n"
        f"prefix = {_toml_string(registry_name)}\n"
        f"location = {_toml_string(registry_name)}\n"
        "\n"
        "[[registry.mirror]]\n"
        f"location = {_toml_string(mirror_location)}\n"
        f"insecure = {'true' if insecure else 'false'}\n"
    )


@contextmanager
def mirror_dropin(
    registry_name: str,
    mirror_location: str,
    insecure: bool = True,
    *,
    dropin_dir: Path = DROPIN_DIR,
) -> Iterator[Path]:
    """Route pulls of ``registry_name`` to ``mirror_location`` while inside.

    ``mirror_location`` is ``host:port`` or ``host:port/path-prefix`` (a path
    prefix makes requests arrive as ``/v2/<prefix>/<repo>/...``). Yields the
    drop-in's path; the file is removed on exit, also on error.
    """
    dropin_dir.mkdir(parents=True, exist_ok=True)
    # "zz-" sorts after the distribution's own drop-ins, so ours wins if a
    # name were ever configured there too.
    path = dropin_dir / f"zz-damselfly-test-{uuid.uuid4().hex}.conf"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dropin_text(registry_name, mirror_location, insecure))
    # Rename so a concurrent skopeo never reads a half-written file; the
    # .tmp suffix is not read as a drop-in (only *.conf is).
    tmp.rename(path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def verify_dir_blobs(dest_dir: Path, expected: PushedImage, *, check_manifest: bool = True) -> None:
    """Check a skopeo ``dir:`` pull of ``expected``; raise AssertionError if wrong.

    Every blob file (named by hex digest, no ``sha256:`` prefix) must hash to
    its name and have the expected size, the set of blobs must be exactly the
    image's config and layers, and, with ``check_manifest``, manifest.json must
    be byte-identical to the pushed manifest (skopeo's dir: target stores it
    verbatim). The checks are the benchmark's, so both verify a pull alike.
    """
    manifest_digest = expected.manifest_digest if check_manifest else None
    problems = dir_pull_problems(Path(dest_dir), expected.blobs, manifest_digest)
    if problems:
        raise AssertionError(f"pull in {dest_dir} is wrong:\n  " + "\n  ".join(problems))
