"""The supernode's port serving the platform too: a request whose path no supernode route matches goes to the
manager's app (manager/app.py), everything else to the supernode's, untouched.

The manager starts in the background once the supernode is up, so that neither a slow nor a broken database holds
up the coordination of swarms: meanwhile, or if it cannot open its database, the platform's paths answer 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from manager.app import ManagerApp
from supernode.routes import ROUTES as SUPERNODE_ROUTES

log = logging.getLogger(__name__)


class HostedPlatform:
    def __init__(self, supernode: ASGIApp, manager: ManagerApp, supernode_paths: Iterable[str]) -> None:
        self.supernode = supernode
        self.manager = manager
        # The supernode's path templates as Starlette matches them (its 404s and 405s stay its own), as one
        # alternation: one match per request on the supernode's hot path, not one per route.
        # Their named groups become plain ones: two templates may name the same parameter.
        patterns = [re.sub(r"\(\?P<\w+>", "(?:", compile_path(path)[0].pattern) for path in supernode_paths]
        self.owned = re.compile("|".join(f"(?:{pattern})" for pattern in patterns))
        self._supernode_begin_stop = getattr(supernode, "begin_stop", lambda: None)
        self._starting: asyncio.Task[bool] | None = None

    def begin_stop(self) -> None:
        """damselfly/cli.py calls it on SIGTERM: the supernode's long-polls answer at once, the console's event
        streams end."""
        self._supernode_begin_stop()
        self.manager.begin_stop()

    def supernode_owns(self, path: str) -> bool:
        if self.owned.match(path) is not None:
            return True
        # Starlette redirects `/api/v1/peers/` to `/api/v1/peers`: that stays the supernode's answer too.
        return path.endswith("/") and len(path) > 1 and self.owned.match(path.rstrip("/")) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        elif scope["type"] == "http" and not self.supernode_owns(scope["path"]):
            await self.manager(scope, receive, send)
        else:
            await self.supernode(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The supernode's lifespan, with the manager started after its start-up and stopped before its shut-down."""
        to_supernode: asyncio.Queue[Message] = asyncio.Queue()
        from_supernode: asyncio.Queue[Message] = asyncio.Queue()

        async def supernode_send(message: Message) -> None:
            await from_supernode.put(message)

        async def supernode_lifespan() -> None:
            await self.supernode(scope, to_supernode.get, supernode_send)

        running = asyncio.create_task(supernode_lifespan())
        try:
            await to_supernode.put(await receive())
            answer = await from_supernode.get()
            if answer["type"] == "lifespan.startup.complete":
                self._starting = asyncio.create_task(self.manager.startup(), name="manager-startup")
            await send(answer)
            if answer["type"] != "lifespan.startup.complete":
                return
            message = await receive()
            await self._stop_manager()
            await to_supernode.put(message)
            await send(await from_supernode.get())
        finally:
            await _finish(running)

    async def _stop_manager(self) -> None:
        if self._starting is not None:
            await _finish(self._starting)
        await self.manager.shutdown()


async def _finish(task: asyncio.Task[Any]) -> None:
    if not task.done():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), 15)
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def host(supernode: ASGIApp, manager: ManagerApp) -> HostedPlatform:
    return HostedPlatform(supernode, manager, (route.path for route in SUPERNODE_ROUTES))
