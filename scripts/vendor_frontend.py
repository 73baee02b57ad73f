"""Refresh the console's vendored front-end files from the npm registry: `python scripts/vendor_frontend.py`.

Each package of manager/console/vendor.json is fetched at its pinned version with `npm pack` (npm's own registry
setting decides where from), checked against the integrity the manifest records (the first run records it), and the
listed files are copied into the console's static directory, their sha256 written back to the manifest. Bump a
version in the manifest, empty its `integrity`, and run this again to move to a new release. The tests check that the
files on disk are the ones the manifest names (tests/manager/test_console_vendor.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CONSOLE = Path(__file__).resolve().parents[1] / "manager" / "console"
MANIFEST = CONSOLE / "vendor.json"


def _integrity(tarball: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()


def refresh(package: dict[str, object], work: Path) -> None:
    name, version = str(package["name"]), str(package["version"])
    packed = subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=work, capture_output=True,
                            text=True, timeout=300, check=False)
    if packed.returncode != 0:
        raise SystemExit(f"npm pack {name}@{version} failed: {packed.stderr.strip().splitlines()[-1:]}")
    tarball = work / packed.stdout.strip().splitlines()[-1]
    found = _integrity(tarball)
    if package["integrity"] and package["integrity"] != found:
        raise SystemExit(f"{name}@{version}: the tarball's integrity {found} is not the manifest's")
    package["integrity"] = found
    unpacked = work / "unpacked"
    with tarfile.open(tarball) as archive:
        archive.extractall(unpacked, filter="data")
    into = CONSOLE / str(package["into"])
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    files = package["files"]
    assert isinstance(files, dict)
    sums = {}
    for source, target in files.items():
        data = (unpacked / "package" / source).read_bytes()
        (into / target).write_bytes(data)
        sums[target] = hashlib.sha256(data).hexdigest()
    package["sha256"] = sums
    print(f"{name}@{version}: {len(sums)} files into {into.relative_to(CONSOLE.parents[1])}")


def main() -> int:
    manifest = json.loads(MANIFEST.read_text())
    for package in manifest["packages"]:
        with tempfile.TemporaryDirectory() as work:
            refresh(package, Path(work))
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
