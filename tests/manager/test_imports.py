"""The data plane never imports the platform: only `damselfly/` (the wiring) does, so pulls need none of it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA_PLANE = ("core", "upstream", "peer", "proxy", "supernode", "agent")


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_data_plane_never_imports_the_manager() -> None:
    offenders = []
    files = [f for package in DATA_PLANE for f in (ROOT / package).rglob("*.py")]
    assert len(files) > 30
    for file in files:
        offenders += [f"{file.relative_to(ROOT)}: {name}" for name in _imported(file)
                      if name == "manager" or name.startswith("manager.")]
    assert offenders == []


def test_the_check_sees_an_import_of_the_manager(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import os\nfrom manager.app import ManagerApp\n")
    assert "manager.app" in _imported(sample)


def test_a_peers_start_imports_neither_sqlalchemy_nor_argon2() -> None:
    """damselfly/cli.py imports the platform's CLI at every start: its client must not pull in the route table."""
    code = ("import sys, damselfly.cli; "
            "print(sorted(m for m in ('sqlalchemy', 'alembic', 'argon2') if m in sys.modules))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "[]"

