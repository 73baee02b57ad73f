"""The settings of each command: the package configs it builds, from flags over the TOML file over the defaults.

Every default is declared once, in its package's config dataclass (supernode/config.py, peer/config.py,
proxy/config.py) together with its flag and TOML key; `damselfly settings` prints the table of them (it is in the
README) and `damselfly settings --toml` a configuration file with every key at its default. The file has a table
per package, `[supernode]`, `[peer]` and `[proxy]`, and one `[[registry]]` table per upstream registry:

    [[registry]]
    name = "registry.example.test"       # what clients call it
    url = "https://registry.example.test"
    username = ""
    password = ""
    ca_file = ""
    insecure = false
    library_prefix = false               # Docker Hub style: one-word names live under library/
    redirect_networks = []               # CIDRs its redirects may lead to besides public addresses

and one `[[file_origin]]` table per web server files may come from (docs/files.md):

    [[file_origin]]
    url = "https://artifacts.example.test/releases/"   # a URL prefix: files under it only
    headers = { Authorization = "Bearer ..." }         # sent to this origin only
    ca_file = ""
    ignore_query = ["X-Amz-Signature", "X-Amz-Date"]   # left out of the file key
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.setting import Setting, setting
from manager.config import ManagerConfig
from peer.config import PeerConfig
from peer.quota import QuotaPolicy
from proxy.config import DOCKER_HUB, ProxyConfig
from supernode.config import SupernodeConfig
from upstream.origin import FileOrigin, OriginRefused, check_headers, check_url
from upstream.registry import UpstreamRegistry

from .flags import Section, SettingsError, host_port, parse_networks, read

__all__ = [
    "ALL",
    "COMMANDS",
    "MANAGER",
    "PEER",
    "SUPERNODE",
    "UP",
    "CommandFlags",
    "Settings",
    "SettingsError",
    "build",
    "command_flags",
    "host_port",
    "load",
    "peer_configs",
    "supernode_config",
]


@dataclass(frozen=True, slots=True)
class CommandFlags:
    """Flags of the `damselfly` command itself, not of one package."""

    config: str = setting("", Setting("TOML configuration file (flags win over it)", flag="--config", metavar="FILE"))
    log_level: str = setting(
        "info",
        Setting("what the daemon logs", flag="--log-level", choices=("debug", "info", "warning", "error")),
    )
    # A shortcut for a `[[registry]]` table and `default_registry` naming it.
    upstream: str = setting(
        "", Setting("the default upstream registry", flag="--upstream", metavar="URL", shown_default="Docker Hub")
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """What a command runs with: a config per package, as the configuration file has a table per package."""

    supernode: SupernodeConfig = field(default_factory=SupernodeConfig)
    peer: PeerConfig = field(default_factory=PeerConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    # The platform: run alone (`damselfly manager`) or hosted by the supernode, in the supernode's data directory.
    manager: ManagerConfig = field(default_factory=ManagerConfig)


# What each command offers. `up` runs its own supernode: the peer dials it, so it takes neither `--supernode` nor
# `--supernode-timeout`, and its supernode's listener is `--supernode-listen` beside the mirror's `--listen`.
# A supernode hosting the platform keeps its database in the supernode's `--data-dir` and serves it on its port.
# It reads its hosts from that supernode's own registry, not from another's API.
HOSTED_MANAGER = Section(
    "manager", ManagerConfig, without=frozenset({"listen_host", "data_dir", "supernodes", "supernode_token"})
)
SUPERNODE = (
    Section("", CommandFlags, without=frozenset({"upstream"})), Section("supernode", SupernodeConfig), HOSTED_MANAGER
)
MANAGER = (Section("", CommandFlags, without=frozenset({"upstream"})), Section("manager", ManagerConfig))
PEER = (Section("", CommandFlags), Section("peer", PeerConfig), Section("proxy", ProxyConfig))
UP = (
    Section("", CommandFlags),
    Section("supernode", SupernodeConfig,
            renamed={"listen_host": "--supernode-listen", "data_dir": "--supernode-data-dir"}),
    Section("peer", PeerConfig, without=frozenset({"supernode_url", "register_timeout"})),
    Section("proxy", ProxyConfig),
    HOSTED_MANAGER,
)
# Every setting once, each under the name of its own command: the README's table.
ALL = (Section("", CommandFlags), Section("supernode", SupernodeConfig), *PEER[1:], Section("manager", ManagerConfig))


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


def registries_from(settings: dict[str, Any]) -> list[UpstreamRegistry]:
    entries = settings.get("registry", [])
    if not isinstance(entries, list):
        raise SettingsError("[[registry]] must be an array of tables")
    found = []
    allowed = {"name", "url", "username", "password", "ca_file", "insecure", "library_prefix", "redirect_networks"}
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
                redirect_networks=_networks(entry["name"], entry.get("redirect_networks", [])),
            )
        )
    return found


def file_origins_from(settings: dict[str, Any]) -> tuple[FileOrigin, ...]:
    """The `[[file_origin]]` tables: the only web servers the files endpoint fetches from."""
    entries = settings.get("file_origin", [])
    if not isinstance(entries, list):
        raise SettingsError("[[file_origin]] must be an array of tables")
    found = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise SettingsError("each [[file_origin]] needs a url (a URL prefix such as https://files.example.com/)")
        url = entry["url"]
        unknown = set(entry) - {"url", "headers", "ca_file", "ignore_query"}
        if unknown:
            raise SettingsError(f"[[file_origin]] {url}: unknown fields {sorted(unknown)}")
        headers, ignore = entry.get("headers", {}), entry.get("ignore_query", [])
        if not isinstance(headers, dict) or not isinstance(ignore, list) or not all(isinstance(q, str) for q in ignore):
            raise SettingsError(f"[[file_origin]] {url}: headers is a table, ignore_query a list of names")
        try:
            check_url(url)
            checked = check_headers({str(k): str(v) for k, v in headers.items()}, f"[[file_origin]] {url}")
        except OriginRefused as exc:
            raise SettingsError(f"[[file_origin]] {url}: {exc}") from None
        ca_file = str(entry.get("ca_file", ""))
        if ca_file and not Path(ca_file).is_file():
            raise SettingsError(f"[[file_origin]] {url}: ca_file {ca_file} is not a readable file")
        found.append(FileOrigin(url, checked, ca_file, tuple(ignore)))
    return tuple(found)


def _check_files_listen(host: str, port: int) -> None:
    """The files endpoint fetches with the origins' credentials for whoever reaches it: loopback only."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if port and not loopback:
        raise SettingsError(f"--files-listen {host}:{port}: the files endpoint listens on loopback only")


