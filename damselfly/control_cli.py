"""The platform's commands over its API (manager/client.py): `login`, `logout`, `user ...`, `token ...`.

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

from manager.client import ClientError, ManagerClient
from manager.passwords import generate_password
from manager.permissions import Permission, Role

from . import session_file

COMMANDS = ("login", "logout", "user", "token")
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


def run(args: argparse.Namespace) -> int:
    name = " ".join(part for part in (args.command, getattr(args, "action", None)) if part)
    try:
        _HANDLERS[(args.command, getattr(args, "action", None))](args)
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
    generated = not args.password_stdin
    password = generate_password() if generated else _read_password(True, "")
    with _client(args) as client:
        user = client.create_user(args.name, args.role, password)
    print(f"created user {user['name']} ({user['role']})")
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
        _print_table([dict(u) for u in users], ["name", "role", "disabled", "created"])


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


_HANDLERS: dict[tuple[str, str | None], Callable[[argparse.Namespace], None]] = {
    ("login", None): _login,
    ("logout", None): _logout,
    ("user", "create"): _user_create,
    ("user", "list"): _user_list,
    ("user", "delete"): _user_delete,
    ("token", "create"): _token_create,
    ("token", "list"): _token_list,
    ("token", "delete"): _token_delete,
}
