"""Where a daemon keeps its state by default: /var/lib as root, else the user's own data directory (XDG)."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir(*below: str) -> Path:
    """`/var/lib/damselfly[/below...]` as root, else `$XDG_DATA_HOME/damselfly[/below...]` (~/.local/share)."""
    if os.geteuid() == 0:
        return Path("/var/lib/damselfly", *below)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base, "damselfly", *below)
