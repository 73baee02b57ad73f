"""Logging in and out of the console: the API's login and logout handlers (their rate limit, their audit), with the
session token kept in an HttpOnly cookie rather than handed to a script."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .actions import BAD_CSRF
from .cookies import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    clear,
    csrf_matches,
    login_csrf_matches,
    new_login_csrf,
    set_cookie,
    set_session,
)
from .forms import read_form
from .web import Console

LOGIN_CSRF_AGE = 3600


def _next(request: Request, sent: str) -> str:
    """Where to go once logged in: a console page, never elsewhere (no open redirect)."""
    if sent.startswith("/console/") and "//" not in sent and "\\" not in sent:
        return sent
    return "/console/"


def _login_page(console: Console, request: Request, error: str = "", status: int = 200) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_csrf()
    response = console.render(request, "login.html", status, csrf=token, error=error,
                              next=_next(request, request.query_params.get("next", "")))
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, LOGIN_CSRF_AGE)
    return response


async def login_page(console: Console, request: Request) -> Response:
    if await console.viewer(request) is not None:
        return RedirectResponse("/console/", 303)
    return _login_page(console, request)


async def login(console: Console, request: Request) -> Response:
    form = await read_form(request, console.platform.config.max_body)
    early = None if login_csrf_matches(request, form.get(CSRF_FIELD)) else BAD_CSRF
    outcome = await console.call(request, "login", {"username": form.get("username"),
                                                    "password": form.get("password")}, early)
    if not outcome.ok:
        response = _login_page(console, request, outcome.message, outcome.status)
        # Whatever session the browser held is not this user's: a failed login leaves none.
        clear(response, request, SESSION_COOKIE)
        return response
    response = RedirectResponse(_next(request, form.get("next")), 303)
    set_session(response, request, outcome.data["token"], float(outcome.data["expires_at"]))
    clear(response, request, LOGIN_CSRF_COOKIE)
    return response


async def logout(console: Console, request: Request) -> Response:
    form = await read_form(request, console.platform.config.max_body)
    early = None if csrf_matches(request, form.get(CSRF_FIELD)) else BAD_CSRF
    outcome = await console.call(request, "logout", {}, early)
    if outcome.status == 403:
        return RedirectResponse("/console/", 303)
    response = RedirectResponse("/console/login", 303)
    clear(response, request, SESSION_COOKIE)
    return response
