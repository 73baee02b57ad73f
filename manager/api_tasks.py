"""Distribution tasks: `/api/v1/tasks` (create, list), `/api/v1/tasks/dry-run`, `/api/v1/tasks/{id}` (show, delete),
`.../stop`, `.../retry`, `.../events`. The task runner (manager/task_runner.py) moves them along; these endpoints
write what was asked, under the runner's lock, and wake it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse, Response

from supernode.api import BadRequest
from supernode.jobs import FINAL_STATES, JOB_MODES, FileSpec, ImageSpec, RegistryCredential

from .api_errors import ApiError, conflict, invalid, not_found
from .api_session import iso
from .context import Context
from .models import Cluster, RegistrySecret, Task, TaskEvent, TaskHost
from .pagination import Page, page_of
from .request_body import JsonObject
from .scopes import beyond, holds, task_held
from .secret_box import SecretUnreadable
from .task_runner import ACTIVE_TASK_STATES, JobRef, TaskRunner, event
from .task_targets import BadTargets, Targets, resolve
from .units import BadUnit, parse_rate, parse_seconds

FIELDS = ("kind", "image", "file", "targets", "rate", "concurrency", "timeout", "mode", "secret", "dry_run", "wait")
TASK_STATES = ("pending", "running", "succeeded", "failed", "stopped")
KINDS = ("image", "file")
DEFAULT_TIMEOUT = 3600.0
# How long a dry run waits for the hosts' answers, at most.
MAX_DRY_RUN_WAIT = 60.0
DEFAULT_DRY_RUN_WAIT = 10.0
MAX_CONCURRENCY = 100_000


def _stamp(seconds: float | None) -> str | None:
    return iso(seconds) if seconds else None


def host_json(row: TaskHost, *, blobs: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "host": row.host_id, "state": row.state, "attempt": row.attempt, "job_id": row.job_id or None,
        "bytes_done": row.bytes_done, "bytes_total": row.bytes_total, "from_upstream": row.from_upstream,
        "from_peers": row.from_peers, "error": row.error, "started": _stamp(row.started_at),
        "finished": _stamp(row.finished_at),
    }
    if blobs:
        answer["blobs"] = list(row.blobs or [])
    return answer


def totals(rows: list[TaskHost]) -> dict[str, Any]:
    counts = {state: sum(1 for row in rows if row.state == state) for state in TASK_STATES}
    return {
        "hosts": len(rows), **counts,
        **{key: sum(getattr(row, key) for row in rows)
           for key in ("bytes_done", "bytes_total", "from_upstream", "from_peers")},
    }


def blob_totals(rows: list[TaskHost]) -> list[dict[str, Any]]:
    """Each blob over the task's hosts: its size, on how many hosts it is done, bytes moved for it."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        for blob in row.blobs or []:
            entry = found.setdefault(blob["digest"], {"digest": blob["digest"], "size": 0, "hosts_done": 0,
                                                      "hosts": 0, "bytes_done": 0, "from_upstream": 0,
                                                      "from_peers": 0})
            entry["size"] = max(entry["size"], int(blob.get("size", 0)))
            entry["hosts"] += 1
            entry["hosts_done"] += blob.get("state") == "succeeded"
            for key in ("bytes_done", "from_upstream", "from_peers"):
                entry[key] += int(blob.get(key, 0))
    return list(found.values())


def task_json(task: Task, rows: list[TaskHost], secret: str | None, *, detail: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": task.id, "kind": task.kind, task.kind: dict(task.spec), "targets": dict(task.targets),
        "rate": task.rate, "concurrency": task.concurrency, "timeout": task.timeout, "mode": task.mode,
        "secret": secret, "state": task.state, "error": task.error, "created_by": task.created_by,
        "created": iso(task.created_at), "started": _stamp(task.started_at), "finished": _stamp(task.finished_at),
        "totals": totals(rows),
    }
    if detail:
        answer["hosts"] = [host_json(row, blobs=True) for row in rows]
        answer["blobs"] = blob_totals(rows)
    return answer


def _runner(ctx: Context) -> TaskRunner:
    runner = ctx.platform.runner
    if runner is None:
        raise ApiError(503, "unavailable", "this manager reaches no supernode to give jobs to: run it in the "
                       "supernode, or alone with --supernode URL")
    return runner


def _lock(ctx: Context) -> Any:
    runner = ctx.platform.runner
    return runner.lock if runner is not None else contextlib.nullcontext()


