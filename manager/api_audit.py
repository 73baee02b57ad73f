"""The audit log, newest first, for admins: `/api/v1/audit`."""

from __future__ import annotations

from sqlalchemy import select
from starlette.responses import JSONResponse, Response

from .audit import entry_json
from .context import Context
from .models import AuditEntry
from .pagination import page_of


async def list_audit(ctx: Context) -> Response:
    page = page_of(ctx.request)
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(page.limit + 1)
    if page.cursor is not None:
        query = query.where(AuditEntry.id < page.cursor)
    async with ctx.read() as session:
        entries = list((await session.execute(query)).scalars())
    return JSONResponse(page.answer([entry_json(e) for e in entries], [e.id for e in entries]))
