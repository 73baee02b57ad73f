"""The platform's commands over its API (manager/client.py): `login`, `logout`, `user ...`, `token ...`, `host ...`,
`cluster ...`, `analysis`; `task ...` and `secret ...` in damselfly/task_cli.py.

Each takes `--server URL` and `--token T`; `$DAMSELFLY_SERVER` and `$DAMSELFLY_TOKEN` when they are not given, and
else the session `damselfly login` stored. A refusal exits 1 with the server's reason on one line; so does a server
out of reach.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import Any

# Neither imports SQLAlchemy (nor argon2): damselfly/cli.py imports this module at every start, a peer's included.
from manager.client import ClientError, ManagerClient
from manager.permissions import Permission, Role

from . import session_file

COMMANDS = ("login", "logout", "user", "token", "host", "cluster", "analysis", "task", "secret")
HOST_STATES = ("healthy", "stale", "down")
SERVER_ENV = "DAMSELFLY_SERVER"
TOKEN_ENV = "DAMSELFLY_TOKEN"


class CommandError(Exception):
    """A one-line reason the command did not do what it was asked."""


def _connection_flags(parser: argparse.ArgumentParser, *, token: bool = True) -> None:
    parser.add_argument("--server", metavar="URL", help=f"the manager's URL (default: ${SERVER_ENV}, else the "
                        "server of `damselfly login`)")
    if token:
        parser.add_argument("--token", metavar="T", help=f"an API or session token (default: ${TOKEN_ENV}, else the "
                            "session of `damselfly login`); the environment is safer: argv is visible to others")


def add_parsers(commands: Any) -> None:
    login = commands.add_parser("login", help="log in to the platform; the session is kept in a 0600 file")
    _connection_flags(login, token=False)
    login.add_argument("--username", required=True, metavar="NAME")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    logout = commands.add_parser("logout", help="end the stored session")
    _connection_flags(logout)

    user = commands.add_parser("user", help="platform users (admins)").add_subparsers(dest="action", required=True)
    create = user.add_parser("create", help="create a user; without --password-stdin a password is generated and "
                             "printed once")
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--password-stdin", action="store_true", help="read the user's password from stdin")
    create.add_argument("--cluster", action="append", default=[], metavar="NAME",
                        help="the role holds only in this cluster (repeat; default: everywhere; not for admins)")
    listed = user.add_parser("list", help="list users")
    listed.add_argument("--json", action="store_true")
    delete = user.add_parser("delete", help="delete a user")
    delete.add_argument("name")
    for sub in (create, listed, delete):
        _connection_flags(sub)

    token = commands.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    make = token.add_parser("create", help="create an API token; it is printed once")
    make.add_argument("--scope", action="append", metavar="S", choices=[p.value for p in Permission],
                      help="a permission the token holds (repeat; default: all of yours)")
    make.add_argument("--expires", default="30d", metavar="DURATION", help="lifetime: 30d, 12h, 90m (default: 30d)")
    make.add_argument("--name", default="", metavar="N", help="what the token is for")
    tokens = token.add_parser("list", help="list API tokens (yours; an admin's: everyone's)")
    tokens.add_argument("--json", action="store_true")
    drop = token.add_parser("delete", help="delete an API token")
    drop.add_argument("id")
    for sub in (make, tokens, drop):
        _connection_flags(sub)
    _add_target_parsers(commands)
    from . import task_cli  # it takes its helpers from this module: imported once this one is

    task_cli.add_parsers(commands)


def _add_target_parsers(commands: Any) -> None:
    host = commands.add_parser("host", help="hosts: live state, cordon").add_subparsers(dest="action", required=True)
    hosts = host.add_parser("list", help="list hosts, live (and those gone, as down)")
    hosts.add_argument("--cluster", default="", metavar="C", help="only the hosts of this cluster")
    hosts.add_argument("--state", default="", choices=HOST_STATES, help="only the hosts in this state")
    hosts.add_argument("--label", action="append", default=[], metavar="K=V", help="only hosts with this label "
                       "(repeat: all must match)")
    hosts.add_argument("--json", action="store_true")
    show = host.add_parser("show", help="one host, as JSON")
    show.add_argument("id")
    cordon = host.add_parser("cordon", help="cordon a host: it is chosen as no parent")
    cordon.add_argument("id")
    uncordon = host.add_parser("uncordon", help="lift a host's cordon")
    uncordon.add_argument("id")
    for sub in (hosts, show, cordon, uncordon):
        _connection_flags(sub)

    cluster = commands.add_parser("cluster", help="clusters: named groups of hosts").add_subparsers(
        dest="action", required=True)
    create = cluster.add_parser("create", help="create a cluster; its join token is printed once")
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--label", action="append", default=[], metavar="K=V",
                        help="a label the cluster's hosts have (repeat: a selector, all must match)")
    create.add_argument("--cidr", action="append", default=[], metavar="CIDR", help="hosts whose address is in it "
                        "(repeat)")
    create.add_argument("--hostname", action="append", default=[], metavar="H",
                        help="hosts of this name, globs allowed: 'web-*' (repeat)")
    clusters = cluster.add_parser("list", help="list clusters")
    clusters.add_argument("--json", action="store_true")
    one = cluster.add_parser("show", help="one cluster, as JSON")
    one.add_argument("name")
    delete = cluster.add_parser("delete", help="delete a cluster")
    delete.add_argument("name")
    rotate = cluster.add_parser("token", help="a new join token for the cluster, printed once; the old one stops")
    rotate.add_argument("name")
    for sub in (create, clusters, one, delete, rotate):
        _connection_flags(sub)

    analysis = commands.add_parser("analysis", help="the hosts' traffic: bytes from the upstream and from peers, "
                                   "the upstream egress saved")
    analysis.add_argument("--since", default="24h", metavar="DURATION", help="how far back: 24h, 7d (default: 24h)")
    analysis.add_argument("--step", default="hour", choices=("hour", "day"), help="one line per hour or per day")
    whose = analysis.add_mutually_exclusive_group()
    whose.add_argument("--cluster", default="", metavar="N", help="only the hosts of this cluster")
    whose.add_argument("--host", default="", metavar="ID", help="only this host")
    whose.add_argument("--task", default="", metavar="ID", help="one task's figures: duration, per-host p50/p95/max, "
                       "success rate, bytes from the upstream and from peers")
    whose.add_argument("--tasks", action="store_true", help="the figures of every task created in --since")
    shape = analysis.add_mutually_exclusive_group()
    shape.add_argument("--csv", action="store_true", help="CSV, with a header line")
    shape.add_argument("--json", action="store_true")
    _connection_flags(analysis)


def run(args: argparse.Namespace) -> int:
    name = " ".join(part for part in (args.command, getattr(args, "action", None)) if part)
    from . import task_cli

    key = (args.command, getattr(args, "action", None))
    try:
        (_HANDLERS.get(key) or task_cli.HANDLERS[key])(args)
    except (ClientError, CommandError) as exc:
        print(f"damselfly {name}: {exc}", file=sys.stderr)
        return 1
    return 0


def _server(args: argparse.Namespace) -> str:
    server = args.server or os.environ.get(SERVER_ENV, "")
    if not server:
        stored = session_file.load()
        server = stored.server if stored else ""
    if not server:
        raise CommandError(f"which manager? give --server URL, set ${SERVER_ENV}, or `damselfly login` first")
    if not server.startswith(("http://", "https://")):
        raise CommandError(f"--server: expected a URL like http://HOST:PORT, got {server[:80]!r}")
    return server.rstrip("/")


def _client(args: argparse.Namespace) -> ManagerClient:
    server = _server(args)
    token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV, "")
    if not token:
        stored = session_file.load()
        if stored and stored.server.rstrip("/") == server:
            token = stored.token
    if not token:
        raise CommandError(f"not logged in to {server}: `damselfly login`, or give a token in ${TOKEN_ENV}")
    return ManagerClient(server, token)


def _read_password(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(prompt)
    else:
        raise CommandError("no password: give --password-stdin and the password on stdin")
    if not password:
        raise CommandError("the password is empty")
    return password


def _login(args: argparse.Namespace) -> None:
    server = _server(args)
    password = _read_password(args.password_stdin, f"password of {args.username}: ")
    with ManagerClient(server) as client:
        session = client.login(args.username, password)
    where = session_file.save(session_file.StoredSession(server, session["token"], args.username, session["expires"]))
    print(f"logged in to {server} as {args.username} until {session['expires']} (session in {where})")


def _logout(args: argparse.Namespace) -> None:
    stored = session_file.load()
    try:
        with _client(args) as client:
            client.logout()
    except ClientError as exc:
        # A session that already ended is as good as ended; the file goes either way.
        if exc.status != 401:
            raise
    session_file.remove()
    print("logged out" + (f" of {stored.server}" if stored else ""))


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = [columns, *[[_cell(row.get(c)) for c in columns] for row in rows]]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def _user_create(args: argparse.Namespace) -> None:
    from manager.passwords import generate_password  # argon2's import only where a password is made

    generated = not args.password_stdin
    password = generate_password() if generated else _read_password(True, "")
    with _client(args) as client:
        user = client.create_user(args.name, args.role, password, args.cluster)
    where = f" in clusters {','.join(user['clusters'])}" if user.get("clusters") else ""
    print(f"created user {user['name']} ({user['role']}{where})")
    if generated:
        print(f"password: {password}")
        print("(shown this once: pass it on safely; the user changes it with PUT /api/v1/me/password)",
              file=sys.stderr)


def _user_list(args: argparse.Namespace) -> None:
    with _client(args) as client:
        users = client.users()
    if args.json:
        print(json.dumps(users, indent=2))
    else:
        _print_table([dict(u) for u in users], ["name", "role", "clusters", "disabled", "created"])


def _user_delete(args: argparse.Namespace) -> None:
    with _client(args) as client:
        client.delete_user(args.name)
    print(f"deleted user {args.name}")


def _token_create(args: argparse.Namespace) -> None:
    with _client(args) as client:
        made = client.create_token(args.scope, args.expires, args.name)
    # The token alone on stdout, so that `T=$(damselfly token create ...)` works; what it is on stderr.
    print(made["token"])
    print(f"token {made['id']} ({','.join(made['scopes'])}) until {made['expires']}: shown this once",
          file=sys.stderr)


def _token_list(args: argparse.Namespace) -> None:
    with _client(args) as client:
        tokens = client.tokens()
    if args.json:
        print(json.dumps(tokens, indent=2))
    else:
        _print_table([dict(t) for t in tokens], ["id", "name", "user", "scopes", "expires", "last_used"])


def _token_delete(args: argparse.Namespace) -> None:
    with _client(args) as client:
        client.delete_token(args.id)
    print(f"deleted token {args.id}")


def _host_list(args: argparse.Namespace) -> None:
    with _client(args) as client:
        hosts = client.hosts(args.cluster, args.state, args.label)
    if args.json:
        print(json.dumps(hosts, indent=2))
        return
    rows = [{**h, "cordoned": "yes" if h.get("cordoned") else "", "disk": _disk(h.get("disk") or {}),
             "labels": [f"{k}={v}" for k, v in sorted((h.get("labels") or {}).items())]} for h in hosts]
    _print_table(rows, ["id", "hostname", "state", "address", "labels", "disk", "swarms", "cordoned", "last_seen"])


def _disk(disk: dict[str, Any]) -> str:
    used, total = disk.get("used") or 0, disk.get("total") or 0
    return f"{_bytes(used)}/{_bytes(total)}" if total else _bytes(used)


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return str(count)


def _host_show(args: argparse.Namespace) -> None:
    with _client(args) as client:
        print(json.dumps(client.host(args.id), indent=2))


def _host_cordon(args: argparse.Namespace) -> None:
    cordoned = args.action == "cordon"
    with _client(args) as client:
        host = client.cordon(args.id, cordoned)
    print(f"{'cordoned' if cordoned else 'uncordoned'} host {host['id']}")
    if not host.get("scheduler_told", True):
        print("(a supernode did not hear of it: the cordon is stored and told again at the next change or start of "
              "the manager; see docs/platform.md)", file=sys.stderr)


def _cluster_create(args: argparse.Namespace) -> None:
    labels: dict[str, str] = {}
    for text in args.label:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise CommandError(f"--label: expected KEY=VALUE, got {text[:64]!r}")
        labels[key] = value
    with _client(args) as client:
        made = client.create_cluster(args.name, args.description, labels, args.cidr, args.hostname)
    # The token alone on stdout, as `token create` does; what it is on stderr.
    print(made["token"])
    print(f"cluster {made['name']} created; its join token is shown this once", file=sys.stderr)


def _cluster_list(args: argparse.Namespace) -> None:
    with _client(args) as client:
        clusters = client.clusters()
    if args.json:
        print(json.dumps(clusters, indent=2))
        return
    rows = [{**c, "labels": [f"{k}={v}" for k, v in sorted(c["labels"].items())]} for c in clusters]
    _print_table(rows, ["name", "labels", "cidrs", "hostnames", "description", "created"])


def _cluster_show(args: argparse.Namespace) -> None:
    with _client(args) as client:
        print(json.dumps(client.cluster(args.name), indent=2))


def _cluster_delete(args: argparse.Namespace) -> None:
    with _client(args) as client:
        client.delete_cluster(args.name)
    print(f"deleted cluster {args.name}")


def _cluster_token(args: argparse.Namespace) -> None:
    with _client(args) as client:
        made = client.rotate_cluster_token(args.name)
    print(made["token"])
    print(f"cluster {made['name']}: a new join token, shown this once; the old one no longer works", file=sys.stderr)


def _analysis(args: argparse.Namespace) -> None:
    if args.task or args.tasks:
        _task_analysis(args)
        return
    with _client(args) as client:
        if args.csv:
            sys.stdout.write(client.traffic_csv(args.since, args.step, args.cluster, args.host))
            return
        answer = client.traffic(args.since, args.step, args.cluster, args.host)
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    rows = [*answer["series"], {**answer["totals"], "start": "total"}]
    shown = [{**row, **{name: _bytes(row[name]) for name in _TRAFFIC}, "saved": _ratio(row["saved_ratio"])}
             for row in rows]
    _print_table(shown, ["start", *_TRAFFIC, "saved"])


_TRAFFIC = ("fetched_upstream", "fetched_peers", "served_peers", "served_clients")
_TASK_FIGURES = ("id", "state", "duration", "hosts", "succeeded", "failed", "success_rate", "host_p50", "host_p95",
                 "host_max", "from_upstream", "from_peers", "saved")


def _task_analysis(args: argparse.Namespace) -> None:
    with _client(args) as client:
        if args.csv:
            if args.task:
                raise CommandError("--csv goes with --tasks (every task of --since), not --task")
            sys.stdout.write(client.tasks_figures_csv(args.since))
            return
        answer = client.task_figures(args.task) if args.task else client.tasks_figures(args.since)
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    figures = [answer] if args.task else answer["tasks"]
    shown = [{**f, "from_upstream": _bytes(f["from_upstream"]), "from_peers": _bytes(f["from_peers"]),
              "success_rate": _ratio(f["success_rate"]), "saved": _ratio(f["saved_ratio"]),
              **{k: "-" if f[k] is None else f"{f[k]:.1f}s" for k in ("duration", "host_p50", "host_p95", "host_max")}}
             for f in figures]
    _print_table(shown, list(_TASK_FIGURES))
    for figure in figures:
        for failed in figure["failed_hosts"]:
            print(f"task {figure['id']}: host {failed['host']} failed: {failed['error']}")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


_HANDLERS: dict[tuple[str, str | None], Callable[[argparse.Namespace], None]] = {
    ("login", None): _login,
    ("logout", None): _logout,
    ("user", "create"): _user_create,
    ("user", "list"): _user_list,
    ("user", "delete"): _user_delete,
    ("token", "create"): _token_create,
    ("token", "list"): _token_list,
    ("token", "delete"): _token_delete,
    ("host", "list"): _host_list,
    ("host", "show"): _host_show,
    ("host", "cordon"): _host_cordon,
    ("host", "uncordon"): _host_cordon,
    ("cluster", "create"): _cluster_create,
    ("cluster", "list"): _cluster_list,
    ("cluster", "show"): _cluster_show,
    ("cluster", "delete"): _cluster_delete,
    ("cluster", "token"): _cluster_token,
    ("analysis", None): _analysis,
}
