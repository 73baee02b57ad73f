"""A loop of the manager's that runs in a task of its own, owned by whoever starts it: `start` makes the task once,
`close` cancels it and waits for it to end (manager/app.py starts and closes each at start-up and shutdown)."""

from __future__ import annotations

import asyncio
import contextlib


class OwnedLoop:
    # The task's name, as asyncio and a stack dump show it.
    loop_name = "manager-loop"

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.loop_name)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        raise NotImplementedError
