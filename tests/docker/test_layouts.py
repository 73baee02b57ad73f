"""Every YAML file in docker/ parses, and every `damselfly` command line in them (a Kubernetes container's `args`, a
compose service's `command`) is one the real CLI accepts: parsed with its own argparse parser
(damselfly/cli.py build_parser), so a renamed or removed flag breaks this test, not a deployment."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from damselfly.cli import build_parser

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMMANDS = {"supernode", "peer", "manager", "up"}
def _documents() -> Iterator[tuple[Path, Any]]:
    for path in sorted(DOCKER.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            yield path, document


def _command_lines(node: Any) -> Iterator[list[str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("args", "command") and isinstance(value, list) and value and value[0] in COMMANDS:
                yield [str(item) for item in value]
            else:
                yield from _command_lines(value)
    elif isinstance(node, list):
        for item in node:
            yield from _command_lines(item)


LINES = [(path, line) for path, document in _documents() for line in _command_lines(document)]


def test_every_yaml_file_parses_and_the_ha_layout_is_there() -> None:
    files = {path.relative_to(DOCKER).as_posix() for path, _ in _documents()}
    assert {"compose.yaml", "compose-ha.yaml", "k8s-ha/supernode.yaml", "k8s-ha/manager.yaml", "k8s-ha/redis.yaml",
            "k8s-ha/peer-daemonset.yaml"} <= files
    kinds = {(doc["kind"], doc["metadata"]["name"]): doc for path, doc in _documents()
             if path.parent.name == "k8s-ha"}
    assert kinds[("Deployment", "damselfly-supernode")]["spec"]["replicas"] == 3
    assert kinds[("Deployment", "damselfly-manager")]["spec"]["replicas"] == 2
    assert kinds[("StatefulSet", "damselfly-redis")]["spec"]["replicas"] == 3
    assert ("DaemonSet", "damselfly-peer") in kinds
    # Each command of the layout appears: supernodes, managers, peers, in both the manifests and the compose file.
    for where in ("k8s-ha", "compose-ha.yaml"):
        assert {line[0] for path, line in LINES if where in path.as_posix()} == {"supernode", "manager", "peer"}


@pytest.mark.parametrize(("path", "line"), LINES, ids=[f"{p.relative_to(DOCKER)}:{line[0]}" for p, line in LINES])
def test_every_damselfly_command_line_uses_only_flags_the_cli_accepts(path: Path, line: list[str]) -> None:
    parser = build_parser()
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.suppress(SystemExit):
        parser.parse_args(line)
        errors.write("ok")
    assert errors.getvalue() == "ok", f"{path}: {' '.join(line)}: {errors.getvalue()}"
    # Never a secret on a command line: the tokens and the database's URL come from files.
    for item in line:
        assert not item.startswith("postgresql://") and "--join-token=" not in item, item