def _number(body: JsonObject, name: str, parse: Any, default: float) -> float:
    """A number, or text in the unit's notation (`50MB/s`, `30m`)."""
    value = body.data.get(name, default)
    if isinstance(value, str):
        try:
            return float(parse(value))
        except BadUnit as exc:
            raise invalid(str(exc)) from None
        except ValueError:
            raise invalid(f"{name} must be a number") from None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise invalid(f"{name} must be a number >= 0 or text like {'50MB/s' if name == 'rate' else '30m'}")
    return float(value)


async def _secret(session: AsyncSession, value: Any) -> RegistrySecret | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid("secret must be a secret's name or id")
    column = RegistrySecret.id if isinstance(value, int) else RegistrySecret.name
    secret = (await session.execute(select(RegistrySecret).where(column == value))).scalar()
    if secret is None:
        raise invalid(f"no secret {str(value)[:64]!r}")
    return secret


def _spec(body: JsonObject, kind: str) -> dict[str, Any]:
    other = "file" if kind == "image" else "image"
    if other in body:
        raise invalid(f"a task of kind {kind} has no '{other}'")
    value = body.data.get(kind)
    if not isinstance(value, dict):
        raise invalid(f"{kind} must be an object: " + ("{reference, platforms}" if kind == "image"
                                                        else "{url, path, digest}"))
    try:
        if kind == "image":
            image = ImageSpec.parse(value)
            if not image.reference.strip():
                raise invalid("image.reference is empty")
            return image.to_json()
        file = FileSpec.parse(value)
        if not file.url.startswith(("http://", "https://")):
            raise invalid("file.url must be an http:// or https:// URL")
        return file.to_json()
    except BadRequest as exc:
        raise invalid(str(exc).replace("'", "")) from None


def _task_of(ctx: Context, body: JsonObject, created_by: str) -> tuple[Task, Targets]:
    kind = body.text("kind", default="image", max_length=16)
    if kind not in KINDS:
        raise invalid("kind must be image or file")
    mode = body.text("mode", default="cache", max_length=16)
    if mode not in JOB_MODES:
        raise invalid("mode must be cache or runtime")
    if mode == "runtime" and kind == "file":
        raise invalid("mode runtime is for images: a container runtime pulls images, not files")
    concurrency = _number(body, "concurrency", int, 0)
    if concurrency != int(concurrency) or concurrency > MAX_CONCURRENCY:
        raise invalid(f"concurrency must be a whole number from 0 (all at once) to {MAX_CONCURRENCY}")
    try:
        targets = Targets.parse(body.data.get("targets"))
    except BadTargets as exc:
        raise invalid(str(exc)) from None
    task = Task(kind=kind, spec=_spec(body, kind), targets=targets.to_json(),
                rate=int(_number(body, "rate", parse_rate, 0)), concurrency=int(concurrency),
                timeout=_number(body, "timeout", parse_seconds, DEFAULT_TIMEOUT), mode=mode, state="pending",
                error="", created_by=created_by, created_at=time.time(), lease_owner="")
    return task, targets


async def create_task(ctx: Context) -> Response:
    body = await ctx.body(*FIELDS)
    dry_run = body.flag("dry_run") if "dry_run" in body else ctx.request.query_params.get("dry_run") == "true"
    return await _create(ctx, body, dry_run)


async def dry_run_task(ctx: Context) -> Response:
    return await _create(ctx, await ctx.body(*FIELDS), True)


