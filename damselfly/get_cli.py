"""`damselfly get URL -o PATH`: a file from a configured origin, through this host's daemon and its swarm.

The daemon's files endpoint (proxy/files.py, docs/files.md) fetches and verifies; this command streams its answer
into a temporary file beside PATH, checks the length and, with `--digest`, the digest once more, fsyncs and
renames: PATH is either the whole right file or untouched. `-o -` writes to standard output (no rename there: a
failure is the exit status). On a terminal a progress line shows bytes, rate, and how much came from peers and
from the origin. Any failure exits 1 with one line saying why. Imports only the standard library and httpx, so
the command starts without the daemons' code (damselfly/entry.py).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

COMMAND = "get"
DEFAULT_DAEMON = "http://127.0.0.1:65003"
CHUNK = 1 << 20
PROGRESS_EVERY = 0.25
# A daemon may take the origin's time to answer the first byte; after that, pieces arrive or the body ends.
TIMEOUT = httpx.Timeout(120.0, connect=5.0)
DIRECT_ATTEMPTS = 5


class GetError(Exception):
    """The one-line reason the file was not written."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        COMMAND, help="fetch a file from a configured origin through the swarm (docs/files.md)"
    )
    parser.add_argument("url", help="the file's URL, under a [[file_origin]] of the daemon")
    parser.add_argument("-o", "--output", required=True, metavar="PATH", help="where to write it ('-': stdout)")
    parser.add_argument("--digest", metavar="sha256:HEX", help="the file's digest: checked before it lands")
    parser.add_argument("--header", action="append", default=[], metavar="'K: V'",
                        help="a header for the origin (repeated); sent to that origin only")
    parser.add_argument("--rate", default="", metavar="RATE", help="limit this download (100Mbit, 50MB)")
    parser.add_argument("--quiet", action="store_true", help="no progress, no summary")
    parser.add_argument("--daemon", default=DEFAULT_DAEMON, metavar="URL",
                        help=f"the host daemon's files endpoint (default {DEFAULT_DAEMON})")
    parser.add_argument("--direct", action="store_true",
                        help="fetch from the origin directly, without a daemon (and without the swarm)")


