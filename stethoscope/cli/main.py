"""The `steth` command: one module per command group, each thin."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from stethoscope import __version__
from stethoscope.errors import DataError, UsageError

# Each command's module, in the order `steth --help` lists them. Only the invoked command's
# module is imported and registered: importing and registering all of them took ~20 ms of
# every command's start-up (a test checks this table against the modules).
COMMANDS = {
    "up": "up",
    "services": "query",
    "traces": "query",
    "trace": "query",
    "logs": "query",
    "metrics": "query",
    "why": "why",
    "events": "events",
    "templates": "events",
    "import": "importing",
    "parse": "parse",
    "scrape": "scrape",
    "run": "run",
    "tail": "tail",
    "demo": "demo",
    "watch": "watch",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: for `command` alone when it is one, none for `--version`, else for
    every command."""
    parser = argparse.ArgumentParser(
        prog="steth", description="Find what broke in a distributed system, where, and why."
    )
    parser.add_argument("--version", action="version", version=f"steth {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command == "--version":
        wanted = []  # no command's module (they took ~40 ms to import)
    elif command in COMMANDS:
        wanted = [COMMANDS[command]]
    else:  # the whole list: for --help, and in the error an unknown command gets
        wanted = list(COMMANDS.values())
    for module in dict.fromkeys(wanted):
        importlib.import_module(f"stethoscope.cli.{module}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit 2 on usage errors, 1 on data errors."""
    given = sys.argv[1:] if argv is None else argv
    parser = build_parser(given[0] if given else None)
    args = parser.parse_args(given)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except UsageError as error:
        print(f"steth {args.command}: {error}", file=sys.stderr)
        return 2
    except DataError as error:
        print(f"steth {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader left (`steth logs | head`): stop quietly, as other command-line tools do.
        # Python flushes stdout once more at exit; pointed at /dev/null, that is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
