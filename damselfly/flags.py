"""Command-line flags and TOML keys derived from the settings a config dataclass declares (core/setting.py).

A `Section` is one config dataclass as one command offers it: `add_flags` declares its flags on the command's
parser, `read` takes each setting from the flag, else its environment variable, else the TOML table, else leaves
the field's default; `markdown` and `toml_example` describe them for the README and `damselfly settings`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.setting import SETTING, Setting
from peer.quota import parse_size
from peer.ratelimit import parse_rate

from .secret_files import checked_secret, read_secret_file

__all__ = ["Entry", "Section", "SettingsError", "add_flags", "host_port", "markdown", "read", "toml_example"]


class SettingsError(ValueError):
    """A flag, an environment variable or the configuration file holds a value that is not valid."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One setting of a section: the field it fills, its declaration, its default, and its flag in this command."""

    field: str
    setting: Setting
    default: Any
    flag: str | None
    # host_port: the port field's default.
    port_default: int = 0

    @property
    def dest(self) -> str | None:
        return None if self.flag is None else self.flag.removeprefix("--").replace("-", "_")


@dataclass(frozen=True, slots=True)
class Section:
    # The TOML table ("peer"); empty for the settings of the command itself, which are flags only.
    name: str
    config: type[Any]
    # Flags this command names differently (`damselfly up` has two listeners: `--supernode-listen`), by field.
    renamed: Mapping[str, str] = field(default_factory=dict)
    # Fields this command does not offer as flags (`up` dials its own supernode: no `--supernode`).
    without: frozenset[str] = frozenset()

    def entries(self) -> Iterator[Entry]:
        declared = {f.name: f for f in fields(self.config)}
        for item in declared.values():
            setting = item.metadata.get(SETTING)
            if setting is None:
                continue
            flag = None if item.name in self.without else self.renamed.get(item.name, setting.flag)
            port_default = _default(declared[setting.port_field]) if setting.port_field else 0
            yield Entry(item.name, setting, _default(item), flag, port_default)


def _default(item: Any) -> Any:
    return item.default_factory() if item.default is MISSING else item.default


def add_flags(parser: argparse.ArgumentParser, sections: Sequence[Section]) -> None:
    """Declare the flags of `sections` on `parser`; a flag two sections share (`--join-token`) is declared once."""
    declared: set[str] = set()
    for section in sections:
        for entry in section.entries():
            if entry.flag is None or entry.flag in declared:
                continue
            declared.add(entry.flag)
            setting = entry.setting
            default = f"${setting.env}, else {shown_default(entry)}" if setting.env else shown_default(entry)
            help_text = f"{setting.help} (default: {default})"
            if setting.kind == "disable":
                help_text = f"turn off what is on by default: {setting.help}"
            if setting.kind == "enable":
                help_text = setting.help
            options: dict[str, Any] = {"default": None, "help": help_text.replace("%", "%%")}
            if setting.kind in ("disable", "enable"):
                options["action"] = "store_true"
            else:
                options["metavar"] = setting.metavar
                if setting.kind == "labels":
                    options["action"] = "append"
                if setting.kind in ("int", "float"):
                    options["type"] = int if setting.kind == "int" else float
                if setting.choices:
                    options["choices"] = setting.choices
            parser.add_argument(entry.flag, dest=entry.dest, **options)
            if setting.kind == "secret_file":
                _refuse_secret_on_argv(parser, entry, declared)


class _RefusedFlag(argparse.Action):
    """A flag that only ends the command with `reason`: it would put a secret on the command line."""

    def __init__(self, option_strings: Sequence[str], dest: str, reason: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.reason = reason

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Any = None
    ) -> None:
        parser.error(self.reason)


def _refuse_secret_on_argv(parser: argparse.ArgumentParser, entry: Entry, declared: set[str]) -> None:
    """Declare the secret's own flag (`--join-token`) only to refuse it. Declared, not left out: argparse would
    otherwise take `--join-token X` for an abbreviation of `--join-token-file X`."""
    assert entry.flag is not None
    refused = entry.flag.removesuffix("-file")
    if refused in declared:
        return
    declared.add(refused)
    reason = (
        f"{refused}: a secret on the command line is readable by every local user (ps, /proc/<pid>/cmdline); "
        f"put it in a file for {entry.flag} FILE (mode 0600), or in ${entry.setting.env}"
    )
    parser.add_argument(refused, action=_RefusedFlag, reason=reason, help=argparse.SUPPRESS, metavar="SECRET")


