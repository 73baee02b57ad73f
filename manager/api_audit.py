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
    query = page.of(select(AuditEntry), AuditEntry.id, newest_first=True)
    async with ctx.read() as session:
        entries = list((await session.execute(query)).scalars())
    return JSONResponse(page.answer([entry_json(e) for e in entries], [e.id for e in entries]))
