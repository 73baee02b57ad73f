"""The reporter never loses a piece digest, even when it is stopped in the middle of sending one."""

from __future__ import annotations

import asyncio
from typing import Any

from peer.reporter import SwarmReporter
from supernode.api import ReportRequest


class SlowSupernode:
    """Records every report; the first one hangs until cancelled, like a request cut off by `finish`."""

    def __init__(self) -> None:
        self.reports: list[ReportRequest] = []
        self.first_started = asyncio.Event()

    async def report(self, digest: str, request: ReportRequest) -> None:
        if not self.first_started.is_set():
            self.first_started.set()
            await asyncio.sleep(3600)
        self.reports.append(request)


async def test_a_send_cut_off_by_finish_is_sent_again_with_the_last_word() -> None:
    supernode = SlowSupernode()
    client: Any = supernode
    reporter = SwarmReporter(client, "sha256:" + "a" * 64, "p0")
    reporter.start()
    reporter.piece(0, "d" * 64)
    await asyncio.wait_for(supernode.first_started.wait(), 5)
    await reporter.finish(done=True)
    assert len(supernode.reports) == 1
    last = supernode.reports[0]
    assert last.done and last.piece_digests == {0: "d" * 64}
