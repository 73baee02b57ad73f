"""Reading a request's JSON body: capped in size, an object, each field of the type it must be."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from .api_errors import ApiError, invalid


async def read_json(request: Request, max_body: int, allowed: frozenset[str]) -> JsonObject:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise ApiError(413, "body_too_large", f"the body is over {max_body} bytes")
    raw = bytearray()
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_body:
                raise ApiError(413, "body_too_large", f"the body is over {max_body} bytes")
    except ClientDisconnect:
        raise invalid("the client disconnected mid-body") from None
    try:
        body = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError):
        raise invalid("the body is not JSON") from None
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    return JsonObject(body).only(allowed)


class JsonObject:
    """Typed access to a body's fields: a wrong type is a 400 naming the field."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def only(self, allowed: frozenset[str]) -> JsonObject:
        """Itself, if it holds no field but those allowed; else a 400 naming the first other."""
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise invalid(f"unknown field {str(unknown[0])[:64]!r}")
        return self

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def text(self, name: str, *, default: str | None = None, max_length: int = 1024) -> str:
        value = self.data.get(name, default)
        if value is None:
            raise invalid(f"{name} is required")
        if not isinstance(value, str):
            raise invalid(f"{name} must be a string")
        if len(value) > max_length:
            raise invalid(f"{name} is longer than {max_length} characters")
        return value

    def flag(self, name: str) -> bool:
        value = self.data.get(name)
        if not isinstance(value, bool):
            raise invalid(f"{name} must be true or false")
        return value

    def texts(self, name: str, *, max_items: int = 64) -> list[str] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid(f"{name} must be a list of strings")
        if len(value) > max_items:
            raise invalid(f"{name} has more than {max_items} items")
        return value