def read(section: Section, args: argparse.Namespace, table: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `section.config` that a flag, an environment variable or `table` sets; flags win."""
    values: dict[str, Any] = {}
    for entry in section.entries():
        setting = entry.setting
        given = getattr(args, entry.dest, None) if entry.dest else None
        if setting.kind == "labels":
            labels = _labels_from_toml(table.get(setting.key, {}), section) if setting.key else {}
            labels.update(_labels_from_flags(given or [], entry.flag or ""))
            values[entry.field] = labels
            continue
        if setting.kind == "secret_file" and setting.key and setting.key.removesuffix("_file") in table:
            raise SettingsError(
                f"[{section.name}] {setting.key.removesuffix('_file')}: the secret is not kept in the configuration "
                f"file; name a file holding it with {setting.key}, or set ${setting.env}"
            )
        if given is not None and given is not False:
            value, what = given, entry.flag or ""
        elif setting.env and os.environ.get(setting.env) is not None:
            value, what = os.environ[setting.env], f"${setting.env}"
        elif setting.key is not None and setting.key in table:
            value, what = table[setting.key], f"[{section.name}] {setting.key}"
        else:
            continue
        values.update(_parse(entry, value, what, from_flag=what == entry.flag))
    return values


def _parse(entry: Entry, value: Any, what: str, *, from_flag: bool) -> dict[str, Any]:
    kind = entry.setting.kind
    name = entry.field
    try:
        if kind == "host_port":
            host, port = host_port(str(value), what)
            return {name: host, str(entry.setting.port_field): port}
        if kind == "disable":
            return {name: False} if from_flag else {name: bool(value)}
        if kind == "enable":
            if not from_flag and not isinstance(value, bool):
                raise SettingsError(f"{what} must be true or false")
            return {name: bool(value)}
        if kind == "networks":
            return {name: parse_networks(value, what)}
        if kind == "secret_file":
            if what.startswith("$"):
                return {name: checked_secret(str(value), "the value")}
            return {name: read_secret_file(Path(str(value)))} if value else {}
        if kind == "int":
            return {name: int(value)}
        if kind == "float":
            return {name: float(value)}
        if kind == "size":
            return {name: parse_size(str(value or ""))}
        if kind == "rate":
            return {name: parse_rate(str(value or ""))}
        if kind == "path":
            return {name: Path(str(value))} if value else {}
        if kind == "urls":
            return {name: _urls(value, what)}
        if kind == "patterns":
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise SettingsError(f"{what} must be a list of host patterns")
            return {name: list(value)}
        return {name: str(value)}
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"{what}: {exc}") from None


def host_port(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{what}: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _urls(value: Any, what: str) -> str:
    joined = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    for url in joined.split(","):
        if joined and not url.strip().startswith(("http://", "https://")):
            raise SettingsError(f"{what}: expected URLs like http://host:8002[,http://host2:8002], got {url!r}")
    return joined


def parse_networks(value: Any, what: str) -> tuple[str, ...]:
    """CIDRs from a TOML list or a comma-separated flag (`[supernode] peer_networks`, `[[registry]]
    redirect_networks`), normalised; `what` names the setting in the error."""
    items = value if isinstance(value, list) else [part for part in str(value).split(",") if part.strip()]
    networks = []
    for item in items:
        try:
            networks.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError:
            raise SettingsError(f"{what}: expected CIDRs like 10.0.0.0/8[,fd00::/8], got {item!r}") from None
    return tuple(networks)


def _labels_from_toml(value: Any, section: Section) -> dict[str, str]:
    if not isinstance(value, dict):
        raise SettingsError(f"[{section.name}] labels must be a table of KEY = VALUE")
    return {str(k): str(v) for k, v in value.items()}


def _labels_from_flags(given: list[str], flag: str) -> dict[str, str]:
    labels = {}
    for label in given:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise SettingsError(f"{flag}: expected KEY=VALUE, got {label!r}")
        labels[key] = value
    return labels


def shown_default(entry: Entry) -> str:
    """The default as `--help` and the README write it."""
    setting, default = entry.setting, entry.default
    if setting.shown_default is not None:
        return setting.shown_default
    if setting.kind == "host_port":
        return f"{default}:{entry.port_default}"
    if setting.kind == "disable":
        return "on"
    if setting.kind == "enable":
        return "off"
    if default in ("", 0, {}, [], ()):
        return "none"
    return f"{default:g}" if isinstance(default, float) else str(default)


def markdown(sections: Sequence[Section]) -> str:
    """A Markdown table of every setting of `sections`: flag, TOML key, default, meaning."""
    lines = ["| flag | TOML key | default | meaning |", "|---|---|---|---|"]
    for section in sections:
        for entry in section.entries():
            setting = entry.setting
            flag = f"`{entry.flag}{' ' + setting.metavar if setting.metavar else ''}`" if entry.flag else "(file only)"
            key = f"`[{section.name}] {setting.key}`" if setting.key else "(flag only)"
            default = shown_default(entry)
            literal = setting.shown_default is None and default not in ("none", "on", "off")
            meaning = setting.help + (f" (also `${setting.env}`)" if setting.env else "")
            lines.append(f"| {flag} | {key} | {f'`{default}`' if literal else default} | {meaning} |")
    return "\n".join(lines) + "\n"


def toml_example(sections: Sequence[Section]) -> str:
    """A configuration file setting every TOML key of `sections` to its default, each with its meaning."""
    out: list[str] = []
    for section in sections:
        entries = [e for e in section.entries() if e.setting.key is not None]
        if not section.name or not entries:
            continue
        out.append(f"[{section.name}]")
        for entry in entries:
            out.append(f"# {entry.setting.help}")
            out.append(f"{entry.setting.key} = {_toml_value(entry)}")
        out.append("")
    return "\n".join(out)


def _toml_value(entry: Entry) -> str:
    kind, default = entry.setting.kind, entry.default
    if kind == "host_port":
        default = f"{default}:{entry.port_default}"
    elif kind in ("size", "rate"):
        default = f"{default:g}"
    elif kind == "path":
        default = str(default)
    elif kind == "labels":
        return "{}"
    elif kind == "networks":
        default = list(default)
    return json.dumps(default)
