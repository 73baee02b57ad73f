"""Reading a console form: an urlencoded body, capped in size, as the fields the API's handler expects."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from ..api_errors import ApiError, invalid
from ..clusters import BadScope, parse_label

MAX_FIELDS = 200


class Form:
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.pairs:
            if key == name:
                return value
        return default

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def __contains__(self, name: str) -> bool:
        return any(key == name for key, _ in self.pairs)


async def read_form(request: Request, max_body: int) -> Form:
    """The form's fields; an empty form for a body too large, cut off or not a form (the CSRF check refuses it)."""
    raw = bytearray()
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_body:
                return Form([])
    except ClientDisconnect:
        return Form([])
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return Form([])
    return Form(pairs)


def words(text: str) -> list[str]:
    """A list typed in one field: separated by commas, spaces or new lines."""
    return [word for word in text.replace(",", " ").split() if word]


def labels(text: str) -> dict[str, str]:
    """`KEY=VALUE` pairs typed in one field; a 400 (audited as the API's) for one that is not."""
    found = {}
    for word in words(text):
        try:
            key, value = parse_label(word)
        except BadScope as exc:
            raise invalid(str(exc)) from None
        found[key] = value
    return found


def flag(text: str) -> bool:
    if text not in ("true", "false"):
        raise ApiError(400, "invalid", "expected true or false")
    return text == "true"