def _networks(registry: object, value: object) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A registry's `redirect_networks`: CIDRs (`10.20.0.0/16`, `fd00::/8`), read as `peer_networks` are."""
    cidrs = parse_networks(value, f"[[registry]] {registry}: redirect_networks")
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


COMMANDS = {"supernode": SUPERNODE, "peer": PEER, "up": UP, "manager": MANAGER}


def build(args: argparse.Namespace, conf: dict[str, Any]) -> Settings:
    """The configs `args.command` runs with; the packages it does not run keep their defaults."""
    if args.command == "supernode":
        supernode = supernode_config(args, conf, SUPERNODE)
        return Settings(supernode=supernode, manager=hosted_manager_config(args, conf, supernode))
    if args.command == "manager":
        return Settings(manager=manager_config(read(MANAGER[1], args, section(conf, "manager"))))
    if args.command == "peer":
        peer, proxy = peer_configs(args, conf)
        return Settings(peer=peer, proxy=proxy)
    supernode = supernode_config(args, conf, UP)
    # The peer of `up` always talks to its own supernode (over loopback when it listens everywhere).
    host = supernode.listen_host if supernode.listen_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    peer, proxy = peer_configs(args, conf, UP, supernode_url=f"http://{host}:{supernode.listen_port}")
    return Settings(supernode, peer, proxy, hosted_manager_config(args, conf, supernode))


def hosted_manager_config(args: argparse.Namespace, conf: dict[str, Any], supernode: SupernodeConfig) -> ManagerConfig:
    """The platform a supernode hosts: its `[manager]` settings, in the supernode's data directory."""
    values = read(HOSTED_MANAGER, args, section(conf, "manager"))
    values.pop("listen_host", None)
    values.pop("listen_port", None)
    values["data_dir"] = supernode.data_dir
    return manager_config(values)


