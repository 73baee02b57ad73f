"""The platform's task and secret commands (over manager/client.py), in the style of damselfly/control_cli.py:

    damselfly task create image REF [--platform OS/ARCH]... | file URL --path P [--digest D]
        [--hosts H1,H2 | --host H]... [--cluster NAME]... [--selector K=V]... [--count N | --percent P]
        [--rate 50MB/s] [--concurrency N] [--timeout 30m] [--mode cache|runtime] [--secret NAME]
        [--dry-run] [--wait] [--json]
    damselfly task list [--state S] [--kind K] [--json]
    damselfly task show ID [--json] [--watch];  damselfly task watch ID
    damselfly task stop|retry|delete|events ID
    damselfly secret create NAME --username U (--password-file F | --password-stdin | $DAMSELFLY_SECRET_PASSWORD)
    damselfly secret list [--json];  damselfly secret delete NAME

`--image REF` and `--file URL` are the same as the `image REF` and `file URL` words. A secret's password is never
taken from argv (visible to every user of the host).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from manager.client import ManagerClient

from .control_cli import CommandError, _bytes, _client, _connection_flags, _print_table, _read_password

SECRET_ENV = "DAMSELFLY_SECRET_PASSWORD"
TASK_STATES = ("pending", "running", "succeeded", "failed", "stopped")
FINAL = ("succeeded", "failed", "stopped")
WATCH_EVERY = 1.0
BAR = 24


def add_parsers(commands: Any) -> None:
    task = commands.add_parser("task", help="distribution tasks: an image or a file to hosts").add_subparsers(
        dest="action", required=True)
    create = task.add_parser("create", help="create a task; prints its id (with --json: the task)")
    create.add_argument("what", nargs="*", metavar="KIND REF", help="`image REF` or `file URL`")
    create.add_argument("--image", metavar="REF", help="an image as a client names it: registry.example.com/a/b:1, "
                        "a Docker Hub name, or a name without a registry host (the hosts' default upstream)")
    create.add_argument("--file", metavar="URL", help="a file by URL")
    create.add_argument("--platform", action="append", default=[], metavar="OS/ARCH",
                        help="of an index, only this platform (repeat; default: all)")
    create.add_argument("--path", metavar="P", help="where a file lands on each host (absolute)")
    create.add_argument("--digest", default="", metavar="D", help="the file's sha256:HEX, checked on each host")
    create.add_argument("--host", action="append", default=[], metavar="ID_OR_ADDR", help="a host (repeat)")
    create.add_argument("--hosts", default="", metavar="H1,H2", help="hosts, comma-separated")
    create.add_argument("--cluster", action="append", default=[], metavar="NAME", help="a cluster's hosts (repeat)")
    create.add_argument("--selector", action="append", default=[], metavar="K=V",
                        help="hosts with this label (repeat: all must match)")
    share = create.add_mutually_exclusive_group()
    share.add_argument("--count", type=int, default=0, metavar="N", help="only N of the matched hosts")
    share.add_argument("--percent", type=float, default=0.0, metavar="P", help="only P%% of the matched hosts")
    create.add_argument("--rate", default="", metavar="RATE", help="bytes per second per host: 50MB/s, 20MiB/s")
    create.add_argument("--concurrency", type=int, default=0, metavar="N", help="hosts at once (default: all)")
    create.add_argument("--timeout", default="", metavar="DURATION", help="30m, 2h (default: 1h)")
    create.add_argument("--mode", default="cache", choices=("cache", "runtime"),
                        help="cache: blobs land in each host's store; runtime: each host's container runtime pulls")
    create.add_argument("--secret", default="", metavar="NAME", help="the registry secret to pull with")
    create.add_argument("--dry-run", action="store_true", help="move nothing: what each host lacks, what must move")
    create.add_argument("--wait", action="store_true", help="show each host's progress until the task ends; exit "
                        "non-zero unless it succeeded")
    create.add_argument("--json", action="store_true")
    listed = task.add_parser("list", help="list tasks, newest first")
    listed.add_argument("--state", default="", choices=TASK_STATES)
    listed.add_argument("--kind", default="", choices=("image", "file"))
    listed.add_argument("--json", action="store_true")
    show = task.add_parser("show", help="one task, with each host's progress")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.add_argument("--watch", action="store_true", help="until it ends; exit non-zero unless it succeeded")
    subs = [create, listed, show]
    for action, what in (("watch", "follow a task until it ends; exit non-zero unless it succeeded"),
                         ("stop", "stop a task: its jobs are cancelled on the hosts"),
                         ("retry", "a new attempt for the failed hosts"), ("delete", "delete a finished task"),
                         ("events", "a task's log: who did what, when")):
        sub = task.add_parser(action, help=what)
        sub.add_argument("id")
        subs.append(sub)

    secret = commands.add_parser("secret", help="registry secrets that tasks pull with").add_subparsers(
        dest="action", required=True)
    make = secret.add_parser("create", help="create a secret; its password is never shown again")
    make.add_argument("name")
    make.add_argument("--username", required=True, metavar="U")
    make.add_argument("--password-file", metavar="F", help=f"a file holding the password (else ${SECRET_ENV}, "
                      "or --password-stdin)")
    make.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    secrets = secret.add_parser("list", help="list secrets (never their passwords)")
    secrets.add_argument("--json", action="store_true")
    drop = secret.add_parser("delete", help="delete a secret")
    drop.add_argument("name")
    for sub in [*subs, make, secrets, drop]:
        _connection_flags(sub)


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    kind, ref = "", ""
    if args.what:
        if len(args.what) != 2 or args.what[0] not in ("image", "file"):
            raise CommandError("expected `image REF` or `file URL` (or --image REF, --file URL)")
        kind, ref = args.what
    for flag, value in (("image", args.image), ("file", args.file)):
        if value:
            if kind:
                raise CommandError("one image or one file per task")
            kind, ref = flag, value
    if not kind:
        raise CommandError("what to distribute? `image REF`, `file URL --path P` (or --image, --file)")
    if kind == "image":
        if args.path or args.digest:
            raise CommandError("--path and --digest are for a file")
        return {"kind": "image", "image": {"reference": ref, "platforms": args.platform}}
    if args.platform:
        raise CommandError("--platform is for an image")
    if not args.path:
        raise CommandError("a file needs --path: where it lands on each host")
    return {"kind": "file", "file": {"url": ref, "path": args.path, "digest": args.digest}}


def _body(args: argparse.Namespace) -> dict[str, Any]:
    selector: dict[str, str] = {}
    for text in args.selector:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise CommandError(f"--selector: expected KEY=VALUE, got {text[:64]!r}")
        selector[key] = value
    hosts = [*args.host, *(h.strip() for h in args.hosts.split(",") if h.strip())]
    targets: dict[str, Any] = {"hosts": hosts, "clusters": args.cluster, "selector": selector}
    if args.count:
        targets["count"] = args.count
    if args.percent:
        targets["percent"] = args.percent
    body: dict[str, Any] = {**_spec(args), "targets": targets, "mode": args.mode, "concurrency": args.concurrency}
    for key in ("rate", "timeout", "secret"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    return body


def _task_create(args: argparse.Namespace) -> None:
    body = _body(args)
    with _client(args) as client:
        if args.dry_run:
            _print_dry_run(client.dry_run_task(body), args.json)
            return
        task = client.create_task(body)
        if args.json and not args.wait:
            print(json.dumps(task, indent=2))
        elif not args.wait:
            print(task["id"])
        if task.get("cordoned"):
            print(f"cordoned, skipped: {', '.join(task['cordoned'])}", file=sys.stderr)
        if args.wait:
            _follow(client, str(task["id"]), args.json)


def _print_dry_run(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    rows = [{**h, "missing": len(h["missing"]), "bytes_missing": _bytes(h["bytes_missing"])} for h in answer["hosts"]]
    _print_table(rows, ["host", "state", "missing", "bytes_missing", "error"])
    print(f"to move: {_bytes(answer['bytes_to_move'])}; from the upstream: about {_bytes(answer['upstream_bytes'])}"
          f"; {answer['answered']} of {answer['targeted']} hosts answered")


def _task_list(args: argparse.Namespace) -> None:
    with _client(args) as client:
        tasks = client.tasks(args.state, args.kind)
    if args.json:
        print(json.dumps(tasks, indent=2))
        return
    rows = [{**t, "what": (t.get("image") or {}).get("reference") or (t.get("file") or {}).get("url"),
             "hosts": f"{t['totals']['succeeded']}/{t['totals']['hosts']}"} for t in tasks]
    _print_table(rows, ["id", "kind", "what", "state", "hosts", "created_by", "created", "finished"])


def _task_show(args: argparse.Namespace) -> None:
    with _client(args) as client:
        if args.watch:
            _follow(client, args.id, args.json)
            return
        task = client.task(args.id)
    if args.json:
        print(json.dumps(task, indent=2))
    else:
        _print_task(task)


def _task_watch(args: argparse.Namespace) -> None:
    with _client(args) as client:
        _follow(client, args.id, False)


def _bar(done: int, total: int) -> str:
    filled = BAR * done // total if total else 0
    return "[" + "#" * filled + "." * (BAR - filled) + "]" + (f" {100 * done // total:3d}%" if total else "    -")


def _lines(task: dict[str, Any]) -> list[str]:
    what = (task.get("image") or {}).get("reference") or (task.get("file") or {}).get("url")
    lines = [f"task {task['id']} {task['kind']} {what}: {task['state']}"]
    width = max([len(h["host"]) for h in task["hosts"]] + [4])
    for host in task["hosts"]:
        line = (f"  {host['host'].ljust(width)}  {host['state']:<9} {_bar(host['bytes_done'], host['bytes_total'])} "
                f"{_bytes(host['bytes_done'])}/{_bytes(host['bytes_total'])}  upstream {_bytes(host['from_upstream'])}"
                f" peers {_bytes(host['from_peers'])}")
        lines.append(line + (f"  {host['error']}" if host["error"] else ""))
    if task["error"]:
        lines.append(f"  {task['error']}")
    return lines


def _print_task(task: dict[str, Any]) -> None:
    print("\n".join(_lines(task)))


def _follow(client: ManagerClient, task_id: str, as_json: bool) -> None:
    """Each host's progress until the task ends: redrawn in place on a terminal, printed on change elsewhere. A task
    that did not succeed is a CommandError (exit 1) saying why."""
    shown: list[str] = []
    tty = sys.stdout.isatty()
    while True:
        task = client.task(task_id)
        lines = _lines(task)
        if not as_json and lines != shown:
            if tty and shown:
                sys.stdout.write(f"\x1b[{len(shown)}F\x1b[J")
            print("\n".join(lines), flush=True)
            shown = lines
        if task["state"] in FINAL:
            break
        time.sleep(WATCH_EVERY)
    if as_json:
        print(json.dumps(task, indent=2))
    if task["state"] != "succeeded":
        raise CommandError(f"task {task['id']} {task['state']}" + (f": {task['error']}" if task["error"] else ""))


def _task_action(args: argparse.Namespace) -> None:
    with _client(args) as client:
        task = client.task_action(args.id, args.action)
    print(f"task {task['id']}: {task['state']}" + (" (retrying the failed hosts)" if args.action == "retry" else ""))


def _task_delete(args: argparse.Namespace) -> None:
    with _client(args) as client:
        client.delete_task(args.id)
    print(f"deleted task {args.id}")


def _task_events(args: argparse.Namespace) -> None:
    with _client(args) as client:
        _print_table(client.task_events(args.id), ["at", "actor", "what", "detail"])


def _secret_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            password = Path(args.password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise CommandError(f"--password-file: {exc.strerror or exc}: {args.password_file}") from None
    elif args.password_stdin:
        password = _read_password(True, "")
    elif os.environ.get(SECRET_ENV):
        password = os.environ[SECRET_ENV]
    else:
        raise CommandError(f"no password: give --password-file F, --password-stdin, or set ${SECRET_ENV}")
    if not password:
        raise CommandError("the password is empty")
    return password


def _secret_create(args: argparse.Namespace) -> None:
    password = _secret_password(args)
    with _client(args) as client:
        made = client.create_secret(args.name, args.username, password)
    print(f"created secret {made['name']} (id {made['id']}, user {made['username']})")


def _secret_list(args: argparse.Namespace) -> None:
    with _client(args) as client:
        secrets = client.secrets()
    if args.json:
        print(json.dumps(secrets, indent=2))
    else:
        _print_table(secrets, ["id", "name", "username", "created_by", "created"])


def _secret_delete(args: argparse.Namespace) -> None:
    with _client(args) as client:
        client.delete_secret(args.name)
    print(f"deleted secret {args.name}")


HANDLERS: dict[tuple[str, str | None], Callable[[argparse.Namespace], None]] = {
    ("task", "create"): _task_create,
    ("task", "list"): _task_list,
    ("task", "show"): _task_show,
    ("task", "watch"): _task_watch,
    ("task", "stop"): _task_action,
    ("task", "retry"): _task_action,
    ("task", "delete"): _task_delete,
    ("task", "events"): _task_events,
    ("secret", "create"): _secret_create,
    ("secret", "list"): _secret_list,
    ("secret", "delete"): _secret_delete,
}
