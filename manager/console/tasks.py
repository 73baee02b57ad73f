"""The console's distribution tasks: the list, the create form with its dry run, and a task's page, whose grid of
hosts by blobs follows the task live through a server-sent event stream (`stream`), each read through the API's
handlers (show_task, task_events), so with the API's permissions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from ..api_errors import ApiError, invalid
from ..api_tasks import KINDS, TASK_STATES
from ..permissions import Permission
from ..task_runner import ACTIVE_TASK_STATES
from . import pages
from .actions import BAD_CSRF, Action
from .cookies import CSRF_FIELD, csrf_matches
from .forms import Form, read_form, words
from .web import Console, Notes, Viewer, to_login

# How often the stream reads the task, how long it stays silent at most (a comment keeps proxies from closing it),
# and how long one stream lives: the browser's EventSource opens the next one by itself.
POLL_SECONDS = 0.5
KEEP_ALIVE_SECONDS = 15.0
STREAM_LIFETIME_SECONDS = 300.0
RECONNECT_MS = 2000
# The log entries a task page shows: the newest ones (the API and `damselfly task events` have them all).
LOG_SHOWN = 100
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"}


async def task_list(console: Console, request: Request, viewer: Viewer, notes: Notes, status: int) -> Response:
    query = request.query_params
    if any(not value for _, value in query.multi_items()):
        kept = urlencode([(key, value) for key, value in query.multi_items() if value])
        return RedirectResponse(f"/console/tasks?{kept}" if kept else "/console/tasks", 303)
    listed = await console.call(request, "list_tasks")
    if listed.status in (401, 403):
        return pages.refused(console, request, viewer, listed)
    items: list[dict[str, Any]] = []
    if listed.ok:
        items = listed.data["items"]
    else:
        notes.error, status = listed.message, listed.status
    return console.render(request, "tasks.html", status, **pages.frame(viewer), notes=notes, tasks=items,
                          states=TASK_STATES, kinds=KINDS, next=pages.next_page(query, listed),
                          chosen={"state": query.get("state", ""), "kind": query.get("kind", "")})


async def new_task(console: Console, request: Request, viewer: Viewer, notes: Notes, status: int,
                   values: dict[str, str] | None = None, dry_run: dict[str, Any] | None = None) -> Response:
    return console.render(request, "task_new.html", status, **pages.frame(viewer), notes=notes,
                          values=values or {"kind": "image", "mode": "cache"}, dry_run=dry_run, kinds=KINDS)


async def task_page(console: Console, request: Request, viewer: Viewer, notes: Notes, status: int) -> Response:
    shown = await console.call(request, "show_task")
    if not shown.ok:
        return pages.refused(console, request, viewer, shown)
    events, earlier = await recent_log(console, request)
    final = shown.data["state"] not in ACTIVE_TASK_STATES
    # A finished task's figures (duration, per-host percentiles, egress saved), to whoever reads the analysis.
    figures = await _figures(console, request) if final and viewer.may(Permission.ANALYSIS_READ) else None
    return console.render(request, "task.html", status, **pages.frame(viewer), notes=notes, task=shown.data,
                          grid=grid(shown.data), events=events, earlier=earlier, final=final, figures=figures)


async def recent_log(console: Console, request: Request) -> tuple[list[dict[str, Any]], bool]:
    """The task's newest LOG_SHOWN log entries, oldest first, and whether there are earlier ones (a long task's log
    is read from its end: what just happened is what the page is for)."""
    log = await console.call(request, "task_events", query={"order": "newest", "limit": str(LOG_SHOWN)})
    if not log.ok:
        return [], False
    return list(reversed(log.data["items"])), log.data["next"] is not None


async def _figures(console: Console, request: Request) -> dict[str, Any] | None:
    answer = await console.call(request, "analysis_task")
    return answer.data if answer.ok else None


def _percent(done: int, total: int, state: str) -> int:
    if total > 0:
        return min(100, int(done * 100 / total))
    return 100 if state == "succeeded" else 0


def grid(task: dict[str, Any]) -> dict[str, Any]:
    """The hosts by blobs table of a task's answer, as the page draws it (static/task.js draws the same)."""
    digests = [blob["digest"] for blob in task.get("blobs", [])]
    rows = []
    for host in task.get("hosts", []):
        blobs = {blob["digest"]: blob for blob in host.get("blobs", [])}
        cells = []
        for digest in digests:
            blob = blobs.get(digest)
            if blob is None:
                cells.append({"state": "", "percent": 0, "from_peers": 0, "from_upstream": 0, "error": ""})
                continue
            state = str(blob.get("state", ""))
            cells.append({"state": state,
                          "percent": _percent(int(blob.get("bytes_done", 0)), int(blob.get("size", 0)), state),
                          "from_peers": int(blob.get("from_peers", 0)),
                          "from_upstream": int(blob.get("from_upstream", 0)), "error": str(blob.get("error", ""))})
        rows.append({**host, "percent": _percent(host["bytes_done"], host["bytes_total"], host["state"]),
                     "cells": cells})
    return {"digests": digests, "rows": rows}


