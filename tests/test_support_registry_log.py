"""Parsing of docker-registry 2.8.2 log lines (samples copied from a real run)."""

from __future__ import annotations

from pathlib import Path

from tests.support.registry_log import (
    end_offset,
    parse_access_line,
    parse_line,
    read_access_log,
    read_requests,
    sum_written,
)

COMPLETED = (
    '{"go.version":"go1.19.8","http.request.host":"127.0.0.1:15000","http.request.id":"fe85",'
    '"http.request.method":"GET","http.request.remoteaddr":"127.0.0.1:54116",'
    '"http.request.uri":"/v2/test/app/blobs/sha256:d09e","http.request.useragent":"skopeo/1.9.3",'
    '"http.response.contenttype":"application/octet-stream","http.response.duration":"4.5ms",'
    '"http.response.status":200,"http.response.written":5001624,"level":"info",'
    '"msg":"response completed","time":"2026-11-26T09:26:44.1Z"}'
)
WITH_ERROR = (
    '{"err.code":"blob unknown","err.message":"blob unknown to registry",'
    '"http.request.method":"HEAD","http.request.uri":"/v2/test/app/blobs/sha256:e040",'
    '"http.response.status":404,"http.response.written":157,"level":"error",'
    '"msg":"response completed with error","time":"2026-11-26T09:26:39.6Z"}'
)
STARTUP = '{"level":"info","msg":"listening on 127.0.0.1:15000","time":"2026-11-26T09:26:36Z"}'
AUTH_WARNING = (
    '{"http.request.method":"GET","http.request.uri":"/v2/","level":"warning",'
    '"msg":"error authorizing context: basic authentication challenge"}'
)
ACCESS = '127.0.0.1 - - [26/Nov/2026:09:30:11 +0000] "GET /v2/ HTTP/1.1" 401 87 "" "skopeo/1.9.3"'


def test_completed_line() -> None:
    record = parse_line(COMPLETED)
    assert record is not None
    assert (record["method"], record["status"], record["written"]) == ("GET", 200, 5001624)
    assert record["uri"] == "/v2/test/app/blobs/sha256:d09e"
    assert record["error"] is False


def test_error_line_is_a_request() -> None:
    record = parse_line(WITH_ERROR)
    assert record is not None
    assert (record["method"], record["status"], record["error"]) == ("HEAD", 404, True)


def test_other_lines_are_not_requests() -> None:
    for line in (STARTUP, AUTH_WARNING, ACCESS, "", "{broken json"):
        assert parse_line(line) is None


def test_access_line() -> None:
    record = parse_access_line(ACCESS)
    assert record is not None
    assert (record["method"], record["uri"], record["status"], record["written"]) == (
        "GET",
        "/v2/",
        401,
        87,
    )
    assert record["useragent"] == "skopeo/1.9.3" and record["error"]
    assert parse_access_line(COMPLETED) is None


def test_read_from_offset_skips_partial_tail(tmp_path: Path) -> None:
    log = tmp_path / "registry.log"
    log.write_text(f"{STARTUP}\n{WITH_ERROR}\n{ACCESS}\n")
    offset = end_offset(log)
    with open(log, "a") as f:
        f.write(f"{COMPLETED}\n{ACCESS}\n{COMPLETED[:40]}")  # last line half-written
    assert [r["status"] for r in read_requests(log)] == [404, 200]
    assert [r["status"] for r in read_requests(log, offset)] == [200]
    assert [r["status"] for r in read_access_log(log, offset)] == [401]
    assert end_offset(log) == log.stat().st_size - 40
    assert end_offset(tmp_path / "absent") == 0 and read_requests(tmp_path / "absent") == []


def test_sum_written_filters() -> None:
    records = [r for r in map(parse_line, (COMPLETED, WITH_ERROR, COMPLETED)) if r]
    assert sum_written(records) == 2 * 5001624
    assert sum_written(records, method="HEAD") == 157
    assert sum_written(records, method=None, path_contains=None) == 2 * 5001624 + 157
    assert sum_written(records, status=404, method=None) == 157
    assert sum_written(records, path_contains="/manifests/") == 0
