"""The cluster's secret in a file: read it (`--join-token-file`), or for `damselfly up` make one on first start.

A secret on the command line is readable by every local user (`/proc/<pid>/cmdline`, `ps`), so it comes from a file
or the environment only (damselfly/flags.py refuses `--join-token`). A file others may read is warned about, not
refused: the operator may have reasons (a group of admins), but should know.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

__all__ = ["SecretFileError", "checked_secret", "ensure_secret_file", "read_secret_file"]

log = logging.getLogger(__name__)

# Far more than any token; a bigger file is the wrong file (a key, a log), not a secret to send in a header.
MAX_SECRET_BYTES = 4096


class SecretFileError(ValueError):
    """The secret's file cannot be read, or does not hold one secret."""


def checked_secret(text: str, where: str) -> str:
    """`text` without surrounding whitespace (a file ends in a newline); it goes in an HTTP header, so it must be one
    word of printable ASCII. The message never quotes the secret."""
    secret = text.strip()
    if not secret:
        raise SecretFileError(f"{where} is empty: it must hold the cluster's secret")
    if not all(33 <= ord(char) < 127 for char in secret):
        raise SecretFileError(f"{where} must hold one word of printable ASCII characters (no spaces)")
    return secret


def read_secret_file(path: Path) -> str:
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            raw = file.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretFileError(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > MAX_SECRET_BYTES:
        raise SecretFileError(f"{path} is larger than {MAX_SECRET_BYTES} bytes: not a secret token")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s holds the cluster's secret but group or others may read it (mode %03o): chmod 600 it",
            path, stat.S_IMODE(mode),
        )
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise SecretFileError(f"{path} must hold one word of printable ASCII characters (no spaces)") from None
    return checked_secret(text, str(path))


def ensure_secret_file(path: Path) -> str:
    """The secret in `path`, made on first use (mode 0600, created exclusively, so two starts cannot race)."""
    try:
        return read_secret_file(path)
    except SecretFileError:
        if path.exists():
            raise
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_secret_file(path)
    except OSError as exc:
        raise SecretFileError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")
    log.info("made the cluster's secret in %s (peers on other hosts join with it: --join-token-file)", path)
    return secret