def manager_config(values: dict[str, Any]) -> ManagerConfig:
    secret_url = values.pop("database_url_secret", "")
    if secret_url:
        if values.get("database"):
            raise SettingsError("--database and --database-url-file ($DAMSELFLY_DATABASE_URL): one of them")
        values["database"] = secret_url
    config = ManagerConfig(**values)
    # A lease shorter than a round (about a second) would be lost between two renewals, and the tasks would move
    # from manager to manager all the time.
    if not config.task_lease >= 2 * config.task_round:
        raise SettingsError(f"--task-lease {config.task_lease:g}: at least {2 * config.task_round:g} seconds "
                            "(two rounds of the task runner)")
    return config


def command_flags(args: argparse.Namespace) -> CommandFlags:
    return CommandFlags(**read(Section("", CommandFlags), args, {}))


def supernode_config(args: argparse.Namespace, conf: dict[str, Any], sections: tuple[Section, ...]) -> SupernodeConfig:
    (sn,) = [s for s in sections if s.config is SupernodeConfig]
    config = SupernodeConfig(**read(sn, args, section(conf, "supernode")))
    if bool(config.tls_cert) != bool(config.tls_key):
        raise SettingsError("--tls-cert and --tls-key go together")
    if config.client_ca and not config.tls_cert:
        raise SettingsError("--client-ca (mutual TLS) needs --tls-cert and --tls-key: the supernode serves https")
    return config


def peer_configs(
    args: argparse.Namespace, conf: dict[str, Any], sections: tuple[Section, ...] = PEER, supernode_url: str = ""
) -> tuple[PeerConfig, ProxyConfig]:
    """The peer's and the proxy's configs; `supernode_url` is the supernode of `up`, which the peer always dials."""
    (peer_section,) = [s for s in sections if s.config is PeerConfig]
    (proxy_section,) = [s for s in sections if s.config is ProxyConfig]
    peer_values = read(peer_section, args, section(conf, "peer"))
    if supernode_url:
        peer_values["supernode_url"] = supernode_url
    _check_quota(peer_values)
    _check_file_job_dirs(str(peer_values.get("file_job_dirs", "")))
    _check_runtime_pull(str(peer_values.get("runtime_pull", "")))
    proxy_values = read(proxy_section, args, section(conf, "proxy"))
    registries = {r.name: r for r in registries_from(conf)}
    default = str(proxy_values.pop("default_registry", ""))
    flags = command_flags(args)
    if flags.upstream:
        upstream = upstream_registry(flags.upstream)
        registries.setdefault(upstream.name, upstream)
        default = upstream.name
    if not default:
        default = DOCKER_HUB.name
    if default == DOCKER_HUB.name:
        registries.setdefault(DOCKER_HUB.name, DOCKER_HUB)
    if default not in registries:
        raise SettingsError(f"default_registry {default!r} is not a configured [[registry]]")
    _check_files_listen(proxy_values.get("files_host", "127.0.0.1"), proxy_values.get("files_port", 65003))
    proxy = ProxyConfig(
        default_registry=default, registries=registries, file_origins=file_origins_from(conf), **proxy_values
    )
    return PeerConfig(**peer_values), proxy


def _check_file_job_dirs(joined: str) -> None:
    for directory in (d.strip() for d in joined.split(",") if d.strip()):
        if not directory.startswith("/") or directory == "/":
            raise SettingsError(f"--file-job-dirs {directory[:200]!r}: an absolute directory other than / is needed")


def _check_runtime_pull(command: str) -> None:
    if not command:
        return
    try:
        parts = shlex.split(command)
    except ValueError as exc:
        raise SettingsError(f"--runtime-pull: {exc}") from None
    if not any("{reference}" in part for part in parts):
        raise SettingsError("--runtime-pull: the command must name the image as {reference}")


def _check_quota(values: dict[str, Any]) -> None:
    """The quota and its watermarks agree (peer/quota.py says how)."""
    defaults = PeerConfig.__dataclass_fields__
    high = values.get("disk_high_watermark", defaults["disk_high_watermark"].default)
    low = values.get("disk_low_watermark", defaults["disk_low_watermark"].default)
    try:
        QuotaPolicy(values.get("disk_quota", 0), high, low)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"--disk-high-watermark/--disk-low-watermark: {exc}") from None


def upstream_registry(url: str) -> UpstreamRegistry:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"--upstream: expected a URL like https://registry.example.com, got {url!r}")
    if parts.hostname in ("registry-1.docker.io", "index.docker.io", "docker.io"):
        return DOCKER_HUB
    return UpstreamRegistry(name=parts.netloc.lower(), url=f"{parts.scheme}://{parts.netloc}")
