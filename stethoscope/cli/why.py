"""`steth why`: the ranked suspects of an incident window, with their evidence."""

from __future__ import annotations

import argparse
from typing import Any

from stethoscope.cli import common
from stethoscope.cli.source import ApiSource, open_source
from stethoscope.errors import UsageError
from stethoscope.model.timeutil import now_ns, parse_time_ns

DEFAULT_WINDOW = "15m"


def register(subparsers: Any) -> None:
    """Add `steth why` to the CLI."""
    why = subparsers.add_parser("why", help="rank the likely root causes of an incident window")
    common.add_query_args(why)
    why.add_argument(
        "--baseline",
        help="START..END of a healthy period to compare with (default: the period before)",
    )
    why.add_argument("--service", help="only what this service depends on, itself included")
    why.set_defaults(handler=run_why)


def parse_baseline(text: str | None) -> tuple[int, int] | None:
    """'START..END' (each ISO-8601, epoch seconds or a duration ago) as a ns pair."""
    if not text:
        return None
    start, separator, end = text.partition("..")
    if not separator or not start or not end:
        raise UsageError(f"--baseline must be START..END, got {text!r}")
    baseline = parse_time_ns(start), parse_time_ns(end)
    if baseline[1] <= baseline[0]:
        raise UsageError("--baseline must end after it starts")
    return baseline


def why_request(args: argparse.Namespace) -> tuple[int, int, tuple[int, int] | None]:
    """The window (default: the last 15 minutes) and baseline the user asked for."""
    until = parse_time_ns(args.until) if args.until else now_ns()
    since = parse_time_ns(args.since or DEFAULT_WINDOW)
    if since >= until:
        raise UsageError("--since must be before --until")
    return since, until, parse_baseline(args.baseline)


def run_why(args: argparse.Namespace) -> int:
    """Print the report: suspects, their evidence, other findings."""
    since, until, baseline = why_request(args)
    with open_source(common.data_dir(args), common.token(args)) as source:
        if isinstance(source, ApiSource):
            report = source.why(since, until, baseline=baseline, service=args.service)
        else:
            from stethoscope.analysis.why import explain, scope_for

            scope = scope_for(since, until, baseline=baseline, service=args.service)
            report = explain(source, scope).to_json()
    if args.json:
        common.print_json(report)
    else:
        from stethoscope.cli.render.why import render_why

        render_why(report, common.console())
    return 0
