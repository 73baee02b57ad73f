"""The client configuration files `damselfly configure` writes, merged with what is there. No I/O in here.

Each `merge_*` takes the current text (None when the file does not exist) and returns the new text; when the
file already says what we want, the old text comes back unchanged, byte for byte.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any
from urllib.parse import urlsplit

from core.names import looks_like_registry_host

from .settings import SettingsError

DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
HEADER = "# Written by `damselfly configure`: pulls go through the Damselfly registry mirror first.\n"
_HOST_TABLE = re.compile(r"^[ \t]*\[[ \t]*host[ \t]*\.", re.MULTILINE)


class ConfigureError(SettingsError):
    """A client configuration cannot be written or merged safely; nothing was changed."""


def check_mirror(url: str) -> str:
    """`scheme://host:port` of a mirror URL, or ConfigureError."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise ConfigureError(f"--mirror: expected a URL like http://127.0.0.1:65001, got {url!r}")
    _toml_string(parts.netloc)
    return f"{parts.scheme}://{parts.netloc}"


def check_registry(name: str) -> str:
    name = name.strip().lower()
    if name != "_default" and not looks_like_registry_host(name):
        raise ConfigureError(f"--registry: {name!r} is not a registry host (like registry.example.com:5000)")
    return name


# --- docker: daemon.json ----------------------------------------------------------------------------------


def merge_daemon_json(old: str | None, mirror: str) -> str:
    data = _json_object(old)
    mirrors = _string_list(data, "registry-mirrors")
    changed = False
    if mirror not in (m.rstrip("/") for m in mirrors):
        # First: dockerd tries mirrors in order.
        data["registry-mirrors"] = [mirror, *mirrors]
        changed = True
    if mirror.startswith("http://"):
        insecure = _string_list(data, "insecure-registries")
        host = urlsplit(mirror).netloc
        if host not in insecure:
            data["insecure-registries"] = [*insecure, host]
            changed = True
    if not changed and old is not None:
        return old
    return json.dumps(data, indent=2) + "\n"


def _json_object(text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigureError(f"daemon.json is not valid JSON ({exc}); fix it first") from exc
    if not isinstance(data, dict):
        raise ConfigureError("daemon.json is not a JSON object; fix it first")
    return data


def _string_list(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigureError(f"daemon.json: {key} is not a list of strings; fix it first")
    return value


# --- containerd: certs.d/<registry>/hosts.toml ------------------------------------------------------------


def server_for(registry: str) -> str:
    return "https://registry-1.docker.io" if registry in DOCKER_HUB_NAMES else f"https://{registry}"


def merge_hosts_toml(old: str | None, registry: str, mirror: str) -> str:
    block = f"[host.{_toml_string(mirror)}]\n  capabilities = [\"pull\", \"resolve\"]\n"
    if old is None or not old.strip():
        # `_default` has no server line: containerd then uses the registry the image names.
        server = "" if registry == "_default" else f"server = {_toml_string(server_for(registry))}\n"
        return f"{HEADER}{server}\n{block}"
    hosts = _toml_table(old, "hosts.toml").get("host", {})
    if not isinstance(hosts, dict):
        raise ConfigureError("hosts.toml: `host` is not a table; edit it by hand")
    if any(key.rstrip("/") == mirror for key in hosts):
        return old
    # Hosts are tried in file order: ours goes before the first existing one, everything else stays as it was.
    match = _HOST_TABLE.search(old)
    if match is None:
        new = old + ("" if old.endswith("\n") else "\n") + "\n" + block
    else:
        new = old[: match.start()] + block + "\n" + old[match.start() :]
    merged = _toml_table(new, "merged hosts.toml").get("host", {})
    if not isinstance(merged, dict) or next(iter(merged), None) != mirror:
        raise ConfigureError("hosts.toml has a layout we cannot merge into; add the mirror host by hand")
    return new


# --- podman, skopeo: registries.conf.d drop-in ------------------------------------------------------------


def mirror_location(mirror: str, registry: str) -> str:
    """containers/image mirror location: the registry as first path component (it sends no `ns`)."""
    return f"{urlsplit(mirror).netloc}/{registry}"


def merge_registries_dropin(old: str | None, registries: list[str], mirror: str) -> str:
    data = _toml_table(old, "the drop-in") if old is not None else {}
    entries = data.get("registry", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigureError("the drop-in's [[registry]] entries have an unexpected shape; edit it by hand")
    merged = [dict(entry) for entry in entries]
    insecure = mirror.startswith("http://")
    for registry in registries:
        if registry == "_default":
            continue  # containers/image has no catch-all; each registry needs its own entry
        entry = next((e for e in merged if e.get("prefix", e.get("location")) == registry), None)
        if entry is None:
            entry = {"prefix": registry, "location": registry}
            merged.append(entry)
        mirrors = entry.get("mirror", [])
        if not isinstance(mirrors, list) or not all(isinstance(m, dict) for m in mirrors):
            raise ConfigureError(f"the drop-in's mirrors of {registry} have an unexpected shape; edit it by hand")
        location = mirror_location(mirror, registry)
        if not any(m.get("location") == location for m in mirrors):
            ours: dict[str, Any] = {"location": location}
            if insecure:
                ours["insecure"] = True
            entry["mirror"] = [ours, *mirrors]  # mirrors are tried in order
    new_data = {**data, "registry": merged}
    if old is not None and new_data == data:
        return old
    return _render_dropin(new_data)


def _render_dropin(data: dict[str, Any]) -> str:
    lines = [HEADER.rstrip("\n")]
    for key, value in data.items():
        if key != "registry":
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for entry in data.get("registry", []):
        lines += ["", "[[registry]]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in entry.items() if k != "mirror"]
        for mirror in entry.get("mirror", []):
            lines += ["", "[[registry.mirror]]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in mirror.items()]
    return "\n".join(lines) + "\n"


# --- TOML, the little we write ----------------------------------------------------------------------------


def _toml_table(text: str, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigureError(f"{what} is not valid TOML ({exc}); fix it first") from exc


def _toml_string(value: str) -> str:
    # JSON strings of printable ASCII are valid TOML basic strings; anything else could break the file.
    if not value.isascii() or not value.isprintable():
        raise ConfigureError(f"refusing to write {value!r}: not printable ASCII")
    return json.dumps(value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list) and all(isinstance(item, str | bool | int | float) for item in value):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise ConfigureError(f"the drop-in holds a value we cannot rewrite ({type(value).__name__}); edit it by hand")
