"""The console's forms (POST): each checks its CSRF token, puts its fields in the shape of the API's body, and calls
the API's handler, which checks the permission, writes, and audits, allowed, refused or failed, as for the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..api_errors import ApiError, invalid
from . import pages
from .cookies import CSRF_FIELD, csrf_matches
from .forms import Form, flag, labels, read_form, words
from .web import Console, Notes, Outcome, to_login

BAD_CSRF = ApiError(403, "forbidden", "the form's CSRF token is missing or wrong: reload the page and try again")


def _none(form: Form) -> dict[str, Any]:
    return {}


def _cluster(form: Form) -> dict[str, Any]:
    return {"name": form.get("name").strip(), "description": form.get("description"),
            "labels": labels(form.get("labels")), "cidrs": words(form.get("cidrs")),
            "hostnames": words(form.get("hostnames"))}


def _user(form: Form) -> dict[str, Any]:
    body: dict[str, Any] = {"name": form.get("name").strip(), "role": form.get("role"),
                            "password": form.get("password")}
    # Comma-separated; empty: the role holds everywhere (manager/scopes.py).
    clusters = [name.strip() for name in form.get("clusters").split(",") if name.strip()]
    if clusters:
        body["clusters"] = clusters
    return body


def _user_change(form: Form) -> dict[str, Any]:
    if "disabled" in form:
        return {"disabled": flag(form.get("disabled"))}
    return {"role": form.get("role")}


def _token(form: Form) -> dict[str, Any]:
    return {"name": form.get("name"), "expires": form.get("expires") or "30d", "scopes": form.getlist("scope")}


def _password(form: Form) -> dict[str, Any]:
    if form.get("new") != form.get("confirm"):
        raise invalid("the new password and its confirmation differ")
    return {"old": form.get("old"), "new": form.get("new")}


@dataclass(frozen=True, slots=True)
class Action:
    """A form: the API route it calls, how its fields become that route's body, and the page it lands on."""

    route: str
    fields: Callable[[Form], dict[str, Any]]
    page: pages.Page
    back: str
    # The secret in the answer (a token) to show once on the page, and what to call it; "" for none.
    secret: str = ""
    secret_label: str = ""


def endpoint(console: Console, action: Action) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        form = await read_form(request, console.platform.config.max_body)
        early: ApiError | None = None if csrf_matches(request, form.get(CSRF_FIELD)) else BAD_CSRF
        fields: dict[str, Any] = {}
        if early is None:
            try:
                fields = action.fields(form)
            except ApiError as exc:
                early = exc
        outcome = await console.call(request, action.route, fields, early)
        if outcome.status == 401:
            return to_login(request)
        viewer = await console.viewer(request)
        if viewer is None:
            return to_login(request)
        if not outcome.ok:
            return await action.page(console, request, viewer, Notes(error=outcome.message), outcome.status)
        if action.secret:
            return await action.page(console, request, viewer, _secret(action, outcome), outcome.status)
        back = action.back.format(**{key: quote(str(value), safe="") for key, value in request.path_params.items()})
        return RedirectResponse(back, 303)

    return serve


def _secret(action: Action, outcome: Outcome) -> Notes:
    label = action.secret_label.format(**outcome.data)
    return Notes(secret={"label": label, "value": str(outcome.data[action.secret])})


ACTIONS: tuple[tuple[str, Action], ...] = (
    ("/console/hosts/{host_id}/cordon", Action("cordon_host", _none, pages.hosts, "/console/hosts")),
    ("/console/hosts/{host_id}/uncordon", Action("uncordon_host", _none, pages.hosts, "/console/hosts")),
    ("/console/clusters", Action("create_cluster", _cluster, pages.clusters, "/console/clusters", "token",
                                 "The join token of cluster {name}")),
    ("/console/clusters/{name}/delete", Action("delete_cluster", _none, pages.clusters, "/console/clusters")),
    ("/console/clusters/{name}/token", Action("rotate_cluster_token", _none, pages.clusters, "/console/clusters",
                                              "token", "The new join token of cluster {name}")),
    ("/console/users", Action("create_user", _user, pages.users, "/console/users")),
    ("/console/users/{name}", Action("update_user", _user_change, pages.users, "/console/users")),
    ("/console/users/{name}/delete", Action("delete_user", _none, pages.users, "/console/users")),
    ("/console/tokens", Action("create_token", _token, pages.tokens, "/console/tokens", "token",
                               "API token {id} ({name})")),
    ("/console/tokens/{token_id}/delete", Action("delete_token", _none, pages.tokens, "/console/tokens")),
    ("/console/account/password", Action("change_password", _password, pages.account, "/console/account?changed=1")),
)
