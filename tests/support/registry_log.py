"""Parse the JSON log of docker-registry 2.8.2 into per-request records.

What the registry actually logs (checked by experiment on Debian 12,
docker-registry 2.8.2+ds1, go1.19.8, ``log: {formatter: json}``):

- One JSON object per line for every finished request, emitted by the app's
  request logger when the handler returns. ``msg`` is ``"response completed"``
  (level ``info``) or ``"response completed with error"`` (level ``error``,
  for 4xx/5xx answers built by the registry, with ``err.code``,
  ``err.message`` and ``err.detail``).
- Request fields: ``http.request.method``, ``http.request.uri`` (path plus
  query string, JSON-escaped, e.g. ``\\u0026`` for ``&``),
  ``http.request.host``, ``http.request.remoteaddr``, ``http.request.id``,
  ``http.request.useragent``, ``http.request.contenttype`` (only when sent).
- Response fields: ``http.response.status`` (int), ``http.response.written``
  (int, body bytes), ``http.response.duration`` (a Go duration string such as
  ``"4.54ms"``), ``http.response.contenttype``.
- Other lines share the file: startup lines (no ``http.*`` fields) and, with
  the access log enabled, Apache combined-format lines on stdout such as
  ``127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"``. Only
  JSON lines whose ``msg`` starts with ``response completed`` are requests.

Byte-count semantics found by experiment:

- ``written`` is what the handler handed to the socket, not what the client
  read. A client that reads 1 MB of a 50 MB blob and closes (FIN or RST)
  still produces a normal ``"response completed"``, status 200 line, with
  ``written`` = bytes accepted before the write failed (1.2 to 1.4 MB in the
  experiment: the client's read plus the socket buffers). So a disconnect is
  counted, as an upper bound of the bytes delivered, and is not flagged.
- A range request logs status 206 and only the range's length.
- HEAD logs ``written`` = 0 for a blob that exists, but a HEAD that fails
  (404) logs the length of the JSON error body (157) although no body is
  sent. Filter on method when counting.
- Authentication failures get no ``response completed`` line at all: a 401
  challenge (htpasswd or token auth) is logged only as a ``warning`` line
  ``"error authorizing context: ..."`` and in the access log. So the JSON
  records cover every request that passed auth; ``read_access_log`` parses
  the combined-format lines, which cover every request including the 401s
  (their byte count agreed with ``written`` in every case we compared).
- The line appears only after the response finished, so a request still in
  flight is not counted yet, and a client may see its last byte slightly
  before the line is written: callers wait for the log to go quiet.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, TypedDict

COMPLETED_PREFIX = "response completed"


class RequestRecord(TypedDict):
    """One finished request as logged by the registry."""

    method: str
    uri: str
    status: int
    written: int
    error: bool
    """True for ``"response completed with error"`` lines."""
    useragent: str
    time: str


def parse_line(line: str) -> RequestRecord | None:
    """Return the request in ``line``, or None if it is not a request line."""
    line = line.strip()
    if not line.startswith("{"):
        return None  # access-log (combined format) or partial line
    try:
        entry: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError:
        return None
    msg = entry.get("msg")
    if not isinstance(msg, str) or not msg.startswith(COMPLETED_PREFIX):
        return None
    if "http.request.method" not in entry:
        return None
    return RequestRecord(
        method=str(entry["http.request.method"]),
        uri=str(entry.get("http.request.uri", "")),
        status=int(entry.get("http.response.status", 0)),
        written=int(entry.get("http.response.written", 0)),
        error=msg != COMPLETED_PREFIX,
        useragent=str(entry.get("http.request.useragent", "")),
        time=str(entry.get("time", "")),
    )


# 127.0.0.1 - user [26/Nov/2026:09:26:37 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
_ACCESS_LINE = re.compile(
    r'^\S+ \S+ \S+ \[(?P<time>[^\]]*)\] "(?P<method>[A-Z]+) (?P<uri>\S+) [^"]*" '
    r'(?P<status>\d{3}) (?P<written>\d+|-) "[^"]*" "(?P<useragent>[^"]*)"'
)


def parse_access_line(line: str) -> RequestRecord | None:
    """Return the request in an access-log (combined format) line, else None."""
    match = _ACCESS_LINE.match(line.strip())
    if match is None:
        return None
    status = int(match["status"])
    written = match["written"]
    return RequestRecord(
        method=match["method"],
        uri=match["uri"],
        status=status,
        written=0 if written == "-" else int(written),
        error=status >= 400,
        useragent=match["useragent"],
        time=match["time"],
    )


def _complete_lines(path: Path, offset: int) -> list[str]:
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            data = log.read()
    except FileNotFoundError:
        return []
    # Ignore a trailing line still being written: it is parsed next time.
    complete = data[: data.rfind(b"\n") + 1]
    return [raw.decode("utf-8", errors="replace") for raw in complete.splitlines()]


def read_requests(path: Path, offset: int = 0) -> list[RequestRecord]:
    """Requests from the JSON lines of ``path`` from byte ``offset`` on."""
    return [r for r in map(parse_line, _complete_lines(path, offset)) if r is not None]


def read_access_log(path: Path, offset: int = 0) -> list[RequestRecord]:
    """Requests from the access-log lines of ``path`` (includes auth failures)."""
    return [r for r in map(parse_access_line, _complete_lines(path, offset)) if r is not None]


def end_offset(path: Path) -> int:
    """Byte offset just past the last complete line of ``path`` (0 if absent)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    return data.rfind(b"\n") + 1


def sum_written(
    records: list[RequestRecord],
    method: str | None = "GET",
    path_contains: str | None = "/blobs/",
    status: int | None = None,
) -> int:
    """Sum ``written`` over records matching method, URI substring and status.

    ``None`` for a filter means "any". Error answers are included: they are
    bytes the registry really sent (except on HEAD, see module docstring).
    """
    return sum(
        r["written"]
        for r in records
        if (method is None or r["method"] == method)
        and (path_contains is None or path_contains in r["uri"])
        and (status is None or r["status"] == status)
    )
