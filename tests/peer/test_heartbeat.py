"""The peer heartbeats at the interval its supernode asks for, not at a pace of its own."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from peer.config import PeerConfig
from peer.service import DEFAULT_HEARTBEAT_INTERVAL, PeerService, _bounded_interval
from supernode.config import SchedulerConfig, SupernodeConfig
from supernode.server import create_app
from tests.faults.servers import asgi_server


class CountingHeartbeats:
    """Wraps the supernode app and records when each heartbeat arrives."""

    def __init__(self, interval: float) -> None:
        self.app = create_app(SupernodeConfig(scheduler=SchedulerConfig(heartbeat_interval=interval)))
        self.beats: list[float] = []

    async def __call__(self, scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] == "http" and scope["path"].endswith("/heartbeat"):
            self.beats.append(time.monotonic())
        await self.app(scope, receive, send)  # type: ignore[arg-type]


@pytest.mark.parametrize("interval", [0.2, 1.0])
async def test_the_peer_heartbeats_at_the_supernodes_interval(tmp_path: Path, interval: float) -> None:
    counting = CountingHeartbeats(interval)
    with asgi_server(counting) as port:  # type: ignore[arg-type]
        config = PeerConfig(data_dir=tmp_path, supernode_url=f"http://127.0.0.1:{port}", upload_host="127.0.0.1")
        peer = PeerService(config)
        await peer.start()
        try:
            assert peer.heartbeat_interval == interval
            await asyncio.sleep(2.1)
        finally:
            await peer.close()
    gaps = [later - earlier for earlier, later in zip(counting.beats, counting.beats[1:], strict=False)]
    # The old loop slept a literal 2 s whatever the supernode said: one beat at most in 2.1 s.
    assert len(counting.beats) >= int(2.1 / interval) - 1
    assert gaps and all(interval * 0.8 <= gap <= interval * 2.5 for gap in gaps), gaps


@pytest.mark.parametrize(
    ("asked", "used"), [(0.0, DEFAULT_HEARTBEAT_INTERVAL), (float("nan"), DEFAULT_HEARTBEAT_INTERVAL), (-1.0, 2.0),
                        (0.01, 0.1), (3600.0, 60.0), (5.0, 5.0)]
)
def test_an_unreasonable_interval_is_bounded(asked: float, used: float) -> None:
    assert _bounded_interval(asked) == used
