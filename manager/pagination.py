"""List endpoints answer a page: `limit` (up to 500) items after `cursor`, and `next`, the cursor of the next page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute
from starlette.requests import Request

from .api_errors import invalid

Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])
MAX_LIMIT = 500
DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    # The id the page starts after (before, for newest-first lists); None: from the start.
    cursor: int | None

    def of(self, query: Query, id_column: InstrumentedAttribute[int], *, newest_first: bool = False) -> Query:
        """`query` narrowed to this page: ordered by `id_column`, after the cursor, one row more than the limit."""
        if newest_first:
            query = query.order_by(id_column.desc())
            if self.cursor is not None:
                query = query.where(id_column < self.cursor)
        else:
            query = query.order_by(id_column)
            if self.cursor is not None:
                query = query.where(id_column > self.cursor)
        return query.limit(self.limit + 1)

    def answer(self, items: list[dict[str, Any]], ids: list[int]) -> dict[str, Any]:
        """`ids` are those of the up to limit+1 rows fetched: one more than shown says a next page exists."""
        more = len(items) > self.limit
        return {"items": items[: self.limit], "next": str(ids[self.limit - 1]) if more else None}


def page_of(request: Request) -> Page:
    limit_text = request.query_params.get("limit", str(DEFAULT_LIMIT))
    cursor_text = request.query_params.get("cursor", "")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise invalid(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    if cursor_text and not (cursor_text.isdigit() and len(cursor_text) < 19):
        raise invalid("cursor must be the `next` of an earlier page")
    return Page(int(limit_text), int(cursor_text) if cursor_text else None)
