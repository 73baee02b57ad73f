"""Who a request is: the bearer of a session or an API token, with the permissions it holds."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .api_errors import unauthenticated
from .models import ApiToken, LoginSession, User
from .permissions import Permission, parse_scopes, permissions_of
from .tokens import API_PREFIX, SESSION_PREFIX, token_hash


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    name: str
    role: str
    permissions: frozenset[Permission]
    # "session" or "token"
    kind: str
    # The session's or the API token's id.
    credential_id: int
    expires_at: float
    # The clusters the role holds in; empty: all (manager/scopes.py).
    clusters: frozenset[str] = frozenset()

    @property
    def via(self) -> str:
        return f"{self.kind}:{self.credential_id}"


def bearer(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated()
    return token.strip()


async def authenticate(session: AsyncSession, token: str, now: float | None = None) -> Principal:
    """The principal `token` stands for; 401 for one unknown, expired, revoked, or of a disabled user."""
    now = time.time() if now is None else now
    digest = token_hash(token)
    if token.startswith(SESSION_PREFIX):
        login = (await session.execute(select(LoginSession).where(LoginSession.token_hash == digest))).scalar()
        if login is None or login.revoked or login.expires_at <= now:
            raise unauthenticated("the session is unknown, expired or ended: log in again")
        user = await session.get(User, login.user_id)
        if user is None or user.disabled:
            raise unauthenticated("the session's user is disabled or gone")
        return Principal(user.id, user.name, user.role, permissions_of(user.role), "session", login.id,
                         login.expires_at, frozenset(user.clusters or ()))
    if token.startswith(API_PREFIX):
        api = (await session.execute(select(ApiToken).where(ApiToken.token_hash == digest))).scalar()
        if api is None or api.expires_at <= now:
            raise unauthenticated("the API token is unknown or expired")
        user = await session.get(User, api.user_id)
        if user is None or user.disabled:
            raise unauthenticated("the token's user is disabled or gone")
        api.last_used_at = now
        # A token never holds more than its user's role gives today, whatever it was created with.
        held = permissions_of(user.role) & parse_scopes(list(api.scopes))
        return Principal(user.id, user.name, user.role, held, "token", api.id, api.expires_at,
                         frozenset(user.clusters or ()))
    raise unauthenticated("not a Damselfly token")
