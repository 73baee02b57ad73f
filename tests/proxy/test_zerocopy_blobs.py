"""Warm blobs (complete in the peer's store) go out with sendfile: the real daemon, the real docker-registry.

`bytes_served_zerocopy` in the peer's /stats counts what left through the zero-copy path, so each test knows
which path served it. Over TLS the scope does not offer the extension and the same bytes are streamed.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest

from tests.faults.helpers import MiB, push_blob, random_blob, wait_for
from tests.support.cluster import DamselflyCluster, PeerProcess
from tests.support.mirror_host import MirrorHost, Upstream
from tests.support.registry import RegistryServer
from tests.support.skopeo import unique_registry_name
from tests.support.tls import TestCA

REPO = "zerocopy/blob"
SIZE = 24 * MiB + 12345  # several pieces, and not a multiple of any page or piece size


@pytest.fixture
def blob(registry: RegistryServer) -> tuple[str, bytes]:
    data = random_blob(SIZE, seed=4242)
    return push_blob(registry.url, REPO, data), data


@pytest.fixture
def peer(tmp_path: Path, registry: RegistryServer) -> Iterator[PeerProcess]:
    with DamselflyCluster(tmp_path / "cluster", upstream_url=registry.url, peers_count=1) as cluster:
        yield cluster.peers[0]


def warm_up(mirror_url: str, data_dir: Path, digest: str, verify: ssl.SSLContext | bool = True) -> None:
    """A cold pull through the mirror, then wait until the blob has landed complete in the store."""
    response = httpx.get(f"{mirror_url}/v2/{REPO}/blobs/{digest}", timeout=60, trust_env=False, verify=verify)
    assert response.status_code == 200
    landed = data_dir / "blobs" / "sha256" / digest.split(":")[1]
    wait_for(landed.exists, 30, "the blob to land in the store")


def zerocopy_bytes(peer: PeerProcess) -> int:
    return int(peer.stats()["bytes_served_zerocopy"])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_warm_blob_its_ranges_and_head_are_served_zero_copy(peer: PeerProcess, blob: tuple[str, bytes]) -> None:
    digest, data = blob
    url = f"{peer.mirror_url}/v2/{REPO}/blobs/{digest}"
    warm_up(peer.mirror_url, peer.data_dir, digest)
    # The cold pull came through the download, not from a complete file.
    assert zerocopy_bytes(peer) == 0
    with httpx.Client(timeout=60, trust_env=False) as client:
        whole = client.get(url)
        assert whole.status_code == 200
        assert whole.headers["content-length"] == str(SIZE)
        assert whole.headers["docker-content-digest"] == digest
        assert sha256(whole.content) == digest
        assert zerocopy_bytes(peer) == SIZE

        ranges = {
            "bytes=0-0": (0, 0),  # the first byte
            "bytes=5000000-9999999": (5000000, 9999999),  # the middle
            f"bytes={SIZE - 1}-": (SIZE - 1, SIZE - 1),  # the last byte
            "bytes=-70000": (SIZE - 70000, SIZE - 1),  # a suffix
        }
        for header, (first, last) in ranges.items():
            ranged = client.get(url, headers={"Range": header})
            assert ranged.status_code == 206, header
            assert ranged.headers["content-range"] == f"bytes {first}-{last}/{SIZE}", header
            assert ranged.headers["content-length"] == str(last - first + 1), header
            assert ranged.content == data[first : last + 1], header
        range_bytes = sum(last - first + 1 for first, last in ranges.values())
        assert zerocopy_bytes(peer) == SIZE + range_bytes

        head = client.head(url)
        assert head.status_code == 200
        assert head.headers["content-length"] == str(SIZE)
        assert head.headers["docker-content-digest"] == digest
        assert head.content == b""
        assert zerocopy_bytes(peer) == SIZE + range_bytes


def test_requests_one_after_another_and_pipelined_on_one_connection_all_complete(
    peer: PeerProcess, blob: tuple[str, bytes]
) -> None:
    digest, data = blob
    path = f"/v2/{REPO}/blobs/{digest}"
    warm_up(peer.mirror_url, peer.data_dir, digest)

    # One after another: http.client keeps the socket only while the server keeps the connection alive.
    conn = http.client.HTTPConnection("127.0.0.1", peer.mirror_port, timeout=60)
    try:
        conn.request("GET", path)
        first = conn.getresponse()
        assert first.status == 200
        assert sha256(first.read()) == digest
        sock = conn.sock
        assert sock is not None
        conn.request("GET", path, headers={"Range": "bytes=100-199"})
        second = conn.getresponse()
        assert second.status == 206
        assert second.read() == data[100:200]
        assert conn.sock is sock
    finally:
        conn.close()

    # Pipelined: the second request waits in uvicorn's queue until the first response (sent with sendfile) ends.
    with socket.create_connection(("127.0.0.1", peer.mirror_port), timeout=60) as sock, sock.makefile("rb") as reader:
        request = f"GET {path} HTTP/1.1\r\nHost: mirror\r\n"
        sock.sendall(f"{request}\r\n{request}Range: bytes=-10\r\n\r\n".encode())
        status, headers, body = read_response(reader)
        assert (status, sha256(body)) == (200, digest)
        assert "close" not in headers.get("connection", "")
        status, headers, body = read_response(reader)
        assert (status, body) == (206, data[-10:])
    assert zerocopy_bytes(peer) == 2 * SIZE + 100 + 10


def test_a_client_that_hangs_up_mid_body_leaves_the_peer_healthy(peer: PeerProcess, blob: tuple[str, bytes]) -> None:
    digest, _ = blob
    path = f"/v2/{REPO}/blobs/{digest}"
    warm_up(peer.mirror_url, peer.data_dir, digest)
    blob_file = str((peer.data_dir / "blobs" / "sha256" / digest.split(":")[1]).resolve())

    for _ in range(3):
        with socket.socket() as sock:
            # A small receive buffer (set before connecting, so the window stays small): the body cannot all sit in
            # socket buffers, so the server is still sending when the client goes.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.settimeout(30)
            sock.connect(("127.0.0.1", peer.mirror_port))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: mirror\r\n\r\n".encode())
            received = 0
            while received < MiB:
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection early"
                received += len(chunk)
            # Linger 0: the close resets the connection, as a killed client's would.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    # The responses ended: the peer no longer holds the blob open (a stuck send would keep it open).
    wait_for(lambda: blob_file not in open_files(peer.process.pid), 10, "the peer to close the blob")
    # What went out is counted, not what was asked for.
    assert MiB * 3 <= zerocopy_bytes(peer) < 3 * SIZE
    with httpx.Client(timeout=60, trust_env=False) as client:
        again = client.get(peer.mirror_url + path)
    assert again.status_code == 200
    assert sha256(again.content) == digest
    log = peer.log_path.read_text()
    assert "Traceback" not in log
    assert "Exception in ASGI application" not in log


def test_over_tls_the_extension_is_not_offered_and_the_bytes_are_streamed(
    tmp_path: Path, registry: RegistryServer, blob: tuple[str, bytes]
) -> None:
    digest, data = blob
    ca = TestCA.create(tmp_path / "ca")
    name = unique_registry_name("zerocopy-tls")
    upstreams = [Upstream(name, registry.url)]
    with MirrorHost(tmp_path / "mirror", upstreams, tls=ca.issue(tmp_path / "cert"), ca_file=ca.cert_path) as mirror:
        verify = ssl.create_default_context(cafile=str(ca.cert_path))
        url = f"{mirror.mirror_url}/v2/{REPO}/blobs/{digest}"
        warm_up(mirror.mirror_url, mirror.workdir / "data", digest, verify)
        served_before = mirror.stats()["bytes_served_local"]
        with httpx.Client(timeout=60, trust_env=False, verify=verify) as client:
            whole = client.get(url)
            ranged = client.get(url, headers={"Range": "bytes=1000-2999"})
        assert whole.status_code == 200
        assert sha256(whole.content) == digest
        assert ranged.status_code == 206
        assert ranged.headers["content-range"] == f"bytes 1000-2999/{SIZE}"
        assert ranged.content == data[1000:3000]
        stats = mirror.stats()
        assert stats["bytes_served_local"] - served_before == SIZE + 2000
        assert stats["bytes_served_zerocopy"] == 0
        assert "Traceback" not in mirror.log_tail()


def read_response(reader: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body, read from a buffered socket file."""
    status = int(reader.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := reader.readline().decode("latin-1").strip()) != "":
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers["content-length"]))
    return status, headers, body


def open_files(pid: int) -> set[str]:
    found = set()
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found.add(os.readlink(entry))
        except OSError:
            continue  # closed since the listing
    return found
