"""What an endpoint is handed: the request, its principal, the database, and the audit of its write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from . import audit
from .api_errors import ApiError
from .config import ManagerConfig
from .ratelimit import LoginLimiter
from .request_body import JsonObject, read_json

if TYPE_CHECKING:
    from .hosts import HostBook
    from .principal import Principal
    from .routes import ApiRoute
    from .secret_box import SecretBox
    from .task_runner import TaskRunner
    from .traffic import TrafficRecorder


@dataclass(slots=True)
class Platform:
    """The state of one running manager."""

    config: ManagerConfig
    sessions: async_sessionmaker[AsyncSession]
    limiter: LoginLimiter
    routes: tuple[ApiRoute, ...]
    # The hosts, live from the supernode(s), over what the database kept (manager/hosts.py).
    hosts: HostBook
    # The hosts' traffic, sampled in the background (manager/traffic.py).
    traffic: TrafficRecorder
    # Registry secrets' passwords are sealed with it (manager/secret_box.py).
    box: SecretBox
    # Moves tasks along; None when the manager reaches no job channel (a manager alone without --supernode).
    runner: TaskRunner | None = None


@dataclass(slots=True)
class Context:
    request: Request
    route: ApiRoute
    platform: Platform
    principal: Principal | None
    # Set when the write's audit entry was added to its transaction.
    audited: bool = False
    # What the refusal or failure of this write is about (a user's name, a token's id), for the audit entry.
    target: str = field(default="")
    # A console form's fields, in place of a JSON body (manager/console/): the handler reads them the same way.
    form: JsonObject | None = None
    # An error the console found before the handler runs (a form failing its CSRF check, a field it cannot put in
    # the API's shape): raised in the handler's place, so that it is answered and audited as the API's would be.
    early_error: ApiError | None = None

    @property
    def client(self) -> str:
        return self.request.client.host if self.request.client else ""

    @property
    def actor(self) -> audit.Actor:
        if self.principal is None:
            return audit.Actor("", "anonymous", self.client)
        return audit.Actor(self.principal.name, self.principal.via, self.client)

    def me(self) -> Principal:
        assert self.principal is not None, "the route table says this route needs a principal"
        return self.principal

    async def body(self, *fields: str) -> JsonObject:
        if self.form is not None:
            return self.form.only(frozenset(fields))
        return await read_json(self.request, self.platform.config.max_body, frozenset(fields))

    @asynccontextmanager
    async def write(self, target: str, detail: str = "") -> AsyncIterator[AsyncSession]:
        """One transaction for a write and its audit entry: both are kept or neither."""
        self.target = target
        async with self.platform.sessions.begin() as session:
            yield session
            audit.record(session, self.actor, self.route.name, self.target, audit.OK, detail)
            self.audited = True

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.platform.sessions() as session:
            yield session
