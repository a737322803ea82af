"""`steth tail PATH_OR_GLOB... --service NAME`: follow log files into the collector.

Follows like `tail -F` (globs re-evaluated, rename and copytruncate rotation, truncation,
deletion and re-creation) and sends every line, multiline records joined, as an OTLP log record.
Offsets are kept in a state file (docs/formats/tail-state.md) and committed only once the
collector has acknowledged the lines before them: no line is lost or sent twice across a restart.
Ctrl-C or SIGTERM flushes, commits and exits 0 with a one-line summary on stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stethoscope.cli import common
from stethoscope.errors import UsageError
from stethoscope.model.timeutil import NS_PER_S, parse_duration_ns

if TYPE_CHECKING:
    from stethoscope.sources.tail import TailSummary

__all__ = ["register", "run"]

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"


def register(subparsers: Any) -> None:
    """Add `tail` to the CLI."""
    parser = subparsers.add_parser(
        "tail", help="follow log files (globs, rotation) and send their lines to the collector"
    )
    parser.add_argument("paths", nargs="+", metavar="PATH_OR_GLOB", help="files or globs to follow")
    parser.add_argument("--service", required=True, help="service.name of the records")
    parser.add_argument("--instance", help="service.instance.id (default: this host's name)")
    parser.add_argument(
        "--from-start",
        action="store_true",
        help="at the first start, read files that already exist from their beginning",
    )
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("STETH_ENDPOINT") or DEFAULT_ENDPOINT,
        help=f"OTLP/HTTP collector (default: $STETH_ENDPOINT or {DEFAULT_ENDPOINT})",
    )
    parser.add_argument("--token", help="bearer token of the collector (default: $STETH_TOKEN)")
    parser.add_argument(
        "--state",
        type=Path,
        help="offsets file (default: ~/.local/state/stethoscope/tail/<service>@<instance>.json)",
    )
    parser.add_argument(
        "--exclude", action="append", default=[], help="glob of paths to skip (repeatable)"
    )
    parser.add_argument(
        "--max-line-bytes", type=int, default=64 * 1024, help="longer lines are cut (65536)"
    )
    parser.add_argument(
        "--rotate-wait",
        default="5s",
        help="how long a rotated or deleted file is still read after its last new line (5s)",
    )
    parser.add_argument("--poll-interval", default="250ms", help="time between checks (250ms)")
    parser.add_argument(
        "--spool-mib",
        type=float,
        default=32,
        help="records waiting for the collector; reading pauses when half full (32)",
    )
    parser.add_argument(
        "--flush-timeout",
        default="5s",
        help="at exit, how long to wait for the collector to take what is left (5s)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Follow until SIGINT/SIGTERM; print the summary; exit 0."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
    try:
        summary = _follow(args, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(summary.text(), file=sys.stderr)
    return 0


def _follow(args: argparse.Namespace, stop: threading.Event) -> TailSummary:
    from stethoscope.sources.tail import TailConfig, Tailer, default_instance, default_state_path

    instance = args.instance or default_instance()
    spool = int(args.spool_mib * 2**20)
    config = TailConfig(
        patterns=tuple(_absolute(path) for path in args.paths),
        service=args.service,
        instance=instance,
        state_path=(args.state or default_state_path(args.service, instance)).absolute(),
        exclude=tuple(_absolute(pattern) for pattern in args.exclude),
        from_start=args.from_start,
        endpoint=args.endpoint,
        token=common.token(args),
        max_line_bytes=args.max_line_bytes,
        rotate_wait_s=_seconds("--rotate-wait", args.rotate_wait),
        poll_interval_s=_seconds("--poll-interval", args.poll_interval),
        flush_timeout_s=_seconds("--flush-timeout", args.flush_timeout),
        spool_bytes=spool,
        # One read of one file must fit in the spool many times over: short lines grow about
        # tenfold as records, and reading only pauses between reads.
        read_chunk_bytes=max(1, min(256 * 1024, spool // 64)),
    )
    return Tailer(config).run(stop)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _seconds(flag: str, text: str) -> float:
    try:
        return parse_duration_ns(text) / NS_PER_S
    except UsageError as error:
        raise UsageError(f"{flag}: {error}") from None


def _absolute(path: str) -> str:
    """`~` expanded and made absolute; wildcards kept."""
    return os.path.abspath(os.path.expanduser(path))
