"""Issue [11]: files through the swarm with `damselfly get`, from a real nginx origin, on a real cluster."""

from __future__ import annotations

import hashlib
import os
import pty
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.cluster import CLEAN_ENV, DamselflyCluster
from tests.support.cutting_origin import CuttingOrigin
from tests.support.nginx import NginxOrigin
from tests.support.ports import free_port

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def get(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    return subprocess.run(
        [sys.executable, "-m", "damselfly", "get", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env=env,
    )


def origin_config(*urls: str) -> str:
    return "".join(f'[[file_origin]]\nurl = "{url}/"\n' for url in urls)


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxOrigin]:
    with NginxOrigin(tmp_path_factory.mktemp("nginx"), slow_rate="1m") as origin:
        yield origin


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, nginx: NginxOrigin) -> Iterator[DamselflyCluster]:
    workdir = tmp_path_factory.mktemp("cluster")
    # The registry upstream is never asked here: files only.
    with DamselflyCluster(workdir, upstream_url="http://127.0.0.1:1", peers_count=3,
                          config_text=origin_config(nginx.url)) as started:
        yield started


def test_three_hosts_get_the_same_file_and_nginx_sends_about_one_copy(
    tmp_path: Path, nginx: NginxOrigin, cluster: DamselflyCluster
) -> None:
    data = os.urandom(22 * MiB + 12345)
    (nginx.root / "release.tar").write_bytes(data)
    outs = [tmp_path / f"host{i}" / "release.tar" for i in range(3)]
    for out in outs:
        out.parent.mkdir()
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(
            lambda pair: get(nginx.url + "/release.tar", "-o", str(pair[1]), "--daemon", pair[0].files_url),
            zip(cluster.peers, outs, strict=True),
        ))
    sha256 = hashlib.sha256(data).hexdigest()
    for result, out in zip(results, outs, strict=True):
        assert result.returncode == 0, result.stderr
        assert out.read_bytes() == data
        assert f"sha256:{sha256}" in result.stderr  # no digest given: the file's sha256 is reported
        assert [p.name for p in out.parent.iterdir()] == ["release.tar"]  # no temporary file left
    sent = nginx.sent_bytes("/release.tar")
    assert sent <= 1.1 * len(data), f"nginx sent {sent} bytes for a file of {len(data)}"
    stats = [peer.stats() for peer in cluster.peers]
    assert sum(s["bytes_from_peers"] for s in stats) >= 1.5 * len(data)
    # Fetched again: the host's store answers; the origin is asked only for the file's size and validators.
    again = get(nginx.url + "/release.tar", "-o", str(outs[0]), "--daemon", cluster.peers[0].files_url)
    assert again.returncode == 0, again.stderr
    assert nginx.sent_bytes("/release.tar") == sent


def test_with_the_right_digest_it_lands_with_a_wrong_one_nothing_does(
    tmp_path: Path, nginx: NginxOrigin, cluster: DamselflyCluster
) -> None:
    data = os.urandom(9 * MiB)
    (nginx.root / "tool.bin").write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    right = get(nginx.url + "/tool.bin", "-o", str(tmp_path / "tool.bin"), "--digest", digest,
                "--daemon", cluster.peers[1].files_url)
    assert right.returncode == 0, right.stderr
    assert (tmp_path / "tool.bin").read_bytes() == data
    wrong_dir = tmp_path / "wrong"
    wrong_dir.mkdir()
    wrong = get(nginx.url + "/tool.bin", "-o", str(wrong_dir / "tool.bin"), "--digest", "sha256:" + "0" * 64,
                "--daemon", cluster.peers[2].files_url)
    assert wrong.returncode == 1
    assert "does not match its digest" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    assert list(wrong_dir.iterdir()) == []  # nothing landed, no temporary file left


def test_an_origin_changing_the_file_mid_way_is_an_error_not_a_mixed_file(
    tmp_path: Path, nginx: NginxOrigin, cluster: DamselflyCluster
) -> None:
    path = nginx.root / "slow" / "changing.bin"
    path.write_bytes(b"a" * (3 * MiB))  # 1 MiB/s under /slow/: three seconds on the way
    # Written a while ago: nginx's validators (ETag, Last-Modified) have a resolution of one second, so a rewrite
    # within the second of the first write would change nothing a client can see (docs/files.md).
    os.utime(path, (time.time() - 60, time.time() - 60))

    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def rewrite_in_place() -> None:
        # Once the daemon has probed the file (its HEAD is in nginx's log) and its GET is on the way: the body takes
        # three seconds, so half a second later the origin is mid-way. On a busy machine the GET may start later:
        # then the new file meets the probe's validators (If-Match), which is the same error.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            line.method == "HEAD" and line.path == "/slow/changing.bin" for line in nginx.lines()
        ):
            time.sleep(0.02)
        time.sleep(0.5)
        # The same size, the same inode: nginx goes on sending from the file it opened, now half new.
        with path.open("r+b") as file:
            file.write(b"b" * (3 * MiB))

    writer = threading.Thread(target=rewrite_in_place)
    writer.start()
    result = get(nginx.url + "/slow/changing.bin", "-o", str(out_dir / "changing.bin"),
                 "--daemon", cluster.peers[0].files_url)
    writer.join()
    assert result.returncode == 1, result.stderr
    assert "changed at the origin" in result.stderr
    assert list(out_dir.iterdir()) == []


