"""Several supernodes coordinated through Redis (supernode/directory.py): peers given ONE supernode's address find
all of them; the supernode that owns a swarm is killed mid-pull (SIGKILL) and the swarm moves to another with what
its members hold, so the pull ends with the right bytes and the upstream sends one copy; with Redis killed, pulls
still succeed; through Sentinel, a killed Redis master is replaced and the directory works again."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from supernode.shards import owner_index
from tests.faults.helpers import (
    MiB,
    pull_blob,
    push_blob,
    random_blob,
    sha256_digest,
    supernode_peers,
    supernode_swarms,
    wait_for,
)
from tests.support.cluster import DamselflyCluster, env_with_token
from tests.support.faulty_relay import FaultyRelay
from tests.support.identities import OPERATOR_TOKEN
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess
from tests.support.redis_servers import RedisMissing, Sentinels, SingleRedis
from tests.support.registry import RegistryServer

REPO = "directory/test"
SIZE = 32 * MiB
ROOT = Path(__file__).resolve().parents[2]




def start_supernode(tmp_path: Path, name: str, *redis_args: str) -> tuple[str, ManagedProcess]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        [sys.executable, "-m", "damselfly", "supernode", "--listen", f"127.0.0.1:{port}", "--no-manager",
         "--data-dir", str(tmp_path / name), *redis_args],
        log_path=tmp_path / f"{name}.log", env=env_with_token("", OPERATOR_TOKEN), ready_url=url + "/healthz",
        ready_timeout=30.0, name=name, cwd=ROOT,
    ).start()
    return url, process


def live_set(url: str) -> list[str]:
    response = httpx.get(url + "/api/v1/supernodes", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
                         timeout=5.0, trust_env=False)
    response.raise_for_status()
    found: list[str] = response.json()["supernodes"]
    return found


@pytest.mark.slow
def test_one_address_finds_all_a_killed_owner_moves_its_swarm_and_redis_may_die(
    tmp_path: Path, registry: RegistryServer, redis_server: SingleRedis
) -> None:
    redis = ["--redis", redis_server.server.url]
    others = [start_supernode(tmp_path, f"supernode{index}", *redis) for index in (1, 2)]
    try:
        with FaultyRelay(registry.url, rate=12 * MiB) as relay, DamselflyCluster(
            tmp_path / "cluster", upstream_url=relay.url, peers_count=3, operator_token=OPERATOR_TOKEN,
            supernode_args=redis,
        ) as cluster:
            urls = sorted([cluster.supernode_url, *(url for url, _ in others)])
            processes = {cluster.supernode_url: cluster.supernode, **dict(others)}
            wait_for(lambda: all(live_set(url) == urls for url in urls), 10.0, "every supernode in the directory")
            # Each peer was given the first supernode only, and registered with all three.
            ids = {peer.stats()["peer_id"] for peer in cluster.peers}
            wait_for(lambda: all(supernode_peers(url) == ids for url in urls), 15.0, "peers at every supernode")

            # A blob whose swarm one of the other two owns, so the peers' only given address stays up as well as
            # a blob owned by the first (either way, see below).
            data = random_blob(SIZE, seed=7100)
            digest = push_blob(registry.url, REPO, data)
            owner = urls[owner_index(urls, digest)]
            registry.reset_counts()
            with ThreadPoolExecutor(3) as pool:
                pulls = [pool.submit(pull_blob, peer.mirror_url, REPO, digest) for peer in cluster.peers]
                wait_for(lambda: any(s.digest == digest for s in supernode_swarms(owner)), 10.0, "the swarm")
                wait_for(lambda: sum(p.stats()["bytes_from_upstream"] for p in cluster.peers) >= 8 * MiB, 20.0,
                         "a quarter of the blob fetched")
                killed = processes[owner]
                assert killed is not None
                killed.kill_hard()
                results = [pull.result() for pull in pulls]
            for index, result in enumerate(results):
                assert result.ok_for(digest, SIZE), f"peer {index}: {result.status} {result.error}"
            served = registry.served_bytes(method="GET", path_contains="/blobs/")
            assert served <= SIZE * 1.05, f"the upstream sent {served / SIZE:.2f} copies"
            left = [url for url in urls if url != owner]
            # The dead one's key expired: the directory lists the two alive.
            wait_for(lambda: all(live_set(url) == left for url in left), 10.0, "the dead supernode gone")
            new_owner = left[owner_index(left, digest)]
            assert any(s.digest == digest for s in supernode_swarms(new_owner))

            # Redis killed: the supernodes keep their last live set, and pulls still work, one copy each.
            redis_server.server.kill()
            time.sleep(4.0)  # past every key's time to live
            assert all(live_set(url) == left for url in left)
            second = random_blob(8 * MiB, seed=7101)
            second_digest = push_blob(registry.url, REPO, second)
            registry.reset_counts()
            with ThreadPoolExecutor(3) as pool:
                results = list(pool.map(lambda p: pull_blob(p.mirror_url, REPO, second_digest), cluster.peers))
            assert all(result.ok_for(second_digest, len(second)) for result in results), results
            assert registry.served_bytes(method="GET", path_contains="/blobs/") == len(second)
            assert sha256_digest(second) == second_digest
    finally:
        for _, process in others:
            process.stop()


@pytest.mark.slow
def test_a_supernode_added_while_peers_run_gets_swarms(
    tmp_path: Path, registry: RegistryServer, redis_server: SingleRedis
) -> None:
    redis = ["--redis", redis_server.server.url]
    with DamselflyCluster(
        tmp_path / "cluster", upstream_url=registry.url, peers_count=2, operator_token=OPERATOR_TOKEN,
        supernode_args=redis,
    ) as cluster:
        added_url, added = start_supernode(tmp_path, "added", *redis)
        try:
            urls = sorted([cluster.supernode_url, added_url])
            ids = {peer.stats()["peer_id"] for peer in cluster.peers}
            wait_for(lambda: supernode_peers(added_url) == ids, 15.0, "the peers registered with the new one")
            seed = 7200
            while True:  # a blob the new supernode owns
                data = random_blob(4 * MiB, seed)
                seed += 1
                if urls[owner_index(urls, sha256_digest(data))] == added_url:
                    break
            digest = push_blob(registry.url, REPO, data)
            registry.reset_counts()
            with ThreadPoolExecutor(2) as pool:
                results = list(pool.map(lambda p: pull_blob(p.mirror_url, REPO, digest), cluster.peers))
            assert all(result.ok_for(digest, len(data)) for result in results), results
            assert any(s.digest == digest for s in supernode_swarms(added_url))
            assert not any(s.digest == digest for s in supernode_swarms(cluster.supernode_url))
            assert registry.served_bytes(method="GET", path_contains="/blobs/") == len(data)
        finally:
            added.stop()


@pytest.mark.slow
def test_through_sentinel_a_killed_master_is_replaced_and_the_directory_works_again(tmp_path: Path) -> None:
    try:
        sentinels = Sentinels().start()
    except RedisMissing as exc:
        pytest.skip(str(exc))
    started: list[ManagedProcess] = []
    try:
        args = ["--redis-sentinel", sentinels.addresses, "--redis-master", "damselfly"]
        first, process = start_supernode(tmp_path, "first", *args)
        started.append(process)
        second, process = start_supernode(tmp_path, "second", *args)
        started.append(process)
        wait_for(lambda: live_set(first) == sorted([first, second]), 10.0, "both in the directory")
        old_master = sentinels.master.port
        sentinels.master.kill()
        killed_at = time.monotonic()
        wait_for(lambda: sentinels.master_port() not in (0, old_master), 30.0, "a replica promoted")
        # A supernode started after the failover is found by the first through the new master.
        third, process = start_supernode(tmp_path, "third", *args)
        started.append(process)
        wait_for(lambda: live_set(first) == sorted([first, second, third]), 15.0, "the directory working again")
        # Each supernode reads the directory in rounds of its own (and backs off while Redis is away): the second
        # catches up within a few of them, not at the first's instant.
        wait_for(lambda: live_set(second) == sorted([first, second, third]), 10.0, "the second's directory too")
        assert time.monotonic() - killed_at < 50.0
    finally:
        for process in started:
            process.stop()
        sentinels.stop()
