"""podman with its own storage and registries.conf, so a test never touches the machine's images or config.

podman 4.3.1 honours `CONTAINERS_REGISTRIES_CONF` (skopeo 1.9.3 does not, see CLIENTS.md). Found here: as root,
`--storage-driver overlay` works and a pull leaves no mount behind; `--events-backend file` and
`--cgroup-manager cgroupfs` keep it from needing journald or systemd; `--runroot` must be at most 50
characters long, so it lives in a short directory under /tmp.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.fence import clean_env
from tests.support.mounts import unmount_under


@dataclass
class Podman:
    workdir: Path
    registries_conf: Path
    storage_driver: str = "overlay"
    runroot: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dfly-pm-", dir="/tmp")))

    def run(
        self, args: list[str], *, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if shutil.which("podman") is None:
            raise FileNotFoundError("podman not on PATH (apt-get install podman)")
        cmd = [
            "podman",
            "--root", str(self.workdir / "root"),
            "--runroot", str(self.runroot),
            "--tmpdir", str(self.workdir / "tmp"),
            "--storage-driver", self.storage_driver,
            "--events-backend", "file",
            "--cgroup-manager", "cgroupfs",
            *args,
        ]
        env = clean_env({"CONTAINERS_REGISTRIES_CONF": str(self.registries_conf)})
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stderr}{result.stdout}")
        return result

    def image_id(self, ref: str) -> str:
        return self.run(["image", "inspect", "--format", "{{.Id}}", ref]).stdout.strip()

    def cleanup(self) -> None:
        unmount_under(self.workdir)
        unmount_under(self.runroot)
        shutil.rmtree(self.runroot, ignore_errors=True)
