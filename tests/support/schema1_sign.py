"""Sign a Docker schema-1 manifest the way libtrust does, so a real `docker-registry` accepts it on push.

The signature is a real ES256 JWS made with `openssl` (no crypto library needed): a P-256 key, its public half
as the JWK in the header (with libtrust's key ID, which the registry checks), and the "pretty JWS" layout
(`formatLength`/`formatTail` in the protected header, the `signatures` array spliced in before the closing
brace). The registry verifies the signature and names the manifest by the sha256 of the payload.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SIGNED_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _openssl(*args: str, data: bytes = b"") -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True, timeout=30).stdout


def _der_integers(der: bytes) -> tuple[int, int]:
    """r and s of a DER ECDSA signature (SEQUENCE of two INTEGERs, short lengths: P-256 sizes)."""
    assert der[0] == 0x30
    position = 2 if der[1] < 0x80 else 3
    values = []
    for _ in range(2):
        assert der[position] == 0x02
        length = der[position + 1]
        values.append(int.from_bytes(der[position + 2 : position + 2 + length], "big"))
        position += 2 + length
    return values[0], values[1]


def _key_id(public_der: bytes) -> str:
    # libtrust: base32 of the first 240 bits of the sha256 of the DER public key, in groups of four.
    text = base64.b32encode(hashlib.sha256(public_der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def sign_schema1(manifest: dict[str, Any]) -> bytes:
    """The signed body of `manifest` (a schema-1 manifest without signatures)."""
    payload = json.dumps(manifest, indent=3).encode()
    # The payload is cut after its last value; the newline and closing brace are the tail the signature covers.
    cut = len(payload[: payload.rindex(b"}")].rstrip(b"\n "))
    protected = _b64url(
        json.dumps({"formatLength": cut, "formatTail": _b64url(payload[cut:]), "time": "2026-01-01T00:00:00Z"})
        .encode()
    )
    with tempfile.TemporaryDirectory() as workdir:
        key = Path(workdir) / "key.pem"
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
        public_der = _openssl("ec", "-in", str(key), "-pubout", "-outform", "DER")
        signed_input = f"{protected}.{_b64url(payload)}".encode()
        r, s = _der_integers(_openssl("dgst", "-sha256", "-sign", str(key), data=signed_input))
    point = public_der[-65:]  # uncompressed point: 04 || x || y
    jwk = {
        "crv": "P-256", "kid": _key_id(public_der), "kty": "EC",
        "x": _b64url(point[1:33]), "y": _b64url(point[33:]),
    }
    signature = {
        "header": {"jwk": jwk, "alg": "ES256"},
        "signature": _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
        "protected": protected,
    }
    return payload[:cut] + b',\n   "signatures": ' + json.dumps([signature], indent=3).encode() + payload[cut:]