async def _create(ctx: Context, body: JsonObject, dry_run: bool) -> Response:
    me = ctx.me()
    task, targets = _task_of(ctx, body, me.name)
    ctx.target = f"{task.kind}:{str(task.spec.get('reference') or task.spec.get('url'))[:200]}"
    runner = _runner(ctx)
    views = await ctx.platform.hosts.views(ctx.platform.sessions)
    async with ctx.read() as session:
        clusters = set((await session.execute(select(Cluster.name))).scalars())
        secret = await _secret(session, body.data.get("secret"))
    scope = me.clusters
    if scope:
        # A scoped role makes tasks in its own clusters only; it learns nothing of the others by trying.
        clusters &= scope
        views = [view for view in views if holds(scope, view.clusters)]
        outside = [name for name in targets.clusters if name not in scope]
        if outside:
            raise beyond(scope, f"cluster {outside[0][:64]!r}")
    try:
        resolved = resolve(targets, views, clusters)
    except BadTargets as exc:
        raise invalid(str(exc)) from None
    placed = {view.row.host_id: list(view.clusters) for view in views}
    task.secret_id = secret.id if secret is not None else None
    if dry_run:
        wait = _number(body, "wait", float, DEFAULT_DRY_RUN_WAIT)
        credential = None
        if secret is not None:
            try:
                credential = RegistryCredential(secret.username, ctx.platform.box.open(secret.password_encrypted))
            except SecretUnreadable as exc:
                raise invalid(f"secret {secret.name!r}: {exc}") from None
        answer = await runner.dry_run(task, resolved.hosts, credential, min(wait, MAX_DRY_RUN_WAIT))
        async with ctx.write(ctx.target, f"dry run to {len(resolved.hosts)} hosts"):
            pass
        return JSONResponse({"dry_run": True, "cordoned": list(resolved.cordoned), **answer})
    async with ctx.write(ctx.target, f"to {len(resolved.hosts)} hosts") as session:
        session.add(task)
        await session.flush()
        rows = [TaskHost(task_id=task.id, host_id=host, job_id="", attempt=1, state="pending", job_live=False,
                         bytes_done=0, bytes_total=0, from_upstream=0, from_peers=0, error="", blobs=[],
                         clusters=placed.get(host, []))
                for host in resolved.hosts]
        session.add_all(rows)
        skipped = f"; cordoned, skipped: {', '.join(resolved.cordoned)}" if resolved.cordoned else ""
        event(session, task.id, me.name, "created", f"{len(rows)} hosts{skipped}")
        ctx.target = f"task:{task.id}"
        await session.flush()
    runner.wake()
    return JSONResponse({**task_json(task, rows, secret.name if secret else None, detail=True),
                         "cordoned": list(resolved.cordoned)}, 201)


def task_id_of(ctx: Context) -> int:
    text = str(ctx.request.path_params["task_id"])
    ctx.target = f"task:{text[:32]}"
    if not text.isdigit() or len(text) > 18:
        raise not_found(f"no task {text[:32]!r}")
    return int(text)


async def load_task(session: AsyncSession, task_id: int, scope: frozenset[str] = frozenset()
                    ) -> tuple[Task, list[TaskHost]]:
    """The task and its hosts; 404 for one outside `scope` (a role scoped to clusters: manager/scopes.py)."""
    task = await session.get(Task, task_id)
    if task is None:
        raise not_found(f"no task {task_id}")
    rows = list((await session.execute(select(TaskHost).where(TaskHost.task_id == task_id)
                                       .order_by(TaskHost.id))).scalars())
    if not task_held(scope, rows):
        raise not_found(f"no task {task_id}")
    return task, rows


async def tasks_with_hosts(session: AsyncSession, query: Select[Task]) -> list[tuple[Task, list[TaskHost]]]:
    """The tasks `query` selects, each with its host rows (one query for all of them)."""
    tasks = list((await session.execute(query)).scalars())
    rows: dict[int, list[TaskHost]] = {task.id: [] for task in tasks}
    if tasks:
        for row in (await session.execute(select(TaskHost).where(TaskHost.task_id.in_(list(rows)))
                                          .order_by(TaskHost.id))).scalars():
            rows[row.task_id].append(row)
    return [(task, rows[task.id]) for task in tasks]


async def _secret_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    found = await session.execute(select(RegistrySecret.id, RegistrySecret.name).where(RegistrySecret.id.in_(ids)))
    return {secret_id: name for secret_id, name in found.all()}


async def list_tasks(ctx: Context) -> Response:
    page = page_of(ctx.request)
    query = ctx.request.query_params
    state, kind = query.get("state", ""), query.get("kind", "")
    if state and state not in TASK_STATES:
        raise invalid(f"state must be one of {', '.join(TASK_STATES)}")
    if kind and kind not in KINDS:
        raise invalid("kind must be image or file")
    statement = select(Task)
    if state:
        statement = statement.where(Task.state == state)
    if kind:
        statement = statement.where(Task.kind == kind)
    scope = ctx.me().clusters
    tasks: list[Task] = []
    rows: dict[int, list[TaskHost]] = {}
    async with ctx.read() as session:
        # A scoped role's page is filled from as many pages of the table as it takes: its tasks may be few among many.
        cursor = page.cursor
        while len(tasks) <= page.limit:
            found = await tasks_with_hosts(session, Page(page.limit, cursor).of(statement, Task.id, newest_first=True))
            for task, task_rows in found:
                if task_held(scope, task_rows):
                    tasks.append(task)
                    rows[task.id] = task_rows
            if len(found) <= page.limit:
                break
            cursor = found[-1][0].id
        tasks = tasks[: page.limit + 1]
        names = await _secret_names(session, {t.secret_id for t in tasks if t.secret_id is not None})
    items = [task_json(t, rows[t.id], names.get(t.secret_id or 0), detail=False) for t in tasks]
    return JSONResponse(page.answer(items, [t.id for t in tasks]))


