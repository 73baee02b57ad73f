"""The registry API routes (OCI distribution spec), declared once: the proxy's router matches paths against this
table and every URL to a registry (the proxy's, the upstream client's) is built from it.

A route is a path template whose `{parameters}` each have a convertor: the text it matches, and the check that
the matched text is well-formed, raising the OCI error a registry answers for it. The repository `{name}` matches
loosely (anything, slashes included), because the proxy first takes a registry host off its front (`/v2/<registry-
host>/<repo>/...`) and only then checks the rest against the repository grammar. Adding a route is one entry in
`ROUTES` (and, in the proxy, one handler for it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import errors
from .digest import Digest, InvalidDigest
from .errors import RegistryError
from .names import is_repository, is_tag

# Longest parameter text repeated back in an error's detail.
_DETAIL_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Convertor:
    """One kind of path parameter: the regex the router matches it with, and the check of what was matched."""

    regex: str
    valid: Callable[[str], bool]
    # What a registry answers when the text is not valid.
    error: errors.ErrorCode
    message: str = ""

    def check(self, parameter: str, text: str) -> None:
        """Raise the convertor's OCI error unless `text` is well-formed."""
        if not self.valid(text):
            raise RegistryError(self.error, message=self.message or None, detail={parameter: text[:_DETAIL_LIMIT]})


def _is_digest(text: str) -> bool:
    try:
        Digest.parse(text)
    except InvalidDigest:
        return False
    return True


def _is_tag_or_digest(text: str) -> bool:
    return is_tag(text) or _is_digest(text)


REPOSITORY = Convertor(r".+", is_repository, errors.NAME_INVALID)
DIGEST = Convertor(r"[^/]+", _is_digest, errors.DIGEST_INVALID, "invalid digest")
REFERENCE = Convertor(r"[^/]+", _is_tag_or_digest, errors.MANIFEST_INVALID, "invalid tag or digest")
CONVERTORS: Mapping[str, Convertor] = {"name": REPOSITORY, "digest": DIGEST, "reference": REFERENCE}

_PARAMETER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Route:
    """One registry API path, e.g. `/v2/{name}/blobs/{digest}`."""

    name: str
    template: str
    description: str
    parameters: tuple[str, ...] = field(init=False)
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parameters = tuple(_PARAMETER.findall(self.template))
        unknown = set(parameters) - set(CONVERTORS)
        if unknown:
            raise ValueError(f"route {self.name}: no convertor for {sorted(unknown)}")
        pattern, position = "^", 0
        for match in _PARAMETER.finditer(self.template):
            pattern += re.escape(self.template[position : match.start()])
            pattern += f"(?P<{match.group(1)}>{CONVERTORS[match.group(1)].regex})"
            position = match.end()
        pattern += re.escape(self.template[position:]) + "$"
        object.__setattr__(self, "parameters", parameters)
        object.__setattr__(self, "_regex", re.compile(pattern))

    def match(self, path: str) -> dict[str, str] | None:
        """The parameters' text if `path` has this route's shape (not checked yet: see `check`), else None."""
        found = self._regex.match(path)
        return found.groupdict() if found is not None else None

    def check(self, values: Mapping[str, str]) -> None:
        """Raise the OCI error of the first malformed parameter. Checked from the end of the path back, so a bad
        digest or tag is reported before a bad repository name."""
        for parameter in reversed(self.parameters):
            CONVERTORS[parameter].check(parameter, values[parameter])

    def path(self, **values: str) -> str:
        """The path of this route for `values`, each checked first: nothing malformed is ever sent anywhere.
        Repository names, tags and digests hold no character that needs percent-encoding."""
        if set(values) != set(self.parameters):
            raise TypeError(f"route {self.name} takes {self.parameters}, got {sorted(values)}")
        self.check(values)
        return _PARAMETER.sub(lambda m: values[m.group(1)], self.template)


BASE = Route("base", "/v2/", "API version check; the auth challenge for clients without credentials")
MANIFEST = Route("manifest", "/v2/{name}/manifests/{reference}", "a manifest by tag or digest")
BLOB = Route("blob", "/v2/{name}/blobs/{digest}", "a blob by digest")

# Every route of the API, in the order paths are matched against them.
ROUTES: tuple[Route, ...] = (BASE, MANIFEST, BLOB)


def match(path: str) -> tuple[Route, dict[str, str]] | None:
    """The first route whose shape `path` has, with its parameters' (unchecked) text."""
    for route in ROUTES:
        values = route.match(path)
        if values is not None:
            return route, values
    return None
