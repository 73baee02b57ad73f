"""Bad input against the registry mirror (the proxy app and its peer, in-process under the product's uvicorn).

Requests are raw bytes over a real socket: malformed names, digests and tags, path traversal (plain, percent-
encoded, doubled), unknown `ns` values and registry hosts in the path, odd methods, garbage and huge headers,
Range headers of every shape, bodies that are huge or cut short. The one configured upstream is a real
docker-registry holding one small image.

What must hold: never a 500, never a traceback in a response; error answers are OCI error JSON; a 200/206 for
the real blob carries exactly its bytes; no request to any host but the configured upstream (every request
the process's httpx clients make is checked); and no file touched outside the data directory, nor any file in
it that is not a blob, a partial blob, or the peer id.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from peer.config import PeerConfig
from peer.service import PeerService
from proxy.app import create_app
from proxy.config import ProxyConfig
from tests.faults.helpers import oci_error_code, push_blob
from tests.faults.servers import OutboundGuard, RawResponse, asgi_server, raw_request
from tests.support.registry import RegistryServer
from upstream.registry import UpstreamRegistry

REPO = "test/app"
BLOB = os.urandom(100_000)
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
# Files the store may create, relative to the data directory.
STORE_FILE = re.compile(
    r"^(peer-id|peer-secret|blobs/sha(256|512)/[0-9a-f]+|partial/sha(256|512)-[0-9a-f]+\.(data|state|tmp))$"
)


@dataclass
class Mirror:
    port: int
    root: Path
    data_dir: Path
    guard: OutboundGuard
    canary: Path
    upstream: str


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and skip not in path.parents:
            stat = path.stat()
            found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    root = tmp_path_factory.mktemp("mirror")
    with RegistryServer(root / "registry") as registry:
        push_blob(registry.url, REPO, BLOB)
        config_blob = b'{"architecture":"amd64","os":"linux"}'
        config_digest = push_blob(registry.url, REPO, config_blob)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                       "size": len(config_blob)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": BLOB_DIGEST,
                        "size": len(BLOB)}],
        }).encode()
        put = httpx.put(f"{registry.url}/v2/{REPO}/manifests/v1", content=manifest, timeout=10.0, trust_env=False,
                        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert put.status_code == 201, put.text
        canary = root / "outside" / "secret.txt"
        canary.parent.mkdir()
        canary.write_text("must never be read or touched\n")
        data_dir = root / "data"
        name = registry.host
        proxy_config = ProxyConfig(
            listen_host="127.0.0.1", listen_port=0, default_registry=name,
            registries={name: UpstreamRegistry(name=name, url=registry.url)},
        )
        guard = OutboundGuard(allowed={registry.host})
        peer = PeerService(PeerConfig(data_dir=data_dir, upload_host="127.0.0.1", upload_port=0))
        with guard.installed(), asgi_server(create_app(proxy_config, peer), cleanup=peer.close) as port:
            yield Mirror(port, root, data_dir, guard, canary, registry.url)


digests = st.one_of(
    st.just(BLOB_DIGEST),
    st.just("sha256:" + "0" * 64),
    st.just("sha512:" + "a" * 128),
    st.text(max_size=90),
    st.sampled_from([
        "sha256:", "sha256:" + "g" * 64, "SHA256:" + "a" * 64, "sha256:../../../outside/secret.txt",
        "sha256:..%2f..%2foutside", "md5:d41d8cd98f00b204e9800998ecf8427e", BLOB_DIGEST.upper(), BLOB_DIGEST + "/..",
        "sha256:" + "a" * 65,
    ]),
)
names = st.one_of(
    st.just(REPO),
    st.just("library/app"),
    st.text(max_size=60),
    st.sampled_from([
        "..", "../..", "test/../../outside", "%2e%2e/%2e%2e", "test/%2e%2e/app", "test//app", "/test/app",
        "A/B", "a" * 300, "evil.example.com/test/app", "127.0.0.1:1/test/app", "localhost/x", "[::1]:5000/x",
        "registry-1.docker.io/library/alpine", "test/app\x00", "..;/x",
    ]),
)
ns_values = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["evil.example.com", "127.0.0.1:1", "localhost", "[::1]:5000", "docker.io", "",
                     "169.254.169.254", "10.0.0.1:5000", "registry.example.test"]),
)
ranges = st.one_of(
    st.none(),
    st.builds(lambda a, b: f"bytes={a}-{b}", st.integers(0, 200_000), st.integers(0, 200_000)),
    st.builds(lambda a: f"bytes={a}-", st.integers(0, 200_000)),
    st.builds(lambda a: f"bytes=-{a}", st.integers(0, 200_000)),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    st.sampled_from(["bytes=0-0,5-6", "bytes=99999999999999999999-", "bytes=-0", "items=0-5", "bytes=5-1",
                     "bytes= 1-2", "bytes=" + "9" * 400 + "-"]),
)
# Printable latin-1, as header values arrive on the wire (ASGI decodes them as latin-1).
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, blacklist_categories=["Cc"]), max_size=60)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, str | None, str, bool]:
    # Mostly reads with well-formed parts, so that the deep paths (access check, store, swarm, ranges) are fuzzed
    # too, not only the validation at the door.
    method = draw(st.sampled_from(["GET"] * 12 + ["HEAD"] * 3 + ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    name = draw(st.one_of(st.just(REPO), names))
    kind = draw(st.sampled_from(["blobs"] * 6 + ["manifests"] * 3 + ["tags/list", "blobs/uploads", "referrers"]))
    if kind == "manifests":
        # Not the blob's digest: the registry answers a manifest request for a blob with a 500, which the mirror
        # rightly retries with backoff (3.5 s) before its 502, and a handful of those would dominate the run.
        reference = draw(st.one_of(st.just("v1"), st.just("latest"), digests.filter(lambda d: d != BLOB_DIGEST),
                                   st.text(max_size=20)))
    else:
        reference = draw(st.one_of(st.just(BLOB_DIGEST), digests))
    encode = draw(st.sampled_from(["raw", "raw", "raw", "quote", "double"]))
    parts = [name, kind, reference]
    if encode == "quote":
        parts = [quote(p, safe="/:") for p in parts]
    elif encode == "double":
        parts = [quote(quote(p, safe=""), safe="") for p in parts]
    target = "/v2/" + "/".join(parts)
    ns = draw(st.one_of(st.none(), ns_values))
    if ns is not None:
        target += "?ns=" + quote(ns, safe="")
    if draw(st.integers(0, 20)) == 0:
        target = draw(st.sampled_from(["/v2/../../outside/secret.txt", "/../outside", "*", "//v2//", "/v2",
                                       "/v2/_catalog", "/metrics/../v2/", "/healthz?ns=evil.example.com"]))
    byte_range = draw(st.one_of(st.none(), ranges))
    headers = [("Host", draw(st.sampled_from(["mirror"] * 6 + ["evil.example.com", "127.0.0.1:1", ""])))]
    if byte_range is not None:
        headers.append(("Range", byte_range))
    for _ in range(draw(st.integers(0, 3))):
        headers.append((draw(st.sampled_from(["Accept", "Authorization", "X-Forwarded-For", "If-None-Match",
                                               "Transfer-Encoding", "X-Junk"])), draw(header_text)))
    if draw(st.integers(0, 15)) == 0:
        headers.append(("X-Huge", "a" * draw(st.integers(8_000, 100_000))))
    body = b""
    if method in ("POST", "PUT", "PATCH") or draw(st.integers(0, 10)) == 0:
        body = draw(st.one_of(st.binary(max_size=200), st.just(b"x" * (1 << 20))))
    declared = len(body)
    truncated = bool(body) and draw(st.booleans())
    if truncated:
        declared += draw(st.integers(1, 1 << 30))  # the body is cut short: the client hangs up half-way
    headers += [("Content-Length", str(declared)), ("Connection", "close")]
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("utf-8", errors="surrogateescape") + body, byte_range, method, truncated


def _check(response: RawResponse | None, request: bytes, byte_range: str | None, method: str) -> None:
    if response is None:
        return  # the request never completed: nothing to answer
    shown = request[:300]
    assert not response.leaks(), f"traceback in the answer to {shown!r}:\n{response.raw[:2000]!r}"
    assert response.status != 500, f"500 for {shown!r}: {response.body[:500]!r}"
    assert response.status < 500 or response.status in (502, 503, 507), f"{response.status} for {shown!r}"
    json_type = response.headers.get("content-type", "").startswith("application/json")
    if response.status >= 400 and method != "HEAD" and json_type and response.complete:
        assert isinstance(json.loads(response.body)["errors"], list), response.body[:300]
    if response.status in (200, 206) and response.headers.get("docker-content-digest") == BLOB_DIGEST \
            and method == "GET" and response.complete:
        if response.status == 200:
            assert response.body == BLOB
        else:
            match = re.match(r"^bytes (\d+)-(\d+)/(\d+)$", response.headers["content-range"])
            assert match is not None and int(match.group(3)) == len(BLOB), response.headers
            assert response.body == BLOB[int(match.group(1)) : int(match.group(2)) + 1]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=requests())
def test_malformed_requests_never_crash_or_escape_the_mirror(
    mirror: Mirror, case: tuple[bytes, str | None, str, bool]
) -> None:
    request, byte_range, method, truncated = case
    before = _snapshot(mirror.root, mirror.data_dir)
    # A client that cuts its body short hangs up (half-close); others wait for the answer, as real clients do.
    response = raw_request(mirror.port, request, half_close=truncated)
    event(f"{response.status} {oci_error_code(response.body)}" if response else "no answer")
    _check(response, request, byte_range, method)
    # Nothing anywhere else was written, created or removed (the registry's own storage aside).
    after = _snapshot(mirror.root, mirror.data_dir)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p) and "/registry/" not in p}
    assert changed == set(), f"{changed} touched by {request[:300]!r}"
    # Whatever the store holds is store files.
    for path in mirror.data_dir.rglob("*"):
        if path.is_file():
            assert STORE_FILE.match(str(path.relative_to(mirror.data_dir))), f"{path} in the store"
    assert mirror.guard.refused == [], f"requests to hosts not configured: {mirror.guard.refused[:5]}"
    assert mirror.canary.read_text() == "must never be read or touched\n"


@settings(max_examples=200, deadline=None)
@given(byte_range=ranges)
def test_any_range_header_on_a_real_blob_gives_its_bytes_or_416(mirror: Mirror, byte_range: str | None) -> None:
    header = f"Range: {byte_range}\r\n" if byte_range is not None else ""
    request = f"GET /v2/{REPO}/blobs/{BLOB_DIGEST} HTTP/1.1\r\nHost: m\r\n{header}Connection: close\r\n\r\n"
    response = raw_request(mirror.port, request.encode(), half_close=False)
    assert response is not None
    event(str(response.status))
    assert response.status in (200, 206, 416), (byte_range, response.status, response.body[:200])
    if response.status == 416:
        assert oci_error_code(response.body) == "RANGE_NOT_SATISFIABLE"
        assert response.headers["content-range"] == f"bytes */{len(BLOB)}"
    _check(response, request.encode(), byte_range, "GET")


def test_the_real_blob_and_manifest_are_served_through_the_fuzzed_mirror(mirror: Mirror) -> None:
    """The fixture really serves: the fuzz above is not just bouncing off a broken mirror."""
    request = f"GET /v2/{REPO}/blobs/{BLOB_DIGEST} HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n".encode()
    response = raw_request(mirror.port, request, half_close=False)
    assert response is not None and response.status == 200 and response.body == BLOB
    request = (f"GET /v2/{REPO}/blobs/{BLOB_DIGEST} HTTP/1.1\r\nHost: m\r\nRange: bytes=10-19\r\n"
               "Connection: close\r\n\r\n").encode()
    response = raw_request(mirror.port, request, half_close=False)
    assert response is not None and response.status == 206 and response.body == BLOB[10:20]
    request = (f"GET /v2/{REPO}/manifests/v1 HTTP/1.1\r\nHost: m\r\n"
               "Accept: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n").encode()
    response = raw_request(mirror.port, request, half_close=False)
    assert response is not None and response.status == 200 and BLOB_DIGEST.encode() in response.body
    assert mirror.guard.seen, "the guard saw no upstream request: it is not in the path"
    assert all(mirror.upstream in seen for seen in mirror.guard.seen)
    # The blob's body came through the raw client, which the guard watches too.
    assert any(seen.startswith("GET ") and f"/blobs/{BLOB_DIGEST}" in seen for seen in mirror.guard.seen)


@pytest.mark.parametrize("header", ["Authorization: Bearer \xff", "Accept: \xff\xfe", "If-None-Match: \xff"])
def test_non_ascii_header_values_are_a_client_error_not_a_500(mirror: Mirror, header: str) -> None:
    path = f"/v2/{REPO}/blobs/{BLOB_DIGEST}" if header.startswith("Authorization") else f"/v2/{REPO}/manifests/v1"
    request = f"GET {path} HTTP/1.1\r\nHost: m\r\n{header}\r\nConnection: close\r\n\r\n".encode("latin-1")
    response = raw_request(mirror.port, request, half_close=False)
    assert response is not None
    assert response.status < 500, response.body[:300]
