"""The registry wrapper and its byte accounting, against the real docker-registry."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.images import BuiltImage, ImageCache, PushedImage, push_image
from tests.support.ports import free_port
from tests.support.registry import RegistryFactory, RegistryServer
from tests.support.skopeo import SkopeoError, skopeo_copy, verify_dir_blobs


@pytest.fixture
def pushed(registry: RegistryServer, small_image: BuiltImage) -> PushedImage:
    require = push_image(small_image, registry.url, "test/app", "v1")
    return require


def test_push_reads_image_back_from_registry(pushed: PushedImage, small_image: BuiltImage) -> None:
    assert pushed.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert pushed.manifest_digest == small_image.manifest_digest  # skopeo kept it verbatim
    assert (pushed.architecture, pushed.os) == ("amd64", "linux")
    assert len(pushed.layers) == 3
    # gzip cannot shrink random bytes: each blob is a bit larger than its payload.
    for (_, size), payload in zip(pushed.layers, small_image.layer_sizes, strict=True):
        assert payload < size < payload * 1.01 + 4096
    assert pushed.total_blob_bytes == sum(size for _, size in pushed.blobs)


def test_skopeo_pull_and_blob_byte_count(registry: RegistryServer, pushed: PushedImage, tmp_path: Path) -> None:
    registry.reset_counts()
    skopeo_copy(pushed.ref, tmp_path / "out", timeout=60)
    verify_dir_blobs(tmp_path / "out", pushed)

    assert registry.served_bytes() == pushed.total_blob_bytes
    blob_gets = [r for r in registry.requests() if r["method"] == "GET" and "/blobs/" in r["uri"]]
    assert sorted(r["uri"].rsplit("/", 1)[1] for r in blob_gets) == sorted(d for d, _ in pushed.blobs)
    assert all(r["status"] == 200 and not r["error"] for r in blob_gets)
    manifests = [r for r in registry.requests() if "/manifests/" in r["uri"]]
    assert [r["method"] for r in manifests] == ["GET"]  # skopeo sends no HEAD
    assert registry.served_bytes(path_contains="/manifests/") == pushed.manifest_size


def test_reset_counts_forgets_earlier_traffic(registry: RegistryServer, pushed: PushedImage, tmp_path: Path) -> None:
    # push_image read the config blob back, so that GET is in the log.
    assert registry.served_bytes() == pushed.config[1]
    skopeo_copy(pushed.ref, tmp_path / "first", timeout=60)
    assert registry.served_bytes() == pushed.config[1] + pushed.total_blob_bytes
    registry.reset_counts()
    assert registry.requests() == []
    assert registry.served_bytes() == 0


def test_disconnect_mid_body_is_still_counted(registry: RegistryServer, image_cache: ImageCache) -> None:
    # Big enough that socket buffers cannot swallow the whole blob before we hang up.
    big = push_image(image_cache.get([32 << 20]), registry.url, "test/big", "v1")
    ((digest, size),) = big.layers
    registry.reset_counts()
    host, port = registry.addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        request = f"GET /v2/{big.repo}/blobs/{digest} HTTP/1.1\r\nHost: {registry.host}\r\n\r\n"
        sock.sendall(request.encode())
        received = 0
        while received < 100_000:
            chunk = sock.recv(65536)
            assert chunk
            received += len(chunk)
    # Hung up with unread data: the kernel resets the connection mid-body.
    (record,) = registry.requests()
    assert (record["method"], record["status"], record["error"]) == ("GET", 200, False)
    # Counted as what the server handed to its socket: at least what we read
    # (less the response headers), far less than the blob.
    assert received - 1024 <= record["written"] < size // 2


def test_addr_override(tmp_path: Path) -> None:
    host = "127.0.0.2"  # still loopback: all of 127.0.0.0/8 is
    with RegistryServer(tmp_path / "reg", addr=f"{host}:{free_port(host)}") as server:
        assert server.url.startswith(f"http://{host}:")
        assert server.config()["http"]["addr"] == server.addr
        with httpx.Client(trust_env=False) as client:
            assert client.get(f"{server.url}/v2/").status_code == 200


def test_token_auth_passes_through(tmp_path: Path) -> None:
    cert = tmp_path / "token.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=tok",
            "-keyout",
            str(tmp_path / "token.key"),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    token_auth = {
        "realm": "http://127.0.0.1:1/token",
        "service": "damselfly-test",
        "issuer": "damselfly-test-issuer",
        "rootcertbundle": str(cert),
    }
    with RegistryServer(tmp_path / "reg", token_auth=token_auth) as server:
        assert server.config()["auth"] == {"token": token_auth}
        with httpx.Client(trust_env=False) as client:
            response = client.get(f"{server.url}/v2/test/app/manifests/v1")
        assert response.status_code == 401
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="http://127.0.0.1:1/token",service="damselfly-test"')
        assert 'scope="repository:test/app:pull"' in challenge


def test_v2s2_push(registry: RegistryServer, small_image: BuiltImage, tmp_path: Path) -> None:
    pushed = push_image(small_image, registry.url, "test/docker", "v1", fmt="v2s2")
    assert pushed.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    skopeo_copy(pushed.ref, tmp_path / "out", timeout=60)
    verify_dir_blobs(tmp_path / "out", pushed)


def test_basic_auth_refuses_anonymous(
    registry_factory: RegistryFactory, small_image: BuiltImage, tmp_path: Path
) -> None:
    creds = ("alice", "s3cret-pw")
    server = registry_factory(htpasswd=creds)
    with httpx.Client(trust_env=False) as client:
        anonymous = client.get(f"{server.url}/v2/")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        assert client.get(f"{server.url}/v2/", auth=creds).status_code == 200
        assert client.get(f"{server.url}/v2/", auth=("alice", "wrong")).status_code == 401

    pushed = push_image(small_image, server.url, "test/app", "v1", creds=creds)
    with pytest.raises(SkopeoError):
        skopeo_copy(pushed.ref, tmp_path / "anon", timeout=60)
    skopeo_copy(pushed.ref, tmp_path / "authed", creds=creds, timeout=60)
    verify_dir_blobs(tmp_path / "authed", pushed)
    # 401 challenges are missing from the JSON request lines, but the access
    # log has them (the anonymous skopeo attempt and the login round trips).
    assert all(r["status"] != 401 for r in server.requests())
    assert any(r["status"] == 401 and r["useragent"].startswith("skopeo") for r in server.access_log())


def test_proxy_mode_pulls_through(
    registry: RegistryServer,
    registry_factory: RegistryFactory,
    pushed: PushedImage,
    tmp_path: Path,
) -> None:
    cache = registry_factory(proxy_remote_url=registry.url)
    assert cache.config()["proxy"] == {"remoteurl": registry.url}
    registry.reset_counts()
    skopeo_copy(cache.ref(pushed.repo, pushed.tag), tmp_path / "out", timeout=60)
    verify_dir_blobs(tmp_path / "out", pushed)
    assert cache.served_bytes() == pushed.total_blob_bytes
    # The upstream served every blob at least once (2.8.2 may fetch twice).
    assert registry.served_bytes() >= pushed.total_blob_bytes


def test_stop_ends_the_process(tmp_path: Path) -> None:
    server = RegistryServer(tmp_path / "reg").start()
    proc = server.process
    server.stop()
    assert not proc.is_running()
    with pytest.raises(httpx.ConnectError), httpx.Client(trust_env=False) as client:
        client.get(f"{server.url}/v2/", timeout=2)


def test_own_workdir_is_removed() -> None:
    with RegistryServer() as server:
        workdir = server.workdir
        assert (workdir / "registry.log").exists()
    assert not workdir.exists()
