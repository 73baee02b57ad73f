"""Unmount what a daemon under test may have left mounted below its directories.

containerd, dockerd and podman mount overlay filesystems (and containers/storage bind-mounts its overlay
home on itself); a daemon killed at the wrong moment can leave them behind, which would make the test's
tmp directory impossible to delete and leak into later runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, deepest first."""
    root = str(directory.resolve())
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        # Field 5 is the mount point, with spaces and the like octal-escaped.
        point = fields[4].encode().decode("unicode_escape")
        if point == root or point.startswith(root + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_under(directory: Path) -> None:
    for point in mounts_under(directory):
        # Lazy: a mount still busy goes away as soon as its last user does.
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
