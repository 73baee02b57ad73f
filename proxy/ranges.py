"""HTTP Range requests for blobs: one range of bytes, as registry clients send them."""

from __future__ import annotations

import re

from core import errors
from core.errors import RegistryError

_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive, or None for the whole blob; raises 416 when no byte of the blob is asked for.

    A header we do not understand (several ranges, other units) is ignored, as RFC 9110 allows: the client
    gets the whole blob.
    """
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise unsatisfiable(size)
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise unsatisfiable(size)
    return start, min(end, size - 1)


def unsatisfiable(size: int) -> RegistryError:
    return RegistryError(errors.RANGE_INVALID, headers={"content-range": f"bytes */{size}"})
