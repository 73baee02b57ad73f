"""File origins: the web servers files come from (`[[file_origin]]`), beside the registries blobs come from.

Only configured origins are reached, so the daemon is no open relay: a URL is served when it lies under an
origin's `url` prefix (same scheme, host and port; its path under the prefix's; no `.`/`..` segments that a server
would resolve out of it). An origin's `headers` (credentials) and the asking client's own headers go to that origin
only: never to peers, never into a log line or an error.

`OriginClient.probe` asks the origin (HEAD) for the file's size and validators (ETag, Last-Modified), which make
the file key (`core.file_key`). `FileSource` is the file by byte range for the download (a `peer.source`
RangeSource): each request carries `If-Match` (a strong ETag) or `If-Unmodified-Since`, and the answer's
validators and total size are checked too, so a file changed at the origin mid-way is an `OriginChanged` error,
never a file mixed of two versions. `OriginClient.confirm` asks again once everything is here, for the change a
server cannot tell within one response (a file rewritten in place while it was being sent).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import httpx

from .client import UpstreamError
from .config import UpstreamConfig
from .raw_http import RawHttpClient, RawHttpError, RawResponse

# Headers the download itself sets (or that would change how the body is framed): a caller may not send them.
RESERVED_HEADERS = frozenset({
    "host", "range", "if-match", "if-none-match", "if-range", "if-unmodified-since", "if-modified-since",
    "content-length", "transfer-encoding", "connection", "accept-encoding", "te", "upgrade", "keep-alive",
    "proxy-authorization", "expect",
})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
MAX_HEADERS = 32


class OriginRefused(Exception):
    """The URL is under no configured file origin (or is not a URL we fetch): a reason for the caller."""


class OriginError(UpstreamError):
    """The origin refused the file, could not be reached, or answered in a way we cannot use."""


class OriginChanged(OriginError):
    """The file at the origin is no longer the version being fetched."""


@dataclass(frozen=True, slots=True)
class FileOrigin:
    """One configured origin: a URL prefix, the headers sent to it, its CA, the query parameters left out of keys."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    ca_file: str = ""
    # Query parameters that differ per request for the same file (signatures, expiry): not part of the file key.
    ignore_query: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # Never the headers: they carry credentials.
        return f"FileOrigin(url={self.url!r}, headers=<{len(self.headers)}>, ca_file={self.ca_file!r})"

    def covers(self, url: str) -> bool:
        mine, theirs = urlsplit(self.url), urlsplit(url)
        if (mine.scheme, mine.hostname, mine.port) != (theirs.scheme, theirs.hostname, theirs.port):
            return False
        prefix = mine.path if mine.path.endswith("/") else mine.path + "/"
        return theirs.path == mine.path.rstrip("/") or theirs.path.startswith(prefix) or prefix == "/"


def check_headers(headers: Mapping[str, str], what: str) -> dict[str, str]:
    """Headers a caller or the configuration asks to send: names that are HTTP tokens, values on one line, none
    that the download sets itself."""
    if len(headers) > MAX_HEADERS:
        raise OriginRefused(f"{what}: at most {MAX_HEADERS} headers")
    checked = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str) or not _TOKEN.match(name):
            raise OriginRefused(f"{what}: {str(name)[:40]!r} is not a header name")
        if "\r" in value or "\n" in value or "\0" in value:
            raise OriginRefused(f"{what}: the value of {name} has a line break")
        if name.lower() in RESERVED_HEADERS:
            raise OriginRefused(f"{what}: {name} is set by the download itself")
        checked[name] = value
    return checked


