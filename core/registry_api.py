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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from . import errors
from .digest import Digest, InvalidDigest
from .errors import RegistryError
from .names import is_repository, is_tag, looks_like_registry_host

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
# A reference that is neither tag nor digest names a manifest that cannot exist: 404, as the conformance suite
# expects of GET and HEAD (and as `docker-registry`, whose router does not match it, answers).
REFERENCE = Convertor(r"[^/]+", _is_tag_or_digest, errors.MANIFEST_UNKNOWN, "invalid tag or digest")
# A registry host in front of a path about no repository (`/v2/<registry-host>/_catalog`).
REGISTRY = Convertor(r"[^/]+", looks_like_registry_host, errors.NAME_UNKNOWN, "unknown registry API path")
CONVERTORS: Mapping[str, Convertor] = {
    "name": REPOSITORY,
    "digest": DIGEST,
    "reference": REFERENCE,
    "registry": REGISTRY,
}

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

    def url(self, query: Sequence[tuple[str, str]] = (), **values: str) -> str:
        """`path(**values)` with a query string (`n`, `last`, `artifactType`), percent-encoded here."""
        path = self.path(**values)
        return f"{path}?{urlencode(query)}" if query else path


BASE = Route("base", "/v2/", "API version check; the auth challenge for clients without credentials")
MANIFEST = Route("manifest", "/v2/{name}/manifests/{reference}", "a manifest by tag or digest")
BLOB = Route("blob", "/v2/{name}/blobs/{digest}", "a blob by digest")
TAGS = Route("tags", "/v2/{name}/tags/list", "a repository's tags, paginated by `n` and `last`")
REFERRERS = Route("referrers", "/v2/{name}/referrers/{digest}", "the manifests whose subject is a digest (OCI 1.1)")
CATALOG = Route("catalog", "/v2/_catalog", "the registry's repositories, paginated by `n` and `last`")
# The catalog of a registry named by a path prefix; upstream, it is `CATALOG`.
REGISTRY_CATALOG = Route("registry_catalog", "/v2/{registry}/_catalog", "the catalog of the registry named in front")

# Every route of the API, in the order paths are matched against them.
ROUTES: tuple[Route, ...] = (BASE, CATALOG, REGISTRY_CATALOG, MANIFEST, BLOB, TAGS, REFERRERS)
# Routes about one repository (a `{name}`); the others are about a whole registry.
REPOSITORY_ROUTES: frozenset[Route] = frozenset(route for route in ROUTES if "name" in route.parameters)


def match(path: str) -> tuple[Route, dict[str, str]] | None:
    """The first route whose shape `path` has, with its parameters' (unchecked) text; a query string is ignored."""
    path = path.partition("?")[0]
    for route in ROUTES:
        values = route.match(path)
        if values is not None:
            return route, values
    return None
