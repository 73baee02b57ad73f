"""Load: 200 clients at once through one mirror, pulling a mix of blobs it holds and blobs it does not yet have.

What must hold: no errors, every byte right (whole blobs and ranges), each uncached blob fetched from the
upstream once however many clients wait for it, and the daemon's memory bounded: its peak resident set
(VmHWM in /proc/<pid>/status) grows by far less than what 200 clients buffering their blobs would need.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from pathlib import Path

import httpx

from tests.faults.helpers import MiB, check_store, pull_blob, push_blob, random_blob, report
from tests.support.cluster import DamselflyCluster
from tests.support.faulty_relay import FaultyRelay
from tests.support.registry import RegistryServer

REPO = "faults/load"
CLIENTS = 200
CACHED = [2 * MiB + 17 * i for i in range(6)]
UNCACHED = [8 * MiB + 31 * i for i in range(4)]
# Memory may grow with the number of clients (a read chunk of 1 MiB each in flight, measured 1.0-1.25 MiB per
# client), never with the bytes served (847 MiB here): buffering blobs would blow far past this bound.
MEMORY_GROWTH_BOUND = 320 * MiB


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


async def _client(
    http: httpx.AsyncClient, start: asyncio.Event, url: str, byte_range: tuple[int, int] | None, expected: bytes
) -> tuple[bool, str, float]:
    await start.wait()
    started = time.monotonic()
    headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else {}
    want = expected[byte_range[0] : byte_range[1] + 1] if byte_range else expected
    hasher = hashlib.sha256()
    length = 0
    try:
        async with http.stream("GET", url, headers=headers) as response:
            async for chunk in response.aiter_raw():
                hasher.update(chunk)
                length += len(chunk)
            status = response.status_code
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}", time.monotonic() - started
    ok = status == (206 if byte_range else 200) and length == len(want)
    ok = ok and hasher.hexdigest() == hashlib.sha256(want).hexdigest()
    return ok, "" if ok else f"status {status}, {length} bytes", time.monotonic() - started


async def _stampede(
    mirror: str, plan: list[tuple[str, tuple[int, int] | None, bytes]]
) -> list[tuple[bool, str, float]]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=0)
    timeout = httpx.Timeout(120.0, connect=10.0, pool=30.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as http:
        start = asyncio.Event()
        tasks = [asyncio.create_task(_client(http, start, mirror + url, rng, data)) for url, rng, data in plan]
        await asyncio.sleep(0.2)
        start.set()
        return await asyncio.gather(*tasks)


def test_200_concurrent_clients_cached_and_uncached(
    tmp_path: Path, registry: RegistryServer, relay: FaultyRelay
) -> None:
    rng = random.Random(7)
    cached = [random_blob(size, seed=7000 + i) for i, size in enumerate(CACHED)]
    uncached = [random_blob(size, seed=7100 + i) for i, size in enumerate(UNCACHED)]
    cached_digests = [push_blob(registry.url, REPO, data) for data in cached]
    uncached_digests = [push_blob(registry.url, REPO, data) for data in uncached]
    # The upstream's link is limited so that the uncached blobs are still arriving while clients stream them.
    relay.rate = 64 * MiB
    with DamselflyCluster(tmp_path / "cluster", upstream_url=relay.url, peers_count=1) as cluster:
        peer = cluster.peers[0]
        for digest, data in zip(cached_digests, cached, strict=True):
            assert pull_blob(peer.mirror_url, REPO, digest).ok_for(digest, len(data))
        relay.reset_records()
        baseline = _memory(peer.process.pid)
        plan: list[tuple[str, tuple[int, int] | None, bytes]] = []
        for i in range(CLIENTS):
            # Half the clients ask for blobs the mirror holds, half for blobs it does not have yet, spread evenly.
            if i % 2 == 0:
                digest, data = cached_digests[i // 2 % len(cached)], cached[i // 2 % len(cached)]
            else:
                digest, data = uncached_digests[i // 2 % len(uncached)], uncached[i // 2 % len(uncached)]
            byte_range = None
            if i % 5 == 0:  # every fifth client asks for a range, as resuming clients do
                first = rng.randrange(len(data))
                byte_range = (first, rng.randrange(first, len(data)))
            plan.append((f"/v2/{REPO}/blobs/{digest}", byte_range, data))
        started = time.monotonic()
        results = asyncio.run(_stampede(peer.mirror_url, plan))
        elapsed = time.monotonic() - started
        after = _memory(peer.process.pid)
        errors = [error for ok, error, _ in results if not ok]
        assert errors == [], f"{len(errors)} of {CLIENTS} clients failed, e.g. {errors[:5]}"
        upstream_heads = len([r for r in relay.records() if r.method == "HEAD"])
        # Each uncached blob left the upstream once, whatever the number of clients waiting for it.
        for digest, data in zip(uncached_digests, uncached, strict=True):
            assert relay.body_bytes(path_contains=digest) == len(data)
        for digest in cached_digests:
            assert relay.body_bytes(path_contains=digest) == 0
        stored = check_store(peer.data_dir)
        assert all(stored.get(d) == len(b) for d, b in zip(uncached_digests, uncached, strict=True))
        growth = after["VmHWM"] - baseline["VmRSS"]
        served = sum(len(d) for _, r, d in plan if r is None) + sum(r[1] - r[0] + 1 for _, r, _ in plan if r)
        report("200 concurrent clients", clients=CLIENTS, seconds=round(elapsed, 2), errors=len(errors),
               served_mib=round(served / MiB), slowest_s=round(max(t for _, _, t in results), 2),
               rss_before_mib=round(baseline["VmRSS"] / MiB, 1), peak_after_mib=round(after["VmHWM"] / MiB, 1),
               peak_growth_mib=round(growth / MiB, 1), upstream_access_heads=upstream_heads)
        assert growth < MEMORY_GROWTH_BOUND, f"peak memory grew by {growth / MiB:.0f} MiB under load"
