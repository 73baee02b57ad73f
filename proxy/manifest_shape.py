"""Whether a manifest from the upstream has the shape of the media type it claims, before a byte reaches a client.

By digest the content is pinned by its hash; by tag it is whatever the upstream (or whoever answers in its name)
sends, and a client would parse and act on it. So the body must parse as JSON and, for the image manifest and
index types of OCI and Docker, carry what those types require: `schemaVersion`, a `mediaType` (if present) that
agrees with the Content-Type, descriptors (`mediaType`, `digest`, `size`) for a manifest's config and layers and
for an index's manifests. Schema-1 manifests must be JSON objects with `schemaVersion` 1. Other types (artifacts,
`application/json`) need only be JSON; one whose body names a known type in `mediaType` is checked as that type.
"""

from __future__ import annotations

import json
import re
from typing import Any

from core.schema1 import SIGNED_SCHEMA1

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"

IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
SCHEMA1_TYPES = frozenset({SCHEMA1, SIGNED_SCHEMA1})
KNOWN = IMAGE_MANIFESTS | INDEXES | SCHEMA1_TYPES

# The OCI image spec's digest grammar: `algorithm:encoded`.
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


class BadManifestShape(ValueError):
    """The body does not parse as the media type it claims; the message says how, in a few words."""


def media_type_of(content_type: str) -> str:
    """`application/x; charset=utf-8` -> `application/x`."""
    return content_type.partition(";")[0].strip().lower()


def check_manifest_shape(body: bytes, content_type: str) -> None:
    """Raise BadManifestShape unless `body` parses as the media type of `content_type`."""
    try:
        manifest: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadManifestShape("not JSON") from None
    claimed = media_type_of(content_type)
    if claimed not in KNOWN:
        # An artifact's own type, or a generic one: a known type named inside is still held to its shape.
        named = manifest.get("mediaType") if isinstance(manifest, dict) else None
        if not isinstance(named, str) or named not in KNOWN:
            return
        claimed = named
    if not isinstance(manifest, dict):
        raise BadManifestShape("not a JSON object")
    if claimed in SCHEMA1_TYPES:
        _expect_schema_version(manifest, 1)
        return
    _expect_schema_version(manifest, 2)
    named = manifest.get("mediaType")
    if named is not None and named != claimed:
        raise BadManifestShape(f"its mediaType {str(named)[:100]!r} is not its Content-Type {claimed!r}")
    if claimed in IMAGE_MANIFESTS:
        _expect_descriptor(manifest.get("config"), "config")
        layers = manifest.get("layers")
        if not isinstance(layers, list):
            raise BadManifestShape("layers is not a list")
        for index, layer in enumerate(layers):
            _expect_descriptor(layer, f"layers[{index}]")
    else:
        entries = manifest.get("manifests")
        if not isinstance(entries, list):
            raise BadManifestShape("manifests is not a list")
        for index, entry in enumerate(entries):
            _expect_descriptor(entry, f"manifests[{index}]")


def _expect_schema_version(manifest: dict[str, Any], version: int) -> None:
    found = manifest.get("schemaVersion")
    # bool is an int in Python; `true` is no schema version.
    if not isinstance(found, int) or isinstance(found, bool) or found != version:
        raise BadManifestShape(f"schemaVersion is not {version}")


def _expect_descriptor(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise BadManifestShape(f"{where} is not a descriptor object")
    if not isinstance(value.get("mediaType"), str):
        raise BadManifestShape(f"{where} has no mediaType string")
    digest = value.get("digest")
    if not isinstance(digest, str) or _DIGEST.match(digest) is None:
        raise BadManifestShape(f"{where} has no valid digest")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadManifestShape(f"{where} has no valid size")
