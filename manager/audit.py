"""The audit log: each write's entry is added in the write's own transaction, so none is ever dropped; a refused
or failed write gets its entry in a transaction of its own."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from .models import AuditEntry

OK = "ok"
REFUSED = "refused"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    # session, token:ID or anonymous.
    via: str
    client: str


def record(session: AsyncSession, actor: Actor, action: str, target: str, result: str, detail: str = "") -> None:
    session.add(
        AuditEntry(
            at=time.time(), actor=actor.name[:64], via=actor.via[:32], action=action[:64], target=target[:255],
            result=result, detail=detail[:1000], client=actor.client[:64],
        )
    )


def entry_json(entry: AuditEntry) -> dict[str, object]:
    return {
        "id": entry.id, "at": entry.at, "actor": entry.actor, "via": entry.via, "action": entry.action,
        "target": entry.target, "result": entry.result, "detail": entry.detail, "client": entry.client,
    }
