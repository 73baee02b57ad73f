"""Schema-1 signed manifests: the digest covers the payload without the signatures, as registries compute it."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from core.schema1 import InvalidSignedManifest, signed_manifest_sha256, signed_payload


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _sign(payload: bytes, signature_count: int = 1, *, tail: bytes | None = None) -> bytes:
    """Splice signatures into `payload` the way libtrust's pretty JWS does: before its closing brace."""
    # The payload is cut after its last value; what follows (the newline and the closing brace) is the tail.
    cut = len(payload[: payload.rindex(b"}")].rstrip(b"\n "))
    format_tail = payload[cut:] if tail is None else tail
    protected = _b64url(json.dumps({"formatLength": cut, "formatTail": _b64url(format_tail), "time": "t"}).encode())
    signatures = [
        {"header": {"alg": "ES256"}, "signature": _b64url(b"sig%d" % i), "protected": protected}
        for i in range(signature_count)
    ]
    return payload[:cut] + b',\n   "signatures": ' + json.dumps(signatures, indent=3).encode() + payload[cut:]


PAYLOAD = json.dumps(
    {"schemaVersion": 1, "name": "team/app", "tag": "v1", "architecture": "amd64", "fsLayers": [], "history": []},
    indent=3,
).encode()


def test_digest_is_of_the_payload_without_signatures() -> None:
    body = _sign(PAYLOAD, signature_count=2)
    assert body != PAYLOAD and b"signatures" in body
    assert signed_payload(body) == PAYLOAD
    assert signed_manifest_sha256(body) == hashlib.sha256(PAYLOAD).hexdigest()
    assert signed_manifest_sha256(body) != hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        PAYLOAD,  # no signatures at all
        json.dumps({"signatures": [{"protected": "%%%"}]}).encode(),
        json.dumps({"signatures": [{"protected": _b64url(b'{"formatLength": 5}')}]}).encode(),
        json.dumps({"signatures": [{"protected": _b64url(b'{"formatLength": 99999, "formatTail": ""}')}]}).encode(),
        json.dumps({"signatures": [{"protected": _b64url(b'{"formatLength": true, "formatTail": ""}')}]}).encode(),
        json.dumps({"signatures": "x"}).encode(),
        b"[]",
    ],
)
def test_malformed_signed_manifests_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidSignedManifest):
        signed_manifest_sha256(body)


def test_signatures_that_disagree_are_refused() -> None:
    body = _sign(PAYLOAD)
    document = json.loads(body)
    other = dict(document["signatures"][0])
    other["protected"] = _b64url(json.dumps({"formatLength": 3, "formatTail": _b64url(b"}")}).encode())
    document["signatures"].append(other)
    with pytest.raises(InvalidSignedManifest):
        signed_payload(json.dumps(document, indent=3).encode())


def test_a_tail_that_does_not_close_the_manifest_is_refused() -> None:
    with pytest.raises(InvalidSignedManifest):
        signed_payload(_sign(PAYLOAD, tail=b"\n"))
