"""The digest of a Docker schema-1 signed manifest (`application/vnd.docker.distribution.manifest.v1+prettyjws`).

A signed schema-1 manifest is the manifest JSON with a `signatures` array spliced in (libtrust's "pretty JWS").
Its digest is not the hash of the body but of the payload the signatures cover: the body up to where the
signatures begin (`formatLength` bytes), followed by the closing text the signing removed (`formatTail`, base64url
in each signature's protected header). Every signature must describe the same payload; a body that does not parse
this way has no schema-1 digest and is refused rather than hashed whole.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

SIGNED_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


class InvalidSignedManifest(ValueError):
    """The body is not a schema-1 manifest with libtrust signatures."""


def _b64url(text: str) -> bytes:
    # base64url without padding, as JWS writes it.
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignedManifest("a protected header is not base64url") from exc


def _protected_format(signature: Any) -> tuple[int, bytes]:
    if not isinstance(signature, dict) or not isinstance(signature.get("protected"), str):
        raise InvalidSignedManifest("a signature has no protected header")
    try:
        header = json.loads(_b64url(signature["protected"]))
    except ValueError as exc:
        raise InvalidSignedManifest("a protected header is not JSON") from exc
    length, tail = header.get("formatLength") if isinstance(header, dict) else None, header.get("formatTail")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0 or not isinstance(tail, str):
        raise InvalidSignedManifest("a protected header lacks formatLength or formatTail")
    return length, _b64url(tail)


def signed_payload(body: bytes) -> bytes:
    """The bytes the signatures of a signed schema-1 manifest cover: what its digest is computed over."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise InvalidSignedManifest("the manifest is not JSON") from exc
    signatures = document.get("signatures") if isinstance(document, dict) else None
    if not isinstance(signatures, list) or not signatures:
        raise InvalidSignedManifest("the manifest has no signatures")
    formats = {_protected_format(signature) for signature in signatures}
    if len(formats) != 1:
        raise InvalidSignedManifest("the signatures disagree on the payload")
    ((length, tail),) = formats
    if length > len(body):
        raise InvalidSignedManifest("formatLength is past the end of the manifest")
    payload = body[:length] + tail
    try:
        json.loads(payload)
    except ValueError as exc:
        # What the signatures say they cover must itself be the manifest: otherwise the header lies.
        raise InvalidSignedManifest("the signed payload is not JSON") from exc
    return payload


def signed_manifest_sha256(body: bytes) -> str:
    """The hex sha256 a registry names a signed schema-1 manifest by."""
    return hashlib.sha256(signed_payload(body)).hexdigest()
