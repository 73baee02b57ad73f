"""The console's session cookie and its CSRF tokens.

The cookie holds the session token `POST /api/v1/login` issues (stored only as its hash, manager/principal.py).
A form's CSRF token is derived from it (an HMAC keyed by the session token): one per session, nothing more stored,
and unknowable to a page that cannot read the HttpOnly cookie. The login form, before any session, uses a random
token held in a cookie of its own (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "damselfly_session"
LOGIN_CSRF_COOKIE = "damselfly_login_csrf"
CSRF_FIELD = "csrf"


def csrf_of(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"damselfly-console-csrf", hashlib.sha256).hexdigest()


def csrf_matches(request: Request, sent: str) -> bool:
    session_token = request.cookies.get(SESSION_COOKIE, "")
    if not session_token or not sent:
        return False
    return hmac.compare_digest(csrf_of(session_token), sent)


def login_csrf_matches(request: Request, sent: str) -> bool:
    held = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(held) and bool(sent) and hmac.compare_digest(held, sent)


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def _secure(request: Request) -> bool:
    # uvicorn sets the scheme to https for a TLS connection.
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=_secure(request))


def set_session(response: Response, request: Request, token: str, expires_at: float) -> None:
    set_cookie(response, request, SESSION_COOKIE, token, max(int(expires_at - time.time()), 1))


def clear(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=_secure(request))
