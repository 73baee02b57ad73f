"""How a package's config dataclass declares a setting an operator may set: its flag, its TOML key and its kind.

The declaration rides in the dataclass field's metadata, next to the field's default, so each default is written
once; `damselfly/flags.py` turns the declarations into argparse flags, reads the TOML file with them, and prints
the README's table. A field without one is internal tuning: it keeps its default.

    upload_rate: float = setting(0.0, Setting("...", key="upload_rate", flag="--upload-rate", kind="rate"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = ["SETTING", "Kind", "Setting", "setting", "setting_factory"]

T = TypeVar("T")

# What a value means, which says how text from a flag or a TOML value is read:
# text, int, float, path; size (`10GiB`, bytes), rate (`100Mbit`, bytes per second); host_port (`HOST:PORT` into the
# field and its `port_field`); labels (`KEY=VALUE` flags, repeated, merged over a TOML table); urls (comma-separated
# or a TOML list, kept comma-joined); patterns (a TOML list of strings); disable (a flag that turns a default-on
# setting off; in TOML a boolean); enable (a flag that turns a default-off setting on; in TOML a boolean); networks
# (CIDRs, comma-separated or a TOML list); secret_file (a secret: the flag and the TOML key name a file holding it,
# its environment variable holds it; the flag without `-file`, the secret itself on the command line, is refused).
Kind = Literal[
    "text", "int", "float", "path", "size", "rate", "host_port", "labels", "urls", "patterns", "disable", "enable",
    "networks", "secret_file",
]

# The metadata key a field's Setting is stored under.
SETTING = "damselfly.setting"


@dataclass(frozen=True, slots=True)
class Setting:
    # One line for `--help` and the README: what the setting does.
    help: str
    # The key in the package's TOML section; None: a flag only.
    key: str | None = None
    # The command-line flag; None: the TOML file only.
    flag: str | None = None
    kind: Kind = "text"
    # How the value is written in `--help` (e.g. HOST:PORT).
    metavar: str | None = None
    # An environment variable read when the flag is not given, so a secret need not be on the command line.
    env: str | None = None
    # host_port: the field that takes the port.
    port_field: str | None = None
    # How the default reads when it is not a plain value (e.g. it depends on the user).
    shown_default: str | None = None
    # The values a text setting may take.
    choices: tuple[str, ...] = ()

    def checked(self) -> Setting:
        if self.key is None and self.flag is None:
            raise ValueError(f"{self.help!r}: a setting needs a TOML key, a flag, or both")
        if (self.kind == "host_port") != (self.port_field is not None):
            raise ValueError(f"{self.help!r}: host_port settings, and only they, name their port_field")
        if self.kind == "secret_file" and (self.flag is None or not self.flag.endswith("-file") or not self.env):
            raise ValueError(f"{self.help!r}: a secret is read from a file (its flag ends in -file) or its env")
        return self


def setting(default: T, declared: Setting) -> T:
    """A dataclass field with `default` that operators may set as `declared`; a list or dict default is copied for
    each instance."""
    metadata = {SETTING: declared.checked()}
    if isinstance(default, list | dict):
        made: Any = field(default_factory=lambda: default.copy(), metadata=metadata)
    else:
        made = field(default=default, metadata=metadata)
    return made  # type: ignore[no-any-return]


def setting_factory(factory: Callable[[], T], declared: Setting) -> T:
    """A dataclass field whose default `factory` makes when the config is built (e.g. it depends on the user)."""
    made: Any = field(default_factory=factory, metadata={SETTING: declared.checked()})
    return made  # type: ignore[no-any-return]
