"""Passwords: argon2id hashes (argon2-cffi's defaults), and generated ones for the first admin and new users.

Hashing takes tens of milliseconds of CPU by design: it runs in a thread (argon2-cffi releases the GIL), so that a
login never stalls the event loop, which in a supernode also answers the swarms' heartbeats and views.
"""

from __future__ import annotations

import asyncio
import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
MIN_LENGTH = 8
MAX_LENGTH = 1024


class WeakPassword(ValueError):
    pass


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password has at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str, password: str) -> bool:
    return await asyncio.to_thread(_verify, stored, password)


@functools.cache
def _dummy_hash() -> str:
    """The hash of a password nobody has, so a login for an unknown user takes as long as one with a wrong password.
    Made at the first such login, not at import: the CLI imports this module for `generate_password` and should
    not pay a hash for it."""
    return _hasher.hash(secrets.token_urlsafe(16))


async def burn_time(password: str) -> None:
    stored = await asyncio.to_thread(_dummy_hash)
    await verify_password(stored, password)


def generate_password() -> str:
    return secrets.token_urlsafe(18)
