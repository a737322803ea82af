"""The `steth` command: one module per command group, each thin."""

from __future__ import annotations

import argparse
import sys

from stethoscope import __version__
from stethoscope.cli import demo as demo_cli
from stethoscope.cli import events as events_cli
from stethoscope.cli import importing, parse, query, scrape, up
from stethoscope.cli import run as run_cli
from stethoscope.cli import tail as tail_cli
from stethoscope.cli import watch as watch_cli
from stethoscope.cli import why as why_cli
from stethoscope.errors import DataError, UsageError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="steth", description="Find what broke in a distributed system, where, and why."
    )
    parser.add_argument("--version", action="version", version=f"steth {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    up.register(subparsers)
    query.register(subparsers)
    why_cli.register(subparsers)
    events_cli.register(subparsers)
    importing.register(subparsers)
    parse.register(subparsers)
    scrape.register(subparsers)
    run_cli.register(subparsers)
    tail_cli.register(subparsers)
    demo_cli.register(subparsers)
    watch_cli.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit 2 on usage errors, 1 on data errors."""
    parser = build_parser()
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
