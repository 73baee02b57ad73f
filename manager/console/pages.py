"""The console's pages (GET): each reads through the API's handlers, so a page shows what its viewer's role may
read, and its write controls only to a role that may write (the server refuses the POST anyway: actions.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .. import traffic
from ..api_tasks import tasks_with_hosts
from ..hosts import STATES
from ..models import AuditEntry, Cluster, Task
from ..permissions import Permission, Role
from ..scopes import hosts_in, task_held
from .web import Console, Notes, Outcome, Viewer

Page = Callable[[Console, Request, Viewer, Notes, int], Awaitable[Response]]

# The navigation, in order, each entry shown to whoever holds its permission.
NAV: tuple[tuple[str, str, Permission | None], ...] = (
    ("/console/", "Overview", None),
    ("/console/hosts", "Hosts", Permission.TARGETS_READ),
    ("/console/clusters", "Clusters", Permission.TARGETS_READ),
    ("/console/tasks", "Tasks", Permission.TASKS_READ),
    ("/console/analysis", "Analysis", Permission.ANALYSIS_READ),
    ("/console/users", "Users", Permission.USERS_READ),
    ("/console/tokens", "API tokens", Permission.TOKENS_READ),
    ("/console/audit", "Audit log", Permission.AUDIT_READ),
    ("/console/account", "Account", None),
)
RECENT_FAILURES = 10
# A scoped role's overview looks at the newest this many active or failed tasks (a bound, not a query per task).
SCOPED_TASKS_SCANNED = 2000


def frame(viewer: Viewer) -> dict[str, object]:
    nav = [(path, label) for path, label, needs in NAV if needs is None or viewer.may(needs)]
    return {"viewer": viewer, "nav": nav, "P": Permission}


def refused(console: Console, request: Request, viewer: Viewer, outcome: Outcome) -> Response:
    return console.render(request, "error.html", outcome.status, **frame(viewer), message=outcome.message)


async def overview(console: Console, request: Request, viewer: Viewer, notes: Notes, status: int) -> Response:
    counts: Counter[str] = Counter()
    cordoned = 0
    swarms: int | None = None
    failures: list[AuditEntry] = []
    platform = console.platform
    scope = viewer.clusters
    # What a role scoped to clusters reaches (manager/scopes.py); None: everything.
    reach: list[str] | None = None
    if scope:
        reach = [v.row.host_id for v in hosts_in(scope, await platform.hosts.views(platform.sessions))]
    if viewer.may(Permission.TARGETS_READ):
        views = hosts_in(scope, await platform.hosts.views(platform.sessions))
        counts.update(view.state for view in views)
        cordoned = sum(1 for view in views if view.row.cordoned)
        swarms = await platform.hosts.swarms_tracked()
    tasks: dict[str, int] | None = None
    failed_tasks: list[Task] = []
    if viewer.may(Permission.TASKS_READ):
        async with platform.sessions() as session:
            if scope:
                tasks, failed_tasks = await _scoped_tasks(session, scope)
            else:
                found = await session.execute(select(Task.state, func.count()).where(
                    Task.state.in_(("pending", "running"))).group_by(Task.state))
                tasks = {"pending": 0, "running": 0, **dict(found.all())}
                failed_tasks = list((await session.execute(select(Task).where(Task.state == "failed")
                                                           .order_by(Task.id.desc()).limit(RECENT_FAILURES))).scalars())
    saved_today: traffic.Counters | None = None
    if viewer.may(Permission.ANALYSIS_READ):
        now = time.time()
        # Since midnight UTC, the hours the analysis buckets hold.
        buckets = await traffic.series(platform.sessions, now - now % 86400, "hour", reach, now)
        saved_today = sum((counters for _, counters in buckets), traffic.Counters())
    if viewer.may(Permission.AUDIT_READ):
        query = (select(AuditEntry).where(AuditEntry.result != "ok").order_by(AuditEntry.id.desc())
                 .limit(RECENT_FAILURES))
        async with platform.sessions() as session:
            failures = list((await session.execute(query)).scalars())
    return console.render(request, "overview.html", status, **frame(viewer), notes=notes, states=STATES,
                          counts=counts, cordoned=cordoned, swarms=swarms, failures=failures, tasks=tasks,
                          failed_tasks=failed_tasks, saved_today=saved_today)


async def _scoped_tasks(session: AsyncSession, scope: frozenset[str]) -> tuple[dict[str, int], list[Task]]:
    """The overview's task figures over the tasks a scoped role sees: active ones counted, recent failures."""
    query = select(Task).where(Task.state.in_(("pending", "running", "failed"))).order_by(Task.id.desc())
    found = await tasks_with_hosts(session, query.limit(SCOPED_TASKS_SCANNED))
    held = [task for task, rows in found if task_held(scope, rows)]
    counts = {"pending": 0, "running": 0}
    for task in held:
        if task.state in counts:
            counts[task.state] += 1
    return counts, [task for task in held if task.state == "failed"][:RECENT_FAILURES]


