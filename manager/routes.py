"""Every endpoint of the platform's API, declared once: the app's routes, the permission checks, the audit of writes
and the OpenAPI document are all made from this table.

The supernode owns `/api/v1/peers`, `/swarms` and `/suspects` (supernode/routes.py); none of these paths is under
them, so one process may serve both (damselfly/hosting.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from . import api_analysis, api_audit, api_clusters, api_hosts, api_session, api_tokens, api_users, openapi
from .context import Context
from .paths import PREFIX
from .permissions import Permission

Handler = Callable[[Context], Awaitable[Response]]
_TEXT = {"type": "string"}
_TEXTS = {"type": "array", "items": _TEXT}
_SCOPES = {"description": _TEXT, "labels": {"type": "object", "additionalProperties": _TEXT}, "cidrs": _TEXTS,
           "hostnames": _TEXTS}


@dataclass(frozen=True, slots=True)
class ApiRoute:
    name: str
    method: str
    path: str
    handler: Handler = field(compare=False)
    summary: str
    # What the caller must hold; None with `authenticated`: any signed-in caller.
    permission: Permission | None = None
    authenticated: bool = True
    # The JSON body's fields (JSON Schema of each), for the OpenAPI document.
    body: dict[str, Any] = field(default_factory=dict, compare=False)
    status: int = 200
    paginated: bool = False
    # The query's parameters (JSON Schema of each), for the OpenAPI document.
    query: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def writes(self) -> bool:
        """Writes are audited, allowed or refused."""
        return self.method != "GET"


ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute("openapi", "GET", f"{PREFIX}/openapi.json", openapi.openapi, "this document", authenticated=False),
    ApiRoute("login", "POST", f"{PREFIX}/login", api_session.login, "log in: a session token", authenticated=False,
             body={"username": _TEXT, "password": _TEXT}),
    ApiRoute("logout", "POST", f"{PREFIX}/logout", api_session.logout, "end this session", status=204),
    ApiRoute("me", "GET", f"{PREFIX}/me", api_session.whoami, "who the caller is, and what it may do"),
    ApiRoute("change_password", "PUT", f"{PREFIX}/me/password", api_session.change_password,
             "change one's own password", Permission.ACCOUNT_WRITE, body={"old": _TEXT, "new": _TEXT}, status=204),
    ApiRoute("list_users", "GET", f"{PREFIX}/users", api_users.list_users, "list users", Permission.USERS_READ,
             paginated=True),
    ApiRoute("create_user", "POST", f"{PREFIX}/users", api_users.create_user, "create a user",
             Permission.USERS_WRITE, body={"name": _TEXT, "role": {"enum": ["admin", "operator", "viewer"]},
                                           "password": _TEXT}, status=201),
    ApiRoute("show_user", "GET", f"{PREFIX}/users/{{name}}", api_users.show_user, "one user", Permission.USERS_READ),
    ApiRoute("update_user", "PATCH", f"{PREFIX}/users/{{name}}", api_users.patch_user,
             "change a user's role, password or disabled state", Permission.USERS_WRITE,
             body={"role": {"enum": ["admin", "operator", "viewer"]}, "password": _TEXT,
                   "disabled": {"type": "boolean"}}),
    ApiRoute("delete_user", "DELETE", f"{PREFIX}/users/{{name}}", api_users.delete_user, "delete a user",
             Permission.USERS_WRITE, status=204),
    ApiRoute("list_tokens", "GET", f"{PREFIX}/tokens", api_tokens.list_tokens,
             "the caller's API tokens (an admin's: everyone's)", Permission.TOKENS_READ, paginated=True),
    ApiRoute("create_token", "POST", f"{PREFIX}/tokens", api_tokens.create_token,
             "create an API token, shown in this answer only", Permission.TOKENS_WRITE,
             body={"name": _TEXT, "scopes": {"type": "array", "items": _TEXT}, "expires": _TEXT}, status=201),
    ApiRoute("delete_token", "DELETE", f"{PREFIX}/tokens/{{token_id}}", api_tokens.delete_token,
             "delete an API token", Permission.TOKENS_WRITE, status=204),
    ApiRoute("list_audit", "GET", f"{PREFIX}/audit", api_audit.list_audit, "the audit log, newest first",
             Permission.AUDIT_READ, paginated=True),
    ApiRoute("list_hosts", "GET", f"{PREFIX}/hosts", api_hosts.list_hosts,
             "hosts, live, and those gone as down (query: cluster, label=K=V, state=healthy|stale|down)",
             Permission.TARGETS_READ, paginated=True),
    ApiRoute("show_host", "GET", f"{PREFIX}/hosts/{{host_id}}", api_hosts.show_host, "one host",
             Permission.TARGETS_READ),
    ApiRoute("cordon_host", "POST", f"{PREFIX}/hosts/{{host_id}}/cordon", api_hosts.cordon_host,
             "cordon a host: chosen as no parent (and, to come, given no task)", Permission.TARGETS_WRITE),
    ApiRoute("uncordon_host", "POST", f"{PREFIX}/hosts/{{host_id}}/uncordon", api_hosts.uncordon_host,
             "lift a host's cordon", Permission.TARGETS_WRITE),
    ApiRoute("list_clusters", "GET", f"{PREFIX}/clusters", api_clusters.list_clusters, "list clusters",
             Permission.TARGETS_READ, paginated=True),
    ApiRoute("create_cluster", "POST", f"{PREFIX}/clusters", api_clusters.create_cluster,
             "create a cluster; its join token is in this answer only", Permission.TARGETS_WRITE,
             body={"name": _TEXT, **_SCOPES}, status=201),
    ApiRoute("show_cluster", "GET", f"{PREFIX}/clusters/{{name}}", api_clusters.show_cluster, "one cluster",
             Permission.TARGETS_READ),
    ApiRoute("update_cluster", "PATCH", f"{PREFIX}/clusters/{{name}}", api_clusters.patch_cluster,
             "change a cluster's description or scopes", Permission.TARGETS_WRITE, body=_SCOPES),
    ApiRoute("delete_cluster", "DELETE", f"{PREFIX}/clusters/{{name}}", api_clusters.delete_cluster,
             "delete a cluster", Permission.TARGETS_WRITE, status=204),
    ApiRoute("rotate_cluster_token", "POST", f"{PREFIX}/clusters/{{name}}/token", api_clusters.rotate_token,
             "a new join token for the cluster, in this answer only; the old one stops working",
             Permission.TARGETS_WRITE),
    ApiRoute("analysis_traffic", "GET", f"{PREFIX}/analysis/traffic", api_analysis.traffic_series,
             "the hosts' traffic per hour or day: from the upstream, from peers, served; the egress saved "
             "(query: since=24h, step=hour|day, cluster=NAME or host=ID, format=json|csv)", Permission.ANALYSIS_READ,
             query={"since": _TEXT, "step": {"enum": ["hour", "day"]}, "cluster": _TEXT, "host": _TEXT,
                    "format": {"enum": ["json", "csv"]}}),
    ApiRoute("analysis_metrics", "GET", f"{PREFIX}/analysis/metrics", api_analysis.traffic_metrics,
             "each host's traffic counters, in Prometheus' text format", Permission.ANALYSIS_READ),
)
