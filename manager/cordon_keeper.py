"""Tells the supernodes the cordoned hosts again, every `every` seconds, in a task of its own (manager/app.py owns
it: `start`, `close`).

A supernode keeps its cordon set in memory (supernode/scheduler.py): one that restarted schedules a cordoned host as
a parent again until it is told. The manager tells it at its own start and on every cordon change; this tells it
again afterwards, so a supernode restarted under a running manager (or one added to the list) holds the cordons
within `every` seconds. The whole set is sent each time, so telling it again is harmless.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .hosts import HostBook
from .periodic import OwnedLoop

log = logging.getLogger(__name__)

MIN_EVERY = 0.2


class CordonKeeper(OwnedLoop):
    loop_name = "cordon-keeper"

    def __init__(self, hosts: HostBook, sessions: async_sessionmaker[AsyncSession], every: float) -> None:
        self.hosts = hosts
        self.sessions = sessions
        self.every = max(every, MIN_EVERY)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                # A supernode that did not hear it is logged by the source; the next round tells it again.
                await self.hosts.push_cordons(self.sessions)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("the cordoned hosts could not be read to tell the supernodes: %s", type(exc).__name__)
            except Exception:
                log.exception("the cordoned hosts could not be told to the supernodes")
