"""The `damselfly` command's entry point: `get` runs without importing the daemons' code (damselfly/cli.py pulls in
uvicorn, the peer, the proxy, the supernode and the platform's client), so fetching a file starts in a blink."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import get_cli


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [get_cli.COMMAND]:
        parser = argparse.ArgumentParser(prog="damselfly")
        get_cli.add_parser(parser.add_subparsers(dest="command", required=True))
        return get_cli.run(parser.parse_args(args))
    from .cli import main as daemons_main

    return daemons_main(args)
