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

from . import (
    api_analysis,
    api_audit,
    api_clusters,
    api_hosts,
    api_secrets,
    api_session,
    api_tasks,
    api_tokens,
    api_users,
    openapi,
)
from .context import Context
from .paths import PREFIX
from .permissions import Permission

Handler = Callable[[Context], Awaitable[Response]]
_TEXT = {"type": "string"}
_TEXTS = {"type": "array", "items": _TEXT}
_NUMBER_OR_TEXT = {"oneOf": [{"type": "number"}, _TEXT]}
_TASK = {
    "kind": {"enum": ["image", "file"]},
    "image": {"type": "object", "properties": {"reference": _TEXT, "platforms": {"type": "array", "items": _TEXT}}},
    "file": {"type": "object", "properties": {"url": _TEXT, "path": _TEXT, "digest": _TEXT}},
    "targets": {"type": "object", "properties": {
        "hosts": {"type": "array", "items": _TEXT}, "clusters": {"type": "array", "items": _TEXT},
        "selector": {"type": "object", "additionalProperties": _TEXT}, "count": {"type": "integer"},
        "percent": {"type": "number"}}},
    "rate": _NUMBER_OR_TEXT, "concurrency": {"type": "integer"}, "timeout": _NUMBER_OR_TEXT,
    "mode": {"enum": ["cache", "runtime"]}, "secret": {"oneOf": [_TEXT, {"type": "integer"}]},
    "dry_run": {"type": "boolean"}, "wait": {"type": "number"},
}
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
             "cordon a host: chosen as no parent, given no task", Permission.TARGETS_WRITE),
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
             "each host's traffic counters and the tasks by state, in Prometheus' text format",
             Permission.ANALYSIS_READ),
    ApiRoute("analysis_tasks", "GET", f"{PREFIX}/analysis/tasks", api_analysis.tasks_figures,
             "the figures of the tasks created since (duration, per-host p50/p95/max, success rate, bytes from the "
             "upstream and from peers, egress saved) and their summary (query: since=24h, format=json|csv)",
             Permission.ANALYSIS_READ, query={"since": _TEXT, "format": {"enum": ["json", "csv"]}}),
    ApiRoute("analysis_task", "GET", f"{PREFIX}/analysis/tasks/{{task_id}}", api_analysis.task_figures,
             "one task's figures", Permission.ANALYSIS_READ),
    ApiRoute("list_tasks", "GET", f"{PREFIX}/tasks", api_tasks.list_tasks,
             "distribution tasks, newest first (query: state, kind)", Permission.TASKS_READ, paginated=True),
    ApiRoute("create_task", "POST", f"{PREFIX}/tasks", api_tasks.create_task,
             "create a distribution task (with dry_run, or ?dry_run=true: only what it would move)",
             Permission.TASKS_WRITE, body=_TASK, status=201),
    ApiRoute("dry_run_task", "POST", f"{PREFIX}/tasks/dry-run", api_tasks.dry_run_task,
             "which hosts lack which blobs, the bytes to move and what the upstream should send; nothing moves",
             Permission.TASKS_WRITE, body=_TASK),
    ApiRoute("show_task", "GET", f"{PREFIX}/tasks/{{task_id}}", api_tasks.show_task,
             "one task, with its progress per host and per blob", Permission.TASKS_READ),
    ApiRoute("delete_task", "DELETE", f"{PREFIX}/tasks/{{task_id}}", api_tasks.delete_task,
             "delete a finished task and its log", Permission.TASKS_WRITE, status=204),
    ApiRoute("stop_task", "POST", f"{PREFIX}/tasks/{{task_id}}/stop", api_tasks.stop_task,
             "stop a task: its jobs are cancelled on the hosts", Permission.TASKS_WRITE),
    ApiRoute("retry_task", "POST", f"{PREFIX}/tasks/{{task_id}}/retry", api_tasks.retry_task,
             "a new attempt for the failed (or stopped) hosts of a task", Permission.TASKS_WRITE),
    ApiRoute("task_events", "GET", f"{PREFIX}/tasks/{{task_id}}/events", api_tasks.task_events,
             "a task's transaction log: who, what, when", Permission.TASKS_READ, paginated=True),
    ApiRoute("list_secrets", "GET", f"{PREFIX}/secrets", api_secrets.list_secrets,
             "registry secrets (never their passwords)", Permission.SECRETS_READ, paginated=True),
    ApiRoute("create_secret", "POST", f"{PREFIX}/secrets", api_secrets.create_secret,
             "create a registry secret; its password is never shown again", Permission.SECRETS_WRITE,
             body={"name": _TEXT, "username": _TEXT, "password": _TEXT}, status=201),
    ApiRoute("delete_secret", "DELETE", f"{PREFIX}/secrets/{{name}}", api_secrets.delete_secret,
             "delete a registry secret no unfinished task uses", Permission.SECRETS_WRITE, status=204),
)