def run(args: argparse.Namespace) -> int:
    try:
        headers = _headers(args.header)
        digest = _digest(args.digest)
        if args.direct:
            _check_rate(args.rate)
        with _Output(args.output, digest) as output:
            progress = _Progress(enabled=not args.quiet and sys.stderr.isatty())
            if args.direct:
                _direct(args.url, headers, args.rate, output, progress)
                source = "the origin"
            else:
                source = _through_daemon(args, headers, output, progress)
            progress.finish()
            written = output.commit()
        if not args.quiet:
            where = "standard output" if args.output == "-" else args.output
            print(f"damselfly get: {where}: {output.length} bytes, {written} ({source})", file=sys.stderr)
        return 0
    except GetError as exc:
        print(f"damselfly get: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _headers(lines: list[str]) -> dict[str, str]:
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise GetError(f"--header {line[:60]!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _digest(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    algorithm, _, hex_digits = text.partition(":")
    lengths = {"sha256": 64, "sha512": 128}
    if algorithm not in lengths or len(hex_digits) != lengths[algorithm] or not _is_hex(hex_digits):
        raise GetError(f"--digest {text[:80]!r}: expected sha256:<64 lower-case hex digits>")
    return algorithm, hex_digits


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _check_rate(text: str) -> float:
    from peer.ratelimit import parse_rate

    try:
        return parse_rate(text)
    except ValueError as exc:
        raise GetError(f"--rate: {exc}") from None


class _Output:
    """The file being written: a temporary file beside PATH, hashed as it is written, renamed only when right."""

    def __init__(self, path: str, digest: tuple[str, str] | None) -> None:
        self.path = path
        self.digest = digest
        self.hasher = hashlib.new(digest[0] if digest else "sha256")
        self.length = 0
        self.temp: Path | None = None
        self.file: IO[bytes] | None = None

    def __enter__(self) -> _Output:
        if self.path == "-":
            self.file = sys.stdout.buffer
            return self
        target = Path(self.path)
        if target.is_dir():
            raise GetError(f"{self.path} is a directory: name the file to write")
        try:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".damselfly-get", dir=target.parent or ".")
        except OSError as exc:
            raise GetError(f"cannot write in {target.parent}: {exc.strerror}") from None
        self.temp, self.file = Path(name), os.fdopen(fd, "wb")
        return self

    def write(self, chunk: bytes) -> None:
        assert self.file is not None
        try:
            self.file.write(chunk)
        except OSError as exc:
            raise GetError(f"cannot write {self.path}: {exc.strerror}") from None
        self.hasher.update(chunk)
        self.length += len(chunk)

    def restart(self) -> None:
        """Forget what was written (a fetch that starts again from byte 0)."""
        if self.temp is None or self.file is None:
            raise GetError("the transfer broke off and standard output cannot be rewound")
        self.file.seek(0)
        self.file.truncate()
        self.hasher = hashlib.new(self.digest[0] if self.digest else "sha256")
        self.length = 0

    def commit(self) -> str:
        """Check the digest, fsync, rename; returns the digest written."""
        got = self.hasher.hexdigest()
        algorithm = self.digest[0] if self.digest else "sha256"
        if self.digest is not None and got != self.digest[1]:
            raise GetError(f"the file does not match --digest (got {algorithm}:{got}): nothing was written")
        assert self.file is not None
        self.file.flush()
        if self.temp is not None:
            os.fsync(self.file.fileno())
            self.file.close()
            self.temp.replace(self.path)
            self.temp = None
            directory = os.open(Path(self.path).parent or ".", os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        return f"{algorithm}:{got}"

    def __exit__(self, *exc: object) -> None:
        if self.temp is not None:
            with contextlib.suppress(OSError):
                assert self.file is not None
                self.file.close()
            self.temp.unlink(missing_ok=True)


class _Progress:
    """One line on standard error, rewritten in place: bytes, rate, from peers and from the origin."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()
        self.shown = 0.0
        self.size = 0
        self.peers = -1
        self.origin = -1
        self.drawn = False

    def due(self) -> bool:
        return self.enabled and time.monotonic() - self.shown >= PROGRESS_EVERY

    def show(self, have: int) -> None:
        self.shown = time.monotonic()
        elapsed = max(self.shown - self.started, 1e-3)
        share = f", {_bytes(self.peers)} from peers, {_bytes(self.origin)} from the origin" if self.peers >= 0 else ""
        percent = f" {100 * have // self.size:3d}%" if self.size else ""
        line = f"{_bytes(have)} of {_bytes(self.size)}{percent}, {_bytes(int(have / elapsed))}/s{share}"
        sys.stderr.write("\r" + line[:200] + "\x1b[K")
        sys.stderr.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _through_daemon(args: argparse.Namespace, headers: dict[str, str], output: _Output, progress: _Progress) -> str:
    base = args.daemon.rstrip("/")
    body = {"url": args.url, "digest": args.digest or None, "headers": headers, "rate": args.rate or None}
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
        try:
            with client.stream("POST", f"{base}/files", json=body) as response:
                if response.status_code != 200:
                    raise GetError(_reason(response))
                key = response.headers.get("x-damselfly-file-key", "")
                progress.size = int(response.headers.get("content-length", "0"))
                status: Callable[[], dict[str, Any]] = lambda: _status(client, base, key)  # noqa: E731
                try:
                    for chunk in response.iter_raw(CHUNK):
                        output.write(chunk)
                        if progress.due():
                            _share(progress, status)
                            progress.show(output.length)
                except httpx.HTTPError:
                    pass  # cut short: told below, with the daemon's reason
                if output.length != progress.size:
                    reason = status().get("error") or "the daemon ended the file early"
                    raise GetError(f"{args.url}: {reason}")
                if progress.enabled:
                    _share(progress, status)
                    progress.show(output.length)
                final = status()
        except httpx.ConnectError:
            raise GetError(
                f"no Damselfly daemon at {base}: start one (`damselfly peer` or `damselfly up`), name it with "
                "--daemon URL, or fetch from the origin without the swarm with --direct"
            ) from None
        except httpx.HTTPError as exc:
            raise GetError(f"the daemon at {base} failed: {type(exc).__name__}") from None
    if final.get("from_peers") is not None and final.get("state") == "done":
        return f"{_bytes(final['from_peers'])} from peers, {_bytes(final['from_origin'])} from the origin"
    return "through the daemon"


def _share(progress: _Progress, status: Callable[[], dict[str, Any]]) -> None:
    answer = status()
    if "from_peers" in answer:
        progress.peers, progress.origin = int(answer["from_peers"]), int(answer["from_origin"])


def _status(client: httpx.Client, base: str, key: str) -> dict[str, Any]:
    if not key:
        return {}
    try:
        response = client.get(f"{base}/files/{key}", timeout=5.0)
        answer: dict[str, Any] = response.json() if response.status_code == 200 else {}
        return answer
    except (httpx.HTTPError, ValueError):
        return {}


def _reason(response: httpx.Response) -> str:
    response.read()
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error) if error else f"the daemon answered {response.status_code}"


def _direct(url: str, headers: dict[str, str], rate_text: str, output: _Output, progress: _Progress) -> None:
    """From the origin itself: a body that breaks off is resumed with Range and If-Match, so the file is one
    version throughout."""
    rate = _check_rate(rate_text)
    etag = ""
    failures = 0
    started = time.monotonic()
    with httpx.Client(timeout=TIMEOUT, trust_env=False, follow_redirects=True) as client:
        while True:
            asked = dict(headers)
            if output.length:
                asked["Range"] = f"bytes={output.length}-"
                if etag.startswith('"'):
                    asked["If-Match"] = etag
            try:
                with client.stream("GET", url, headers=asked) as response:
                    _direct_status(response, output, url)
                    if not output.length:
                        etag = response.headers.get("etag", "")
                        progress.size = int(response.headers.get("content-length", "0") or 0)
                    for chunk in _throttled(response.iter_raw(CHUNK), rate, started, output):
                        output.write(chunk)
                        if progress.due():
                            progress.show(output.length)
                if not progress.size or output.length >= progress.size:
                    return
                raise httpx.ReadError("the origin ended the file early")
            except httpx.ConnectError as exc:
                raise GetError(f"cannot reach {httpx.URL(url).host}: {exc}") from None
            except httpx.HTTPError:
                failures += 1
                if failures >= DIRECT_ATTEMPTS or not progress.size:
                    raise GetError(f"{url}: the origin kept breaking off") from None
                time.sleep(min(0.2 * 2**failures, 4.0))


def _direct_status(response: httpx.Response, output: _Output, url: str) -> None:
    if response.status_code == 412:
        raise GetError(f"{url}: the file changed at the origin while it was fetched: nothing was written")
    if output.length and response.status_code == 200:
        output.restart()  # the origin ignored Range: start over
    elif response.status_code not in (200, 206):
        raise GetError(f"{url}: the origin answered {response.status_code}")


def _throttled(chunks: Iterator[bytes], rate: float, started: float, output: _Output) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk
        if rate:
            ahead = output.length / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