async def hosts(console: Console, request: Request, viewer: Viewer, notes: Notes, status: int) -> Response:
    query = request.query_params
    if any(not value for _, value in query.multi_items()):
        # The filter form sends its empty fields: "any", which the API says by their absence.
        kept = urlencode([(key, value) for key, value in query.multi_items() if value])
        return RedirectResponse(f"/console/hosts?{kept}" if kept else "/console/hosts", 303)
    listed = await console.call(request, "list_hosts")
    if listed.status in (401, 403):
        return refused(console, request, viewer, listed)
    if not listed.ok:
        # A bad filter: said above the table, which shows every host.
        notes.error, status = listed.message, listed.status
        items: list[dict[str, object]] = []
    else:
        items = listed.data["items"]
    async with console.platform.sessions() as session:
        clusters = list((await session.execute(select(Cluster.name).order_by(Cluster.name))).scalars())
    if viewer.clusters:
        clusters = [name for name in clusters if name in viewer.clusters]
    return console.render(request, "hosts.html", status, **frame(viewer), notes=notes, hosts=items,
                          clusters=clusters, states=STATES, next=next_page(query, listed),
                          chosen={"cluster": query.get("cluster", ""), "state": query.get("state", ""),
                                  "label": query.get("label", "")})


def next_page(query: QueryParams, listed: Outcome) -> str:
    """The link to the next page of hosts, with the same filters."""
    if not listed.ok or not listed.data.get("next"):
        return ""
    kept = [(key, value) for key, value in query.multi_items() if key != "cursor"]
    return "?" + urlencode([*kept, ("cursor", str(listed.data["next"]))])


async def clusters(console: Console, request: Request, viewer: Viewer, notes: Notes, status: int) -> Response:
    listed = await console.call(request, "list_clusters")
    if not listed.ok:
        return refused(console, request, viewer, listed)
    return console.render(request, "clusters.html", status, **frame(viewer), notes=notes,
                          clusters=listed.data["items"], next=listed.data["next"])


async def users(console: Console, request: Request, viewer: Viewer, notes: Notes, status: int) -> Response:
    listed = await console.call(request, "list_users")
    if not listed.ok:
        return refused(console, request, viewer, listed)
    return console.render(request, "users.html", status, **frame(viewer), notes=notes, users=listed.data["items"],
                          roles=[role.value for role in Role], next=listed.data["next"])


async def tokens(console: Console, request: Request, viewer: Viewer, notes: Notes, status: int) -> Response:
    listed = await console.call(request, "list_tokens")
    if not listed.ok:
        return refused(console, request, viewer, listed)
    return console.render(request, "tokens.html", status, **frame(viewer), notes=notes, tokens=listed.data["items"],
                          scopes=sorted(viewer.permissions), next=listed.data["next"])


async def audit(console: Console, request: Request, viewer: Viewer, notes: Notes, status: int) -> Response:
    listed = await console.call(request, "list_audit")
    if not listed.ok:
        return refused(console, request, viewer, listed)
    return console.render(request, "audit.html", status, **frame(viewer), notes=notes, entries=listed.data["items"],
                          next=listed.data["next"])


async def account(console: Console, request: Request, viewer: Viewer, notes: Notes, status: int) -> Response:
    me = await console.call(request, "me")
    return console.render(request, "account.html", status, **frame(viewer), notes=notes, me=me.data,
                          changed=request.query_params.get("changed") == "1")
