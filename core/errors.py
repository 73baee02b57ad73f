"""One registry of OCI distribution error codes, rendered the same way everywhere.

Storage and swarm code raise `RegistryError`; the HTTP layers render it as
`{"errors": [{"code", "message", "detail"}]}` with the code's status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    message: str
    status: int


BLOB_UNKNOWN = ErrorCode("BLOB_UNKNOWN", "blob unknown to registry", 404)
DIGEST_INVALID = ErrorCode("DIGEST_INVALID", "provided digest did not match uploaded content", 400)
MANIFEST_UNKNOWN = ErrorCode("MANIFEST_UNKNOWN", "manifest unknown", 404)
MANIFEST_INVALID = ErrorCode("MANIFEST_INVALID", "manifest invalid", 400)
NAME_INVALID = ErrorCode("NAME_INVALID", "invalid repository name", 400)
NAME_UNKNOWN = ErrorCode("NAME_UNKNOWN", "repository name not known to registry", 404)
UNAUTHORIZED = ErrorCode("UNAUTHORIZED", "authentication required", 401)
DENIED = ErrorCode("DENIED", "requested access to the resource is denied", 403)
PAGINATION_NUMBER_INVALID = ErrorCode("PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400)
UNSUPPORTED = ErrorCode("UNSUPPORTED", "the operation is unsupported", 405)
TOO_MANY_REQUESTS = ErrorCode("TOOMANYREQUESTS", "too many requests", 429)
RANGE_INVALID = ErrorCode("RANGE_NOT_SATISFIABLE", "requested range not satisfiable", 416)
UNAVAILABLE = ErrorCode("UNAVAILABLE", "service unavailable", 503)
UPSTREAM_FAILED = ErrorCode("UPSTREAM_FAILED", "the upstream registry could not be reached", 502)
REGISTRY_NOT_ALLOWED = ErrorCode("DENIED", "this registry is not configured on the mirror", 403)
INSUFFICIENT_STORAGE = ErrorCode("UNAVAILABLE", "the mirror's disk is full", 507)

_BY_STATUS = {
    401: UNAUTHORIZED,
    403: DENIED,
    404: BLOB_UNKNOWN,
    405: UNSUPPORTED,
    416: RANGE_INVALID,
    429: TOO_MANY_REQUESTS,
}


class RegistryError(Exception):
    """An error with an OCI code; `headers` carries e.g. `WWW-Authenticate` back to the client."""

    def __init__(
        self,
        error: ErrorCode,
        detail: Any = None,
        *,
        message: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message or error.message)
        self.error = error
        self.detail = detail
        self.message = message or error.message
        self.status = status or error.status
        self.headers = headers or {}
        # An upstream's own OCI error body, passed through verbatim when we have one.
        self.body = body

    def render(self) -> bytes:
        if self.body is not None:
            return self.body
        entry: dict[str, Any] = {"code": self.error.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()


def error_for_status(status: int) -> ErrorCode:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return UNAVAILABLE if status == 503 else UPSTREAM_FAILED


def is_oci_error_body(body: bytes) -> bool:
    """Whether an upstream body already is OCI error JSON, so it can be passed on as it is."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("errors"), list)
