"""Fetches one piece from a parent peer and verifies it before anyone sees it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

import httpx

from supernode.api import TOKEN_HEADER

from .upload_api import piece_path


class PieceUnavailable(Exception):
    """The parent does not have the piece (yet); ask someone else."""


class PieceCorrupt(Exception):
    """The parent sent bytes that do not match the piece's digest: it must not be asked again."""


async def fetch_piece(
    http: httpx.AsyncClient,
    parent_url: str,
    digest: str,
    index: int,
    *,
    expected_length: int,
    expected_sha256: str,
    wait: float,
    join_token: str,
    connect_timeout: float,
    read_timeout: float,
    body_slots: asyncio.Semaphore | None = None,
) -> bytes:
    """The verified piece. `body_slots` bounds how many piece bodies the host holds in memory at once; it is
    taken only once the parent answers, never while the parent holds the request waiting for the piece, so
    hosts waiting on each other's pieces in different swarms cannot starve each other of slots."""
    headers = {TOKEN_HEADER: join_token} if join_token else {}
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout, read=wait + read_timeout)
    url = parent_url.rstrip("/") + piece_path(digest, index)
    async with http.stream("GET", url, params={"wait": f"{wait:.1f}"}, headers=headers, timeout=timeout) as resp:
        if resp.status_code == 404:
            raise PieceUnavailable(f"{parent_url} does not have piece {index}")
        if resp.status_code != 200:
            raise PieceUnavailable(f"{parent_url} answered {resp.status_code} for piece {index}")
        if resp.headers.get("content-length") != str(expected_length):
            raise PieceCorrupt(f"{parent_url} sent a piece of the wrong length")
        buffer = bytearray()
        hasher = hashlib.sha256()
        async with body_slots or contextlib.nullcontext():
            async for chunk in resp.aiter_raw():
                buffer += chunk
                if len(buffer) > expected_length:
                    raise PieceCorrupt(f"{parent_url} sent more than the piece")
                hasher.update(chunk)
    if len(buffer) != expected_length:
        raise PieceUnavailable(f"{parent_url} closed the piece early")
    if hasher.hexdigest() != expected_sha256:
        raise PieceCorrupt(f"piece {index} from {parent_url} does not match its digest")
    return bytes(buffer)
