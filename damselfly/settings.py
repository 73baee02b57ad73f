"""The TOML configuration file, read into each package's config. Flags given on the command line win.

Example (every field optional):

    [supernode]
    listen = "0.0.0.0:8002"
    join_token = ""                      # shared secret peers must present

    [peer]
    supernode = "http://supernode:8002"  # or a list of several, sharing the swarms out by digest
    upload_listen = "0.0.0.0:65002"
    advertise = ""                       # host other peers dial; default: as the supernode sees us
    data_dir = "/var/lib/damselfly"
    join_token = ""
    labels = { zone = "eu-1a", rack = "r12" }
    upload_rate = "0"                    # e.g. "500Mbit": serving pieces to other peers
    download_rate = "0"                  # fetching pieces from other peers
    source_rate = "0"                    # fetching from the upstream registry
    disk_quota = ""                      # e.g. "50GiB": most the store may hold (default: no quota)
    disk_high_watermark = 0.9            # fraction of the quota past which idle blobs are evicted (LRU)
    disk_low_watermark = 0.8             # fraction of the quota eviction goes down to

    [proxy]
    listen = "127.0.0.1:65001"
    default_registry = "docker.io"
    allow = []                           # fnmatch patterns of registries reachable without configuration
    prefetch = true                      # start an image's blobs as soon as its manifest is served
    tls_cert = ""                        # serve https with this certificate and key
    tls_key = ""

    [[registry]]
    name = "registry.example.test"       # what clients call it
    url = "https://registry.example.test"
    username = ""
    password = ""
    ca_file = ""
    insecure = false
    library_prefix = false               # Docker Hub style: one-word names live under library/
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from peer.upstream import UpstreamRegistry


class SettingsError(ValueError):
    """The configuration file is not valid."""


def load(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with Path(path).open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {exc}") from exc


def section(settings: dict[str, Any], name: str) -> dict[str, Any]:
    value = settings.get(name, {})
    if not isinstance(value, dict):
        raise SettingsError(f"[{name}] must be a table")
    return value


def registries(settings: dict[str, Any]) -> list[UpstreamRegistry]:
    entries = settings.get("registry", [])
    if not isinstance(entries, list):
        raise SettingsError("[[registry]] must be an array of tables")
    found = []
    allowed = {"name", "url", "username", "password", "ca_file", "insecure", "library_prefix"}
    for entry in entries:
        if not isinstance(entry, dict) or "name" not in entry or "url" not in entry:
            raise SettingsError("each [[registry]] needs a name and a url")
        unknown = set(entry) - allowed
        if unknown:
            raise SettingsError(f"[[registry]] {entry['name']}: unknown fields {sorted(unknown)}")
        url = str(entry["url"])
        if not url.startswith(("http://", "https://")):
            raise SettingsError(f"[[registry]] {entry['name']}: url must start with http:// or https://")
        ca_file = str(entry.get("ca_file", ""))
        if ca_file and not Path(ca_file).is_file():
            raise SettingsError(f"[[registry]] {entry['name']}: ca_file {ca_file} is not a readable file")
        found.append(
            UpstreamRegistry(
                name=str(entry["name"]).lower(),
                url=url.rstrip("/"),
                username=str(entry.get("username", "")),
                password=str(entry.get("password", "")),
                ca_file=ca_file,
                insecure=bool(entry.get("insecure", False)),
                library_prefix=bool(entry.get("library_prefix", False)),
            )
        )
    return found


def host_port(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{what}: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)
