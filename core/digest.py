"""Content digests (`algorithm:hex`) as the OCI image spec defines them, limited to what we verify."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

# Only algorithms we can verify are accepted: a digest we cannot check must never be served.
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^(sha256|sha512):([a-f0-9]+)$")


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


class InvalidDigest(ValueError):
    """The text is not a digest of a supported algorithm."""


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = _DIGEST_RE.match(text)
        if match is None or len(match.group(2)) != _HEX_LENGTH[match.group(1)]:
            raise InvalidDigest(f"invalid digest {text[:200]!r}")
        return cls(match.group(1), match.group(2))

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> Hasher:
        return hashlib.new(self.algorithm)

    def matches(self, data: bytes) -> bool:
        hasher = self.hasher()
        hasher.update(data)
        return hasher.hexdigest() == self.hex


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()
