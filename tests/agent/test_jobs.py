"""The agent through real processes: jobs put at a real supernode with the operators' token, run by real peer daemons
against a real registry and a real nginx origin; what lands is read off the peers' stores and the files written."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supernode.jobs import FileSpec, ImageSpec, Job
from tests.support.cluster import DamselflyCluster, PeerProcess
from tests.support.fixtures import require_binary
from tests.support.identities import OPERATOR_TOKEN
from tests.support.images import ImageCache, PushedImage, push_image, push_index
from tests.support.jobs import cancel, final, host_id, progress, put, stored, wait_for
from tests.support.nginx import NginxOrigin
from tests.support.registry import RegistryServer

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    require_binary("docker-registry")
    with RegistryServer(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxOrigin]:
    with NginxOrigin(tmp_path_factory.mktemp("nginx")) as origin:
        yield origin


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, nginx: NginxOrigin
) -> Iterator[DamselflyCluster]:
    with DamselflyCluster(
        tmp_path_factory.mktemp("cluster"), upstream_url=registry.url, peers_count=2, operator_token=OPERATOR_TOKEN,
        # File jobs may write below the tests' temporary directories only.
        # A runtime that refuses every image: what a failed runtime pull looks like (tests/agent/test_runtime.py pulls
        # with a real podman).
        config_text=f'[peer]\nfile_job_dirs = "{tmp_path_factory.getbasetemp()}"\n'
        "runtime_pull = \"sh -c 'echo Error: image not known >&2; exit 3' {reference}\"\n\n"
        f'[[file_origin]]\nurl = "{nginx.url}/"\n',
    ) as started:
        yield started


def image_job(job_id: str, peer: PeerProcess, reference: str, **fields: Any) -> Job:
    return Job(job_id, "task-1", host_id(peer), "image", image=ImageSpec(reference), **fields)


@pytest.fixture(scope="module")
def pushed(registry: RegistryServer, image_cache: ImageCache) -> PushedImage:
    return push_image(image_cache.get([1 * MiB, 2 * MiB, 3 * MiB], seed=71), registry.url, "test/agent", "v1")


def test_an_image_job_lands_every_blob_and_a_second_host_has_them_mostly_from_peers(
    cluster: DamselflyCluster, pushed: PushedImage
) -> None:
    first, second = cluster.peers
    put(cluster, image_job("image-first", first, pushed.ref))
    done = final(cluster, "image-first")
    assert done.state == "succeeded", done.error
    assert done.bytes_total == done.bytes_done == pushed.total_blob_bytes
    assert done.digest == pushed.manifest_digest
    assert sorted((b.digest, b.size) for b in done.blobs) == sorted(pushed.blobs)
    for digest, _ in pushed.blobs:
        assert "sha256:" + hashlib.sha256(stored(first, digest).read_bytes()).hexdigest() == digest
    # By the default upstream's name, on the second host: from the first, where it is.
    put(cluster, image_job("image-second", second, "test/agent:v1"))
    again = final(cluster, "image-second")
    assert again.state == "succeeded", again.error
    assert again.bytes_done == pushed.total_blob_bytes
    assert again.from_peers > 0 and again.from_peers >= again.from_upstream
    assert all(stored(second, digest).exists() for digest, _ in pushed.blobs)
    # Put again: already stored, done at once, nothing fetched.
    put(cluster, image_job("image-first-again", first, pushed.ref))
    repeat = final(cluster, "image-first-again")
    assert repeat.state == "succeeded" and repeat.from_upstream == repeat.from_peers == 0
    assert repeat.bytes_done == pushed.total_blob_bytes


def test_of_an_index_only_the_platforms_asked_for_land(
    cluster: DamselflyCluster, registry: RegistryServer, image_cache: ImageCache
) -> None:
    amd = push_image(image_cache.get([1 * MiB], seed=74), registry.url, "test/multi", "amd64")
    arm = push_image(image_cache.get([1 * MiB], architecture="arm64", seed=75), registry.url, "test/multi", "arm64")
    index = push_index(registry.url, "test/multi", "v1", [amd, arm])
    peer = cluster.peers[0]
    put(cluster, Job("index", "task-1", host_id(peer), "image",
                     image=ImageSpec(f"{amd.host}/test/multi:v1", ("linux/arm64",))))
    done = final(cluster, "index")
    assert done.state == "succeeded", done.error
    assert done.digest == index.digest
    assert sorted((b.digest, b.size) for b in done.blobs) == sorted(arm.blobs)
    assert all(stored(peer, digest).exists() for digest, _ in arm.blobs)
    assert not any(stored(peer, digest).exists() for digest, _ in amd.blobs)
    # A platform the index does not list fails the job, saying which.
    put(cluster, Job("index-s390x", "task-1", host_id(peer), "image",
                     image=ImageSpec(f"{amd.host}/test/multi:v1", ("linux/s390x",))))
    missing = final(cluster, "index-s390x")
    assert (missing.state, missing.error) == ("failed", "the image has no platform linux/s390x")


def test_a_dry_run_reports_the_sizes_and_moves_nothing(
    cluster: DamselflyCluster, registry: RegistryServer, image_cache: ImageCache
) -> None:
    image = push_image(image_cache.get([1 * MiB, 1 * MiB], seed=72), registry.url, "test/dry", "v1")
    peer = cluster.peers[0]
    put(cluster, image_job("dry", peer, image.ref, dry_run=True))
    done = final(cluster, "dry")
    assert done.state == "succeeded", done.error
    assert done.bytes_total == image.total_blob_bytes and done.bytes_done == 0
    assert sorted((b.digest, b.size) for b in done.blobs) == sorted(image.blobs)
    assert not any(stored(peer, digest).exists() for digest, _ in image.blobs)


def test_a_jobs_rate_holds_its_fetch_to_that_many_bytes_a_second(
    cluster: DamselflyCluster, registry: RegistryServer, image_cache: ImageCache
) -> None:
    image = push_image(image_cache.get([6 * MiB], seed=75), registry.url, "test/rated", "v1")
    rate = 2_000_000
    put(cluster, image_job("rated", cluster.peers[0], image.ref, rate=rate))
    done = final(cluster, "rated", timeout=60.0)
    assert done.state == "succeeded", done.error
    seconds = done.finished_at - done.started_at
    # The bucket may start with up to a second's worth; never faster than that, and not crawling either.
    assert (image.total_blob_bytes - rate) / rate <= seconds <= 4 * image.total_blob_bytes / rate, seconds


def test_a_cancelled_slow_job_stops_within_seconds(
    cluster: DamselflyCluster, registry: RegistryServer, image_cache: ImageCache
) -> None:
    image = push_image(image_cache.get([8 * MiB], seed=73), registry.url, "test/slow", "v1")
    peer = cluster.peers[1]
    put(cluster, image_job("slow", peer, image.ref, rate=256 * 1024))
    wait_for(cluster, "slow", lambda p: p.state == "running" and p.bytes_done > 0, timeout=30.0)
    began = time.monotonic()
    cancel(cluster, "slow")
    stopped = final(cluster, "slow", timeout=10.0)
    assert stopped.state == "stopped"
    assert time.monotonic() - began < 5.0
    assert stopped.bytes_done < image.total_blob_bytes
    # Put again without a rate, it runs anew (a cancelled job is not a finished one), and fast: its download stopped
    # with the job instead of going on at the job's rate (it would take some 30 s more).
    began = time.monotonic()
    put(cluster, image_job("slow", peer, image.ref))
    again = final(cluster, "slow")
    assert again.state == "succeeded", again.error
    assert time.monotonic() - began < 15.0
    assert all(stored(peer, digest).exists() for digest, _ in image.blobs)


def test_a_runtime_pull_that_fails_fails_the_job_with_the_runtimes_last_line(
    cluster: DamselflyCluster, pushed: PushedImage
) -> None:
    put(cluster, image_job("runtime", cluster.peers[0], pushed.ref, mode="runtime"))
    done = final(cluster, "runtime")
    assert (done.state, done.error) == ("failed", "sh pull exited 3: Error: image not known")


def test_an_unknown_image_fails_with_the_registrys_reason(cluster: DamselflyCluster, pushed: PushedImage) -> None:
    put(cluster, image_job("missing", cluster.peers[0], f"{pushed.host}/test/agent:no-such-tag"))
    done = final(cluster, "missing")
    assert done.state == "failed" and "no manifest test/agent:no-such-tag" in done.error


def test_a_file_job_writes_the_file_atomically_with_its_sha256(
    cluster: DamselflyCluster, nginx: NginxOrigin, tmp_path: Path
) -> None:
    data = bytes(range(256)) * (12 * 1024)  # 3 MiB
    (nginx.root / "tool.bin").write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    target = tmp_path / "tool.bin"
    target.write_bytes(b"the old version")
    peer = cluster.peers[0]
    put(cluster, Job("file", "task-2", host_id(peer), "file", file=FileSpec(f"{nginx.url}/tool.bin", str(target))))
    done = final(cluster, "file")
    assert done.state == "succeeded", done.error
    assert done.digest == digest and done.bytes_total == done.bytes_done == len(data)
    assert target.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["tool.bin"]  # no temporary file left behind
    # With a wrong digest nothing lands, and the old file stays.
    wrong = tmp_path / "wrong.bin"
    spec = FileSpec(f"{nginx.url}/tool.bin", str(wrong), "sha256:" + "0" * 64)
    put(cluster, Job("file-wrong", "task-2", host_id(peer), "file", file=spec))
    failed = final(cluster, "file-wrong")
    assert failed.state == "failed" and "does not match" in failed.error, failed.error
    assert [p.name for p in tmp_path.iterdir()] == ["tool.bin"]
    nowhere = FileSpec(f"{nginx.url}/tool.bin", str(tmp_path / "missing" / "tool.bin"))
    put(cluster, Job("file-nowhere", "task-2", host_id(peer), "file", file=nowhere))
    lost = final(cluster, "file-nowhere")
    assert (lost.state, lost.error) == (
        "failed", f"the directory {tmp_path / 'missing'} of the file's path does not exist on this host"
    )


def test_a_file_job_outside_the_hosts_file_job_dirs_is_refused_and_writes_nothing(
    cluster: DamselflyCluster, nginx: NginxOrigin, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (nginx.root / "cron.bin").write_bytes(b"* * * * * root id\n")
    outside = Path("/var/tmp") / f"damselfly-test-{time.monotonic_ns()}"
    outside.mkdir()
    try:
        peer = cluster.peers[0]
        target = outside / "evil"
        spec = FileSpec(f"{nginx.url}/cron.bin", str(target))
        put(cluster, Job("file-outside", "task-2", host_id(peer), "file", file=spec))
        refused = final(cluster, "file-outside")
        assert refused.state == "failed" and "is not below this host's --file-job-dirs" in refused.error
        # A symbolic link inside an allowed directory does not lead out of it.
        inside = tmp_path_factory.mktemp("links")
        (inside / "escape").symlink_to(outside)
        spec = FileSpec(f"{nginx.url}/cron.bin", str(inside / "escape" / "evil"))
        put(cluster, Job("file-escape", "task-2", host_id(peer), "file", file=spec))
        escaped = final(cluster, "file-escape")
        assert escaped.state == "failed" and "is not below this host's --file-job-dirs" in escaped.error
        assert list(outside.iterdir()) == []
    finally:
        for entry in outside.iterdir():
            entry.unlink()
        outside.rmdir()


def test_a_file_under_no_configured_origin_is_refused(cluster: DamselflyCluster, tmp_path: Path) -> None:
    spec = FileSpec("http://127.0.0.1:9/elsewhere.bin", str(tmp_path / "x"))
    put(cluster, Job("file-refused", "task-2", host_id(cluster.peers[1]), "file", file=spec))
    done = final(cluster, "file-refused")
    assert done.state == "failed" and "[[file_origin]]" in done.error


def test_with_no_agent_the_host_runs_no_job(cluster: DamselflyCluster, pushed: PushedImage) -> None:
    quiet = cluster.add_peer(len(cluster.peers), ["--no-agent"])
    put(cluster, image_job("unserved", quiet, pushed.ref))
    # The agents of the other hosts report within a second; this host never says a word.
    time.sleep(2.0)
    assert progress(cluster, "unserved") is None
    assert not any(stored(quiet, digest).exists() for digest, _ in pushed.blobs)
