"""The registry API a client sees, over HTTP against a real Damselfly host and a real upstream.

Manifests (OCI index and Docker manifest list passed through byte for byte, verified by digest), blobs with
HEAD and Range, and every error on /v2 paths as OCI error JSON with the status clients act on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.clients.conftest import UpstreamImages
from tests.support.images import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    ImageCache,
    push_image,
    push_index,
)
from tests.support.mirror_host import MirrorHost, Upstream
from tests.support.registry import RegistryServer
from tests.support.skopeo import unique_registry_name

ACCEPT = [("Accept", media_type) for media_type in MANIFEST_ACCEPT]
NAME = unique_registry_name("api")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamImages) -> Iterator[MirrorHost]:
    # `localhost:*` is admitted without configuration; the upstream is configured only under a made-up name.
    host = MirrorHost(
        tmp_path_factory.mktemp("api-mirror"), [Upstream(NAME, upstream.registry.url)], allow=["localhost:*"]
    )
    with host:
        yield host


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=60) as client:
        yield client


def test_ping(mirror: MirrorHost, http: httpx.Client) -> None:
    for path in ("/v2/", "/v2"):
        ping = http.get(mirror.mirror_url + path)
        assert ping.status_code == 200
        assert ping.headers["docker-distribution-api-version"] == "registry/2.0"


def test_an_oci_index_and_its_children_pass_through(
    mirror: MirrorHost, http: httpx.Client, upstream: UpstreamImages
) -> None:
    base = f"{mirror.mirror_url}/v2/{NAME}/test/multi/manifests"
    index = http.get(f"{base}/v1", headers=ACCEPT)
    assert index.status_code == 200
    assert index.content == upstream.index.index_bytes
    assert index.headers["content-type"] == OCI_INDEX
    assert index.headers["docker-content-digest"] == upstream.index.digest
    by_digest = http.get(f"{base}/{upstream.index.digest}", headers=ACCEPT)
    assert by_digest.content == upstream.index.index_bytes
    child = upstream.arm64
    head = http.head(f"{base}/{child.manifest_digest}", headers=ACCEPT)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(child.manifest_size)
    assert head.headers["docker-content-digest"] == child.manifest_digest
    assert http.get(f"{base}/{child.manifest_digest}", headers=ACCEPT).content == child.manifest_bytes


def test_a_docker_manifest_list_passes_through(
    mirror: MirrorHost, http: httpx.Client, upstream: UpstreamImages, image_cache: ImageCache
) -> None:
    url = upstream.registry.url
    images = [
        push_image(image_cache.get((4096,)), url, "test/list", "amd64", "v2s2"),
        push_image(image_cache.get((4096,), architecture="arm64"), url, "test/list", "arm64", "v2s2"),
    ]
    assert all(image.media_type == DOCKER_MANIFEST for image in images)
    pushed = push_index(url, "test/list", "v1", images, media_type=DOCKER_MANIFEST_LIST)
    answer = http.get(f"{mirror.mirror_url}/v2/{NAME}/test/list/manifests/v1", headers=ACCEPT)
    assert answer.status_code == 200
    assert answer.content == pushed.index_bytes
    assert answer.headers["content-type"] == DOCKER_MANIFEST_LIST
    assert answer.headers["docker-content-digest"] == pushed.digest


def test_blobs_head_and_ranges(mirror: MirrorHost, http: httpx.Client, upstream: UpstreamImages) -> None:
    digest, size = upstream.app.layers[0]
    url = f"{mirror.mirror_url}/v2/{NAME}/test/app/blobs/{digest}"
    whole = http.get(f"{upstream.registry.url}/v2/test/app/blobs/{digest}").content
    head = http.head(url)
    assert (head.status_code, head.headers["content-length"], head.headers["docker-content-digest"]) == (
        200,
        str(size),
        digest,
    )
    first = http.get(url, headers={"Range": "bytes=0-9"})
    assert (first.status_code, first.headers["content-range"], first.content) == (
        206,
        f"bytes 0-9/{size}",
        whole[:10],
    )
    suffix = http.get(url, headers={"Range": "bytes=-10"})
    assert (suffix.status_code, suffix.content) == (206, whole[-10:])
    open_ended = http.get(url, headers={"Range": f"bytes={size - 5}-"})
    assert (open_ended.status_code, open_ended.content) == (206, whole[-5:])
    beyond = http.get(url, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"
    assert beyond.json()["errors"][0]["code"] == "RANGE_NOT_SATISFIABLE"
    # Several ranges or a backwards one: ignored as RFC 9110 allows; the whole blob.
    for ignored in ("bytes=0-1,5-6", "bytes=9-2", "items=0-1"):
        answer = http.get(url, headers={"Range": ignored})
        assert answer.status_code == 200
        assert hashlib.sha256(answer.content).hexdigest() == digest.removeprefix("sha256:")


ZERO = "sha256:" + "0" * 64
ERRORS = [
    # method, path, status, OCI code
    ("GET", f"/v2/{NAME}/test/app/manifests/nope", 404, "MANIFEST_UNKNOWN"),
    ("GET", f"/v2/{NAME}/test/app/manifests/{ZERO}", 404, "MANIFEST_UNKNOWN"),
    ("GET", f"/v2/{NAME}/test/app/blobs/{ZERO}", 404, "BLOB_UNKNOWN"),
    ("GET", f"/v2/{NAME}/test/nothing-here/blobs/{ZERO}", 404, "BLOB_UNKNOWN"),
    ("GET", f"/v2/{NAME}/Test/App/manifests/v1", 400, "NAME_INVALID"),
    ("GET", f"/v2/{NAME}/test/a..b/manifests/v1", 400, "NAME_INVALID"),
    ("GET", f"/v2/{NAME}/{'a' * 256}/manifests/v1", 400, "NAME_INVALID"),
    ("GET", f"/v2/{NAME}/test/app/blobs/sha256:xyz", 400, "DIGEST_INVALID"),
    ("GET", f"/v2/{NAME}/test/app/blobs/md5:{'0' * 32}", 400, "DIGEST_INVALID"),
    ("GET", f"/v2/{NAME}/test/app/blobs/sha256:{'0' * 63}", 400, "DIGEST_INVALID"),
    # A reference that cannot exist is an unknown manifest (the conformance suite's answer), not an invalid one.
    ("GET", f"/v2/{NAME}/test/app/manifests/-bad", 404, "MANIFEST_UNKNOWN"),
    ("GET", f"/v2/{NAME}/test/app/no-such-route", 404, "NAME_UNKNOWN"),
    ("PUT", f"/v2/{NAME}/test/app/manifests/v1", 405, "UNSUPPORTED"),
    ("POST", f"/v2/{NAME}/test/app/blobs/uploads/", 405, "UNSUPPORTED"),
    ("DELETE", f"/v2/{NAME}/test/app/blobs/{ZERO}", 405, "UNSUPPORTED"),
    ("POST", "/v2/", 405, "UNSUPPORTED"),
    ("GET", "/v2/?ns=evil.example.test", 403, "DENIED"),
    # No open relay: registries neither configured nor admitted by an allow pattern are refused.
    ("GET", "/v2/evil.example.test/test/app/manifests/v1", 403, "DENIED"),
    ("GET", "/v2/test/app/manifests/v1?ns=evil.example.test", 403, "DENIED"),
    ("GET", "/v2/test/app/manifests/v1?ns=169.254.169.254", 403, "DENIED"),
    ("GET", "/v2/test/app/manifests/v1?ns=http://127.0.0.1:1/x", 403, "DENIED"),
    ("GET", "/v2/test/app/manifests/v1?ns=docker.io", 403, "DENIED"),
]


# Ids without the path: it holds a random registry name, and pytest-xdist needs every worker to collect the same ids.
@pytest.mark.parametrize(
    ("method", "path", "status", "code"), ERRORS, ids=[f"{i}-{m}-{s}-{c}" for i, (m, _, s, c) in enumerate(ERRORS)]
)
def test_errors_are_oci_json(
    mirror: MirrorHost, http: httpx.Client, method: str, path: str, status: int, code: str
) -> None:
    answer = http.request(method, mirror.mirror_url + path, headers=ACCEPT)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["errors"][0]["code"] == code


def test_the_upstream_itself_is_not_reachable_by_its_address(
    mirror: MirrorHost, http: httpx.Client, upstream: UpstreamImages
) -> None:
    """Configured by name only: its host:port, in `ns` or in the path, is just another unknown registry."""
    for answer in (
        http.get(f"{mirror.mirror_url}/v2/test/app/manifests/v1", params={"ns": upstream.registry.host}),
        http.get(f"{mirror.mirror_url}/v2/{upstream.registry.host}/test/app/manifests/v1"),
    ):
        assert answer.status_code == 403
        assert answer.json()["errors"][0]["code"] == "DENIED"


def test_an_allow_pattern_admits_an_unconfigured_registry(
    mirror: MirrorHost, http: httpx.Client, upstream: UpstreamImages
) -> None:
    # Admitted as https://localhost:PORT; the upstream speaks plain HTTP there, so the TLS handshake fails:
    # a gateway error (not 403) proves the request was routed, and nothing left the machine.
    port = upstream.registry.host.rpartition(":")[2]
    answer = http.get(f"{mirror.mirror_url}/v2/test/app/manifests/v1", params={"ns": f"localhost:{port}"})
    assert answer.status_code == 502
    assert answer.json()["errors"][0]["code"] == "UPSTREAM_FAILED"


def test_manifests_that_do_not_match_their_digest_are_refused(tmp_path: Path, image_cache: ImageCache) -> None:
    """An upstream whose storage was tampered with serves a manifest that does not hash to its digest."""
    with RegistryServer(tmp_path / "tampered") as registry:
        image = push_image(image_cache.get((4096,)), registry.url, "test/app", "v1")
        hex_digest = image.manifest_digest.removeprefix("sha256:")
        data = registry.storage_dir / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"
        data.write_bytes(data.read_bytes() + b"\n")  # still valid JSON, no longer the same bytes
        with httpx.Client(trust_env=False, timeout=30) as http:
            served = http.get(f"{registry.url}/v2/test/app/manifests/{image.manifest_digest}", headers=ACCEPT)
            assert served.content == image.manifest_bytes + b"\n", "the registry no longer serves tampered bytes"
            with MirrorHost(tmp_path / "mirror", [Upstream("tampered.example.test", registry.url)]) as mirror:
                for reference in (image.manifest_digest, "v1"):
                    answer = http.get(
                        f"{mirror.mirror_url}/v2/tampered.example.test/test/app/manifests/{reference}", headers=ACCEPT
                    )
                    assert answer.status_code == 502
                    assert answer.json()["errors"][0]["code"] == "DIGEST_INVALID"
