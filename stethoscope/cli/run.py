"""`steth run [OPTIONS] -- CMD ARGS...`: supervise any program and report it to the collector.

Its output still reaches the terminal unchanged; every line also becomes a log record; its
lifecycle, fingerprint, process metrics and (with --probe) health become events and metrics.
`steth run` exits with the child's last exit status (128+N when a signal N ended it).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from stethoscope.errors import UsageError
from stethoscope.model.timeutil import NS_PER_S, parse_duration_ns

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"


def register(subparsers: Any) -> None:
    """Add `run` to the CLI."""
    parser = subparsers.add_parser(
        "run",
        help="supervise a program: its output, lifecycle and metrics go to the collector",
        usage="steth run [OPTIONS] -- CMD ARGS...",
    )
    parser.add_argument(
        "--service", metavar="NAME", help="service.name (default: the command's name)"
    )
    parser.add_argument(
        "--instance",
        metavar="ID",
        help="service.instance.id (default: host:pid of steth run, the same across restarts)",
    )
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        default=DEFAULT_ENDPOINT,
        help=f"OTLP/HTTP collector ({DEFAULT_ENDPOINT})",
    )
    parser.add_argument(
        "--token", metavar="T", help="bearer token of the collector (default: $STETH_TOKEN)"
    )
    parser.add_argument(
        "--restart",
        metavar="POLICY",
        default="no",
        help="no (default), on-failure (non-zero exit or signal), always",
    )
    duration = "DURATION"
    parser.add_argument(
        "--restart-delay",
        metavar=duration,
        default="1s",
        help="first pause before a restart; doubles each time (1s)",
    )
    parser.add_argument(
        "--max-restart-delay",
        metavar=duration,
        default="30s",
        help="longest pause before a restart (30s)",
    )
    parser.add_argument(
        "--crash-loop-restarts",
        metavar="N",
        type=int,
        default=5,
        help="this many restarts within --crash-loop-window are a crash loop (5)",
    )
    parser.add_argument(
        "--crash-loop-window", metavar=duration, default="5m", help="see above (5m)"
    )
    parser.add_argument("--probe", metavar="URL", help="HTTP health probe of the program")
    parser.add_argument("--probe-every", metavar=duration, default="5s", help="(5s)")
    parser.add_argument("--probe-timeout", metavar=duration, default="2s", help="(2s)")
    parser.add_argument(
        "--probe-grace",
        metavar=duration,
        default="10s",
        help="failures before the first success within this time are no down event (10s)",
    )
    parser.add_argument(
        "--metrics-every", metavar=duration, default="5s", help="process metrics interval (5s)"
    )
    parser.add_argument(
        "--flush-timeout",
        metavar=duration,
        default="5s",
        help="at exit, how long to wait for the collector to take what is left (5s)",
    )
    parser.add_argument(
        "--no-instrument",
        action="store_true",
        help="no OpenTelemetry auto-instrumentation for a Python program",
    )
    parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD", help="-- CMD ARGS...")
    parser.set_defaults(handler=run)


def _seconds(flag: str, text: str) -> float:
    try:
        return parse_duration_ns(text) / NS_PER_S
    except UsageError as error:
        raise UsageError(f"{flag}: {error}") from None


def run(args: argparse.Namespace) -> int:
    """Build the configuration from the arguments and supervise the command."""
    from stethoscope.sources.run.config import RestartPolicy, RunConfig, default_instance
    from stethoscope.sources.run.runner import run_command

    command = list(args.argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("no command given: use `steth run [OPTIONS] -- CMD ARGS...`")
    config = RunConfig(
        command=tuple(command),
        service=args.service or Path(command[0]).name,
        instance=args.instance or default_instance(),
        endpoint=args.endpoint,
        token=args.token or os.environ.get("STETH_TOKEN") or None,
        instrument=not args.no_instrument,
        restart=RestartPolicy.parse(args.restart),
        backoff_initial_s=_seconds("--restart-delay", args.restart_delay),
        backoff_max_s=_seconds("--max-restart-delay", args.max_restart_delay),
        crash_loop_restarts=args.crash_loop_restarts,
        crash_loop_window_s=_seconds("--crash-loop-window", args.crash_loop_window),
        probe_url=args.probe,
        probe_every_s=_seconds("--probe-every", args.probe_every),
        probe_timeout_s=_seconds("--probe-timeout", args.probe_timeout),
        probe_grace_s=_seconds("--probe-grace", args.probe_grace),
        metrics_every_s=_seconds("--metrics-every", args.metrics_every),
        flush_timeout_s=_seconds("--flush-timeout", args.flush_timeout),
    )
    return run_command(config)
