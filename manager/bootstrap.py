"""The first start: with no user at all, create `admin` with $DAMSELFLY_ADMIN_PASSWORD, or with a generated password
printed once to stderr. Never a default password; never through logging, which may be shipped elsewhere."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import TextIO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from . import audit
from .models import User
from .passwords import check_strength, generate_password, hash_password
from .permissions import Role

ADMIN = "admin"
PASSWORD_ENV = "DAMSELFLY_ADMIN_PASSWORD"


async def ensure_admin(
    sessions: async_sessionmaker[AsyncSession], env: Mapping[str, str] = os.environ, stderr: TextIO = sys.stderr
) -> bool:
    """True if this call created the admin."""
    password = env.get(PASSWORD_ENV, "")
    generated = not password
    if generated:
        password = generate_password()
    else:
        # WeakPassword names the rule; the caller reports it.
        check_strength(password)
    password_hash = await hash_password(password)
    try:
        async with sessions.begin() as session:
            if (await session.execute(select(func.count()).select_from(User))).scalar_one():
                return False
            session.add(User(name=ADMIN, role=Role.ADMIN.value, password_hash=password_hash,
                             created_at=time.time(), disabled=False))
            source = "generated" if generated else f"${PASSWORD_ENV}"
            audit.record(session, audit.Actor("", "first-start", ""), "create_user", ADMIN, audit.OK,
                         f"first start, password from {source}")
    except IntegrityError:
        # Another manager on the same database made it first.
        return False
    if generated:
        print(f"damselfly manager: first start: created user {ADMIN!r} with password {password}\n"
              "damselfly manager: it is shown this once; change it with `PUT /api/v1/me/password`",
              file=stderr, flush=True)
    return True
