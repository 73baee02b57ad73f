"""Where `damselfly login` keeps its session: $XDG_CONFIG_HOME/damselfly/session.json (else ~/.config/...), mode
0600 from the moment it exists, as it holds a bearer token."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class StoredSession:
    server: str
    token: str
    username: str
    expires: str


def path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "damselfly" / "session.json"


def save(session: StoredSession) -> Path:
    where = path()
    where.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps({"server": session.server, "token": session.token, "username": session.username,
                       "expires": session.expires})
    # Written to a new file made 0600 and renamed over the old one: never readable by others, never half-written.
    temp = where.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)
    temp.replace(where)
    return where


def load() -> StoredSession | None:
    try:
        data = json.loads(path().read_text())
        return StoredSession(str(data["server"]), str(data["token"]), str(data.get("username", "")),
                             str(data.get("expires", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove() -> bool:
    try:
        path().unlink()
    except FileNotFoundError:
        return False
    return True