def task_fields(form: Form) -> dict[str, Any]:
    """The create form's fields as the body of POST /api/v1/tasks; an empty field is the API's default."""
    kind = form.get("kind") or "image"
    body: dict[str, Any] = {"kind": kind, "mode": form.get("mode") or "cache"}
    if kind == "image":
        body["image"] = {"reference": form.get("reference").strip(), "platforms": words(form.get("platforms"))}
    elif kind == "file":
        body["file"] = {"url": form.get("url").strip(), "path": form.get("path").strip(),
                        "digest": form.get("digest").strip()}
    targets: dict[str, Any] = {}
    for name in ("hosts", "clusters", "selector"):
        if words(form.get(name)):
            targets[name] = words(form.get(name))
    for name, kind_of in (("count", int), ("percent", float)):
        text = form.get(name).strip()
        if text:
            try:
                targets[name] = kind_of(text)
            except ValueError:
                raise invalid(f"targets.{name} must be a number") from None
    body["targets"] = targets
    for name in ("rate", "concurrency", "timeout", "secret", "wait"):
        text = form.get(name).strip()
        if text:
            body[name] = text
    if "wait" in body:
        try:
            body["wait"] = float(body["wait"])
        except ValueError:
            raise invalid("wait must be a number of seconds") from None
    return body


async def create(console: Console, request: Request) -> Response:
    """The create form: its "Dry run" button answers on the form's page, which keeps what was typed."""
    form = await read_form(request, console.platform.config.max_body)
    early: ApiError | None = None if csrf_matches(request, form.get(CSRF_FIELD)) else BAD_CSRF
    dry_run = form.get("action") == "dry-run"
    fields: dict[str, Any] = {}
    if early is None:
        try:
            fields = task_fields(form)
        except ApiError as exc:
            early = exc
    outcome = await console.call(request, "dry_run_task" if dry_run else "create_task", fields, early)
    if outcome.status == 401:
        return to_login(request)
    viewer = await console.viewer(request)
    if viewer is None:
        return to_login(request)
    values = {key: value for key, value in form.pairs if key != CSRF_FIELD}
    if not outcome.ok:
        return await new_task(console, request, viewer, Notes(error=outcome.message), outcome.status, values)
    if dry_run:
        return await new_task(console, request, viewer, Notes(), 200, values, outcome.data)
    return RedirectResponse(f"/console/tasks/{int(outcome.data['id'])}", 303)


async def stream(console: Console, request: Request) -> Response:
    """`text/event-stream` of one task: a `progress` event (the task and its log, as JSON) each time it changes, a
    comment when nothing did for a while, `end` once the task is final or the session no longer reads it."""
    shown = await console.call(request, "show_task")
    if not shown.ok:
        # No stream: the browser's EventSource stops on an answer that is not one.
        return JSONResponse(shown.data, shown.status, headers={"Cache-Control": "no-store"})
    return StreamingResponse(_events(console, request), media_type="text/event-stream", headers=STREAM_HEADERS)


async def _events(console: Console, request: Request) -> AsyncIterator[str]:
    # Starlette's StreamingResponse cancels this generator when the client goes away.
    opened = time.monotonic()
    last_payload = ""
    last_sent = opened
    yield f"retry: {RECONNECT_MS}\n\n"
    while True:
        shown = await console.call(request, "show_task")
        if not shown.ok:
            yield _event("end", {"state": "", "message": shown.message, "status": shown.status})
            return
        events, earlier = await recent_log(console, request)
        payload = json.dumps({"task": shown.data, "events": events, "earlier": earlier}, separators=(",", ":"))
        now = time.monotonic()
        if payload != last_payload:
            yield f"event: progress\ndata: {payload}\n\n"
            last_payload, last_sent = payload, now
        elif now - last_sent >= KEEP_ALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_sent = now
        if shown.data["state"] not in ACTIVE_TASK_STATES:
            # The task's figures, that a page loaded while it ran did not have (null to a role without analysis).
            yield _event("end", {"state": shown.data["state"], "figures": await _figures(console, request)})
            return
        if now - opened >= STREAM_LIFETIME_SECONDS:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(console.stopping.wait(), POLL_SECONDS)
        if console.stopping.is_set():
            return


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _none(form: Form) -> dict[str, Any]:
    return {}


ACTIONS: tuple[tuple[str, Action], ...] = (
    ("/console/tasks/{task_id}/stop", Action("stop_task", _none, task_page, "/console/tasks/{task_id}")),
    ("/console/tasks/{task_id}/retry", Action("retry_task", _none, task_page, "/console/tasks/{task_id}")),
    ("/console/tasks/{task_id}/delete", Action("delete_task", _none, task_page, "/console/tasks")),
)