async def show_task(ctx: Context) -> Response:
    task_id = task_id_of(ctx)
    async with ctx.read() as session:
        task, rows = await load_task(session, task_id, ctx.me().clusters)
        names = await _secret_names(session, {task.secret_id} if task.secret_id is not None else set())
    return JSONResponse(task_json(task, rows, names.get(task.secret_id or 0), detail=True))


async def stop_task(ctx: Context) -> Response:
    task_id = task_id_of(ctx)
    me = ctx.me()
    async with _lock(ctx), ctx.write(ctx.target) as session:
        task, rows = await load_task(session, task_id, me.clusters)
        if task.state not in ACTIVE_TASK_STATES:
            raise conflict(f"task {task_id} is {task.state} already")
        now = time.time()
        unfinished = [row for row in rows if row.state not in FINAL_STATES]
        for row in unfinished:
            row.state, row.finished_at, row.error = "stopped", now, f"stopped by {me.name}"
        task.state, task.finished_at, task.error = "stopped", now, f"stopped by {me.name}"
        event(session, task_id, me.name, "stopped", f"{len(unfinished)} hosts unfinished")
        names = await _secret_names(session, {task.secret_id} if task.secret_id is not None else set())
    if ctx.platform.runner is not None:
        # The round cancels the jobs now, not in a second.
        ctx.platform.runner.wake()
    return JSONResponse(task_json(task, rows, names.get(task.secret_id or 0), detail=True))


async def _cancel_live(ctx: Context, rows: list[TaskHost]) -> None:
    live = [JobRef(row.job_id, row.host_id) for row in rows if row.job_live]
    if live and not await _runner(ctx).cancel(live):
        raise ApiError(503, "unavailable", "the supernode did not take back every job of the task yet: try again")


async def retry_task(ctx: Context) -> Response:
    task_id = task_id_of(ctx)
    me = ctx.me()
    _runner(ctx)
    async with _lock(ctx):
        async with ctx.read() as session:
            task, rows = await load_task(session, task_id, me.clusters)
        if task.state in ACTIVE_TASK_STATES or task.state == "succeeded":
            raise conflict(f"task {task_id} is {task.state}: only a failed or stopped task is retried")
        again = [row for row in rows if row.state in ("failed", "stopped")]
        # The old attempts' jobs leave the supernode before the new ones come.
        await _cancel_live(ctx, again)
        async with ctx.write(ctx.target, f"{len(again)} hosts") as session:
            task, rows = await load_task(session, task_id)
            again = [row for row in rows if row.state in ("failed", "stopped")]
            for row in again:
                row.attempt += 1
                row.state, row.job_id, row.job_live, row.error = "pending", "", False, ""
                row.bytes_done = row.bytes_total = row.from_upstream = row.from_peers = 0
                row.started_at = row.finished_at = None
                row.blobs = []
            # The timeout counts again from the retry.
            task.state, task.error, task.started_at, task.finished_at = "running", "", time.time(), None
            event(session, task_id, me.name, "retried", f"{len(again)} hosts: {', '.join(r.host_id for r in again)}")
            names = await _secret_names(session, {task.secret_id} if task.secret_id is not None else set())
    _runner(ctx).wake()
    return JSONResponse(task_json(task, rows, names.get(task.secret_id or 0), detail=True))


async def delete_task(ctx: Context) -> Response:
    task_id = task_id_of(ctx)
    async with _lock(ctx):
        async with ctx.read() as session:
            task, rows = await load_task(session, task_id, ctx.me().clusters)
        if task.state in ACTIVE_TASK_STATES:
            raise conflict(f"task {task_id} is {task.state}: stop it first")
        if any(row.job_live for row in rows):
            await _cancel_live(ctx, rows)
        async with ctx.write(ctx.target) as session:
            task, _ = await load_task(session, task_id)
            await session.delete(task)
    return Response(status_code=204)


async def task_events(ctx: Context) -> Response:
    task_id = task_id_of(ctx)
    page = page_of(ctx.request)
    order = ctx.request.query_params.get("order", "oldest")
    if order not in ("oldest", "newest"):
        raise invalid("order must be oldest (the default) or newest")
    async with ctx.read() as session:
        await load_task(session, task_id, ctx.me().clusters)
        query = page.of(select(TaskEvent).where(TaskEvent.task_id == task_id), TaskEvent.id,
                        newest_first=order == "newest")
        events = list((await session.execute(query)).scalars())
    items = [{"id": e.id, "at": iso(e.at), "actor": e.actor, "what": e.what, "detail": e.detail} for e in events]
    return JSONResponse(page.answer(items, [e.id for e in events]))
