"""Registry secrets' passwords, encrypted at rest: they must be handed to the hosts, so unlike users' passwords they
cannot be hashes. The key is a Fernet key (AES-128-CBC with HMAC-SHA256) in the data directory, made at the first
start with mode 0600; the database alone (a dump, a backup, a shared PostgreSQL) does not reveal a password.

Several managers on one database must share the key file (copy it): a password encrypted with another key cannot be
read, and the task that needs it fails with a line that says so.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "secrets.key"


class SecretUnreadable(Exception):
    """A password encrypted with another key (or damaged): no password is guessed."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    @classmethod
    def in_dir(cls, data_dir: Path) -> SecretBox:
        """The data directory's key, made (0600, never overwritten) if there is none yet."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / KEY_FILE
        if not path.exists():
            # Written whole under a name of its own, then linked into place (link never overwrites): two managers
            # starting at once on one directory neither overwrite each other's key nor read a half-written one.
            fresh = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(Fernet.generate_key())
                with contextlib.suppress(FileExistsError):
                    os.link(fresh, path)
            finally:
                fresh.unlink(missing_ok=True)
        return cls(path.read_bytes().strip())

    def seal(self, password: str) -> str:
        return self._fernet.encrypt(password.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise SecretUnreadable("the secret was encrypted with another key (see docs/platform.md)") from None