def test_an_unconfigured_origin_is_refused(tmp_path: Path, cluster: DamselflyCluster) -> None:
    out = tmp_path / "x"
    result = get(f"http://127.0.0.1:{free_port()}/x", "-o", str(out), "--daemon", cluster.peers[0].files_url)
    assert result.returncode == 1
    assert "under no configured file origin" in result.stderr
    assert "[[file_origin]]" in result.stderr
    dots = get(f"{cluster.peers[0].files_url}/../x", "-o", str(out), "--daemon", cluster.peers[0].files_url)
    assert dots.returncode == 1
    assert not out.exists()


def test_without_a_daemon_it_says_how_to_start_one_and_direct_fetches(tmp_path: Path, nginx: NginxOrigin) -> None:
    data = os.urandom(2 * MiB + 7)
    (nginx.root / "direct.bin").write_bytes(data)
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = get(nginx.url + "/direct.bin", "-o", str(tmp_path / "d.bin"), "--daemon", nowhere)
    assert result.returncode == 1
    assert "no Damselfly daemon" in result.stderr and "damselfly peer" in result.stderr and "--direct" in result.stderr
    direct = get(nginx.url + "/direct.bin", "-o", str(tmp_path / "d.bin"), "--direct",
                 "--digest", "sha256:" + hashlib.sha256(data).hexdigest())
    assert direct.returncode == 0, direct.stderr
    assert (tmp_path / "d.bin").read_bytes() == data


def test_standard_output_and_progress_on_a_terminal(
    tmp_path: Path, nginx: NginxOrigin, cluster: DamselflyCluster
) -> None:
    data = os.urandom(6 * MiB)
    (nginx.root / "progress.bin").write_bytes(data)
    out = tmp_path / "progress.bin"
    # On a pty (stderr a terminal): the progress line is drawn and rewritten in place.
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    process = subprocess.Popen(
        [sys.executable, "-m", "damselfly", "get", nginx.url + "/progress.bin", "-o", str(out), "--rate", "3MB",
         "--daemon", cluster.peers[1].files_url],
        stdin=terminal, stdout=terminal, stderr=terminal, cwd=ROOT, env=env,
    )
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    assert process.wait(10) == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert text.count("\r") >= 2, text
    assert "MiB of 6.0 MiB" in text and "from peers" in text and "from the origin" in text
    assert out.read_bytes() == data
    # `-o -`: the bytes on standard output, nothing else there.
    piped = subprocess.run(
        [sys.executable, "-m", "damselfly", "get", nginx.url + "/progress.bin", "-o", "-", "--quiet",
         "--daemon", cluster.peers[2].files_url], capture_output=True, timeout=60, cwd=ROOT, env=env,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == data and piped.stderr == b""


def test_an_origin_cut_mid_body_is_resumed_and_its_headers_go_to_it_only(tmp_path: Path) -> None:
    data = os.urandom(13 * MiB)
    with CuttingOrigin(data, cut_after=5 * MiB + 100) as origin:
        config = origin_config(origin.base_url) + 'headers = { X-Origin-Token = "origin-secret-1" }\n'
        with DamselflyCluster(tmp_path / "cluster", upstream_url="http://127.0.0.1:1", peers_count=1,
                              config_text=config) as single:
            result = get(origin.base_url + "/file.bin", "-o", str(tmp_path / "file.bin"),
                         "--header", "X-Caller-Token: caller-secret-2", "--daemon", single.peers[0].files_url)
            logs = single.peers[0].log_path.read_text() + (tmp_path / "cluster" / "supernode.log").read_text()
        assert result.returncode == 0, result.stderr
        # Both the configured and the caller's header reached the origin, with every request; no log holds them.
        assert all(s.headers.get("X-Origin-Token") == "origin-secret-1" for s in origin.served)
        assert all(s.headers.get("X-Caller-Token") == "caller-secret-2" for s in origin.served)
        assert "secret-1" not in logs and "secret-2" not in logs and "file.bin" in logs
        assert (tmp_path / "file.bin").read_bytes() == data
        gets = [s for s in origin.served if s.method == "GET"]
    assert len(gets) == 2, gets
    # Resumed at the first piece that did not arrive whole (4 MiB pieces), for the same version only.
    assert gets[1].range == f"bytes={4 * MiB}-{len(data) - 1}"
    assert gets[1].if_match == origin.etag
    assert sum(s.sent for s in gets) <= len(data) + 5 * MiB
