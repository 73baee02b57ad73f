"""Repository names and references, by the grammar of the OCI distribution spec."""

from __future__ import annotations

import re

# distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
# A registry host as the first path component: must look like a host (has a dot or a port, or is localhost).
REGISTRY_HOST_RE = re.compile(
    r"^(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,62})(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,62}))+|"
    r"\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$|^[a-zA-Z0-9-]{1,63}:[0-9]{1,5}$"
)
MAX_NAME_LENGTH = 255


def is_repository(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and REPOSITORY_RE.match(name) is not None


def is_tag(reference: str) -> bool:
    return TAG_RE.match(reference) is not None


def looks_like_registry_host(component: str) -> bool:
    """Whether a first path component names a registry (`host.tld`, `host:port`, `localhost`)."""
    return REGISTRY_HOST_RE.match(component) is not None
