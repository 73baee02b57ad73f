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


class CountingSupernode:
    """Answers every report with how many other members still need pieces, as the supernode does."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting
        self.reports: list[ReportRequest] = []

    async def report(self, digest: str, request: ReportRequest) -> int:
        self.reports.append(request)
        return self.waiting


async def reports_while_digesting(waiting: int, seconds: float = 0.6) -> CountingSupernode:
    supernode = CountingSupernode(waiting)
    client: Any = supernode
    reporter = SwarmReporter(client, "sha256:" + "b" * 64, "source")
    reporter.start()
    for index in range(int(seconds / 0.01)):
        reporter.piece(index, f"{index:064x}")
        await asyncio.sleep(0.01)
    await reporter.finish(done=True)
    return supernode


async def test_a_source_with_children_reports_digests_at_once_and_alone_seldom() -> None:
    watched = await reports_while_digesting(waiting=3)
    alone = await reports_while_digesting(waiting=0)
    # With children waiting, a report at least every URGENT_INTERVAL (50 ms) over 0.6 s; alone, the first report
    # tells the source nobody waits, and the rest wait for ALONE_INTERVAL (1 s) or the last word.
    assert len(watched.reports) >= 8
    assert len(alone.reports) <= 3
    for supernode in (watched, alone):
        delivered = {i for report in supernode.reports for i in report.piece_digests}
        assert delivered == set(range(60)), "every digest reaches the supernode either way"
        assert supernode.reports[-1].done