def check_url(url: str) -> str:
    """An absolute http(s) URL without credentials, fragment, or dot segments; raises OriginRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OriginRefused(f"not a URL: {url[:200]!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OriginRefused(f"only http:// and https:// URLs are fetched, not {url[:200]!r}")
    if parts.username is not None or parts.password is not None:
        raise OriginRefused("credentials in the URL are refused: configure them as headers of its [[file_origin]]")
    if parts.fragment or port == 0:
        raise OriginRefused(f"not a file URL: {url[:200]!r}")
    if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
        raise OriginRefused("a URL with '.' or '..' path segments is refused: it could lead out of an origin's prefix")
    return url


class FileOrigins:
    """The configured origins, and which one a URL belongs to."""

    def __init__(self, origins: Sequence[FileOrigin]) -> None:
        self.origins = list(origins)

    def origin_for(self, url: str) -> FileOrigin:
        check_url(url)
        # The longest prefix wins, so a narrower origin's headers apply under it.
        matching = sorted((o for o in self.origins if o.covers(url)), key=lambda o: len(o.url), reverse=True)
        if not matching:
            parts = urlsplit(url)
            raise OriginRefused(
                f"{parts.scheme}://{parts.netloc}{parts.path[:100]} is under no configured file origin: add a "
                "[[file_origin]] with its url prefix to the daemon's configuration (docs/files.md)"
            )
        return matching[0]


@dataclass(frozen=True, slots=True)
class OriginFile:
    """One version of a file as its origin described it."""

    url: str
    size: int
    etag: str
    last_modified: str

    @property
    def strong_etag(self) -> str:
        return self.etag if self.etag.startswith('"') else ""


class OriginClient:
    """Requests to one origin, with its TLS settings and timeouts; headers are given per call."""

    def __init__(self, origin: FileOrigin, config: UpstreamConfig) -> None:
        self.origin = origin
        self.config = config
        context = ssl.create_default_context()
        if origin.ca_file:
            try:
                context.load_verify_locations(cafile=origin.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise OriginError(f"cannot use the ca_file {origin.ca_file} of {origin.url}") from exc
        timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout)
        self.http = httpx.AsyncClient(timeout=timeout, verify=context, trust_env=False, follow_redirects=False)
        self.raw = RawHttpClient(
            ssl_context=context, connect_timeout=config.connect_timeout, read_timeout=config.read_timeout
        )

    def headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        """The origin's configured headers, with the caller's on top."""
        return {**self.origin.headers, **extra}

    async def probe(self, url: str, extra: Mapping[str, str]) -> OriginFile:
        """The file's size and validators (HEAD), retried on 5xx and lost connections; raises OriginError."""
        response = await self._head(url, extra)
        _refuse_status(response.status_code, response.headers)
        length = response.headers.get("content-length", "")
        if not length.isdigit():
            raise OriginError("the origin did not state the file's size (no Content-Length in its answer to HEAD)")
        return OriginFile(
            url, int(length), response.headers.get("etag", ""), response.headers.get("last-modified", "")
        )

    async def confirm(self, file: OriginFile, extra: Mapping[str, str]) -> None:
        """Raise OriginChanged if the origin no longer describes `file` as it did."""
        now = await self.probe(file.url, extra)
        if (now.size, now.etag, now.last_modified) != (file.size, file.etag, file.last_modified):
            raise OriginChanged(_changed(file, now.etag, now.last_modified, now.size))

    async def _head(self, url: str, extra: Mapping[str, str]) -> httpx.Response:
        attempts = max(1, self.config.attempts)
        for attempt in range(attempts):
            try:
                response = await self.http.head(url, headers=self.headers(extra))
            except httpx.HTTPError as exc:
                if attempt + 1 == attempts:
                    raise OriginError(f"cannot reach the origin {_where(url)}: {type(exc).__name__}") from exc
            else:
                if response.status_code < 500 or attempt + 1 == attempts:
                    return response
            await asyncio.sleep(min(self.config.backoff * 2**attempt, 8.0))
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass(slots=True)
class FileSource:
    """One version of a file at its origin, read by byte range (the download's RangeSource)."""

    client: OriginClient
    file: OriginFile
    extra: Mapping[str, str]
    # Whether any byte was asked of the origin: only then is its answer confirmed at the end (`confirm`).
    used: bool = False

    @asynccontextmanager
    async def open_range(self, start: int, end: int) -> AsyncIterator[RawResponse]:
        self.used = True
        headers = self.client.headers(self.extra)
        headers["Range"] = f"bytes={start}-{end}"
        if self.file.strong_etag:
            headers["If-Match"] = self.file.strong_etag
        elif self.file.last_modified:
            headers["If-Unmodified-Since"] = self.file.last_modified
        sent = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        try:
            raw = await self.client.raw.get(self.file.url, sent)
        except RawHttpError as exc:
            raise OriginError(f"cannot reach the origin {_where(self.file.url)}: {exc}") from exc
        try:
            self._check(raw, start, end)
            if raw.status_code == 200 and start:
                await _discard(raw, start)  # the origin ignored Range: skip to where we want to be
            yield raw
        finally:
            await raw.aclose()

    def _check(self, raw: RawResponse, start: int, end: int) -> None:
        if raw.status_code == 412:
            raise OriginChanged(_changed(self.file, raw.headers.get("etag", "?"), "", None))
        _refuse_status(raw.status_code, raw.headers)
        if raw.status_code not in (200, 206):
            raise OriginError(f"the origin answered {raw.status_code} for a range of the file")
        etag, modified = raw.headers.get("etag", ""), raw.headers.get("last-modified", "")
        if (self.file.etag and etag and etag != self.file.etag) or (
            self.file.last_modified and modified and modified != self.file.last_modified
        ):
            raise OriginChanged(_changed(self.file, etag, modified, None))
        if raw.status_code == 206:
            total = raw.headers.get("content-range", "").rpartition("/")[2]
            if total != str(self.file.size):
                raise OriginChanged(_changed(self.file, etag, modified, int(total) if total.isdigit() else None))
            expected = end - start + 1
        else:
            expected = self.file.size
        if not raw.framed or raw.content_length != expected:
            raise OriginError("the origin's answer is not framed by the Content-Length of the range asked for")


def _refuse_status(status: int, headers: httpx.Headers) -> None:
    if status in (401, 403):
        raise OriginError(f"the origin refused the file ({status}): check the headers or credentials for it")
    if status == 404:
        raise OriginError("the origin has no such file (404)")
    if 300 <= status < 400:
        location = headers.get("location", "")[:200]
        raise OriginError(f"the origin redirected ({status}) to {location!r}: redirects are not followed; "
                          "ask for the final URL, under a configured [[file_origin]]")
    if status >= 400 and status != 412:
        raise OriginError(f"the origin answered {status}")


def _changed(file: OriginFile, etag: str, modified: str, size: int | None) -> str:
    was = file.etag or file.last_modified or f"{file.size} bytes"
    now = etag or modified or (f"{size} bytes" if size is not None else "another version")
    return f"the file changed at the origin while it was fetched (was {was}, now {now}): nothing of it was kept"


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _discard(body: RawResponse, count: int) -> None:
    scratch = memoryview(bytearray(min(count, 1 << 20)))
    while count > 0:
        step = scratch[: min(count, len(scratch))]
        if await body.fill(step) < len(step):
            raise OriginError("the origin ended the file before the range asked for")
        count -= len(step)
