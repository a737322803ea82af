"""What every query command shares: --data, --json, --since/--until, and where answers come from.

With a server running on the data directory the answers come from its API (the server holds the
store's only write lock); otherwise the store is opened read-only in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stethoscope.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from stethoscope.store.base import Window


def default_data_dir() -> Path:
    """$STETH_DATA, else $XDG_DATA_HOME/stethoscope, else ~/.local/share/stethoscope."""
    if os.environ.get("STETH_DATA"):
        return Path(os.environ["STETH_DATA"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "stethoscope"


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """--data and --token."""
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="store directory (default: $STETH_DATA or ~/.local/share/stethoscope)",
    )
    parser.add_argument(
        "--token", default=None, help="bearer token of the server (default: $STETH_TOKEN)"
    )


def add_query_args(parser: argparse.ArgumentParser) -> None:
    """--data, --token, --json, --since, --until."""
    add_data_args(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--since", help="start: ISO-8601, epoch seconds, or a duration like 15m")
    parser.add_argument("--until", help="end: ISO-8601, epoch seconds, or a duration like 5m")


def data_dir(args: argparse.Namespace) -> Path:
    """The data directory the user chose."""
    return Path(args.data) if args.data else default_data_dir()


def token(args: argparse.Namespace) -> str | None:
    """The token the user gave, or $STETH_TOKEN."""
    return args.token or os.environ.get("STETH_TOKEN") or None


def window(args: argparse.Namespace) -> Window:
    """The --since/--until window, checked."""
    # Imported here: `steth trace` takes no window, and the store's query types (dataclasses)
    # and the time parser were ~9 ms of its start-up.
    from stethoscope.model.timeutil import parse_time_ns
    from stethoscope.store.base import Window

    since = parse_time_ns(args.since) if args.since else None
    until = parse_time_ns(args.until) if args.until else None
    if since is not None and until is not None and since > until:
        raise UsageError("--since is after --until")
    return Window(since_ns=since, until_ns=until)


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def console() -> Console:
    """The terminal console for rendered output."""
    from rich.console import Console

    return Console(highlight=False)
