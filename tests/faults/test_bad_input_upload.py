"""Bad input against the upload server (the raw asyncio piece server), over a real socket.

Malformed request lines, methods and versions; piece paths with traversal, bad digests and indexes, odd `wait`
values; missing, wrong and duplicated join tokens; oversized and garbage headers; bodies (which the piece
protocol does not take), declared huge or cut short; several requests in one write. What must hold: only the
answers of the protocol (200, 400, 401, 404, 405), never a traceback, a 200 only for a real piece asked with
the right token and then exactly its bytes, nothing outside the data directory ever read out, and the server
still answering afterwards.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.digest import Digest
from peer.config import PeerConfig
from peer.service import PeerService
from tests.faults.servers import LoopThread, RawResponse, raw_request

TOKEN = "piece-token"
PIECE = 4 << 20
BLOB = os.urandom(2 * PIECE + 12345)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
SECRET = b"the canary outside the data directory\n"


@dataclass
class UploadTarget:
    port: int
    data_dir: Path
    canary: Path


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UploadTarget]:
    root = tmp_path_factory.mktemp("upload")
    canary = root / "outside" / "secret"
    canary.parent.mkdir()
    canary.write_bytes(SECRET)
    data_dir = root / "data"
    loop = LoopThread()
    peer = PeerService(PeerConfig(data_dir=data_dir, upload_host="127.0.0.1", upload_port=0, join_token=TOKEN))
    peer.store.complete_path(Digest.parse(DIGEST)).write_bytes(BLOB)
    try:
        loop.run(peer.start())
        yield UploadTarget(peer.upload_port, data_dir, canary)
    finally:
        loop.run(peer.close())
        loop.stop()


def _piece(index: int) -> bytes:
    return BLOB[index * PIECE : (index + 1) * PIECE]


digests = st.one_of(
    st.just(DIGEST),
    st.just("sha256:" + "0" * 64),
    st.text(max_size=80),
    st.sampled_from(["sha256:../../../outside/secret", "..", "sha256:" + "a" * 63, DIGEST.upper(),
                     "sha512:" + "b" * 128, "sha256:%2e%2e", DIGEST + "/../" + DIGEST]),
)
indexes = st.one_of(st.integers(-3, 5).map(str), st.text(max_size=12),
                    st.sampled_from(["00", "0000000001", "1e1", "\uff11", "9" * 30, "0/..", "2/"]))  # fullwidth 1
waits = st.one_of(st.none(), st.floats(allow_nan=True).map(str), st.text(max_size=10),
                  st.sampled_from(["0", "0.1", "-1", "inf", "nan", "1e309"]))
tokens = st.one_of(
    st.none(), st.just(TOKEN), st.just(TOKEN), st.sampled_from(["", "wrong", TOKEN + " ", TOKEN.upper()])
)
methods = st.sampled_from(["GET"] * 6 + ["HEAD", "POST", "PUT", "DELETE", "get", "CONNECT", "GET\x00"])
printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    digest, index, wait = draw(digests), draw(indexes), draw(waits)
    if draw(st.booleans()):
        digest = quote(digest, safe=":")
    target = f"/pieces/{digest}/{index}" + (f"?wait={quote(wait)}" if wait is not None else "")
    if draw(st.integers(0, 10)) == 0:
        target = draw(st.sampled_from(["/healthz", "/", "*", "/pieces/", "/pieces", "/../outside/secret",
                                       "http://evil.example.com/pieces/x/0", ""]))
    method = draw(methods)
    version = draw(st.sampled_from(["HTTP/1.1"] * 8 + ["HTTP/1.0", "HTTP/2", "HTTP/1.1 extra", ""]))
    lines = [f"{method} {target} {version}".rstrip(), "Host: peer"]
    token = draw(tokens)
    if token is not None:
        lines.append(f"X-Damselfly-Token: {token}")
        if draw(st.integers(0, 8)) == 0:
            token = draw(st.sampled_from([TOKEN, "wrong"]))
            lines.append(f"x-damselfly-token: {token}")  # sent twice: the last one counts
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(st.sampled_from([
            f"X-Junk: {draw(printable)}", "no colon here", ": empty name", "Connection: close",
            "Connection: keep-alive",
            f"Content-Length: {draw(st.sampled_from(['0', '5', '10000000000', '-1', 'abc']))}",
            "Transfer-Encoding: chunked", "X-Big: " + "b" * draw(st.integers(1, 20_000)),
        ])))
    body = draw(st.sampled_from([b"", b"", b"hello", b"0\r\n\r\n", b"x" * 70_000]))
    head = "\r\n".join(lines).encode("utf-8", errors="surrogateescape")
    end = draw(st.sampled_from([b"\r\n\r\n"] * 8 + [b"\r\n", b""]))  # a head cut short, with no end
    request = head + end + body
    if draw(st.integers(0, 10)) == 0:
        request += f"GET /pieces/{DIGEST}/0 HTTP/1.1\r\nX-Damselfly-Token: {TOKEN}\r\n\r\n".encode()  # pipelined
    valid = (
        method in ("GET", "HEAD") and version.startswith("HTTP/1.") and " " not in version
        # Header values lose surrounding whitespace (RFC 9110 OWS), so "token " is the token.
        and target.startswith(f"/pieces/{DIGEST}/") and (token or "").strip() == TOKEN and index.isdigit()
    )
    return request, {"method": method, "index": index, "valid": valid}


def _check(response: RawResponse | None, request: bytes, facts: dict[str, object]) -> None:
    if response is None:
        return  # the request was never complete (head cut short): the server hung up without answering
    shown = request[:300]
    assert not response.leaks(), f"traceback in the answer to {shown!r}:\n{response.raw[:2000]!r}"
    assert response.status in (200, 400, 401, 404, 405), f"{response.status} for {shown!r}"
    assert SECRET not in response.raw
    if response.status == 200 and response.headers.get("content-type") == "application/octet-stream":
        # Only a real piece, asked properly, is ever handed out, and it is exactly that piece.
        assert facts["valid"], f"a piece was served for {shown!r}"
        index = int(str(facts["index"]))
        assert int(response.headers["content-length"]) == len(_piece(index))
        if facts["method"] == "GET" and response.complete:
            assert response.body == _piece(index)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=requests())
def test_malformed_piece_requests_get_protocol_answers_only(
    upload: UploadTarget, case: tuple[bytes, dict[str, object]]
) -> None:
    request, facts = case
    response = raw_request(upload.port, request, timeout=10.0)
    event(f"{response.status}" if response else "no answer")
    _check(response, request, facts)
    healthy = httpx.get(f"http://127.0.0.1:{upload.port}/healthz", timeout=5.0, trust_env=False)
    assert healthy.status_code == 200
    assert upload.canary.read_bytes() == SECRET


def test_the_fuzzed_server_serves_real_pieces(upload: UploadTarget) -> None:
    for index in range(3):
        request = f"GET /pieces/{DIGEST}/{index} HTTP/1.1\r\nX-Damselfly-Token: {TOKEN}\r\n\r\n".encode()
        response = raw_request(upload.port, request)
        assert response is not None and response.status == 200 and response.body == _piece(index)
    request = f"GET /pieces/{DIGEST}/3 HTTP/1.1\r\nX-Damselfly-Token: {TOKEN}\r\n\r\n".encode()
    beyond = raw_request(upload.port, request)
    assert beyond is not None and beyond.status == 404


# Ids named, not made of DIGEST (random): pytest-xdist needs every worker to collect the same ids.
@pytest.mark.parametrize(
    "target", [f"/pieces/{DIGEST}/0", "/pieces/sha256:bad/0", f"/pieces/{DIGEST}/9"],
    ids=["wrong-token", "bad-digest", "beyond-the-end"],
)
def test_answers_to_head_have_no_body(upload: UploadTarget, target: str) -> None:
    token = "wrong" if target.endswith("/0") else TOKEN
    request = f"HEAD {target} HTTP/1.1\r\nX-Damselfly-Token: {token}\r\nConnection: close\r\n\r\n".encode()
    response = raw_request(upload.port, request)
    assert response is not None and response.status in (400, 401, 404)
    assert response.raw.endswith(b"\r\n\r\n"), response.raw[-200:]
