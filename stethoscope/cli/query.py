"""The query commands: services, traces, trace, logs, metrics."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from stethoscope.cli import common
from stethoscope.cli.source import open_source
from stethoscope.errors import UsageError
from stethoscope.server.discovery import read_addresses

# The store's query types (dataclasses) and the time and filter parsers are imported by the
# commands that build a query: `steth trace` builds none, and they were ~10 ms of its start-up.
if TYPE_CHECKING:
    from stethoscope.store.base import LogQuery, Window

FOLLOW_POLL_S = 1.0
FOLLOW_LOOKBACK_NS = 30 * 1_000_000_000
FOLLOW_BATCH = 10_000
SEVERITIES = {
    "TRACE": 1,
    "DEBUG": 5,
    "INFO": 9,
    "WARN": 13,
    "WARNING": 13,
    "ERROR": 17,
    "FATAL": 21,
}


def parse_severity(text: str) -> int:
    """'>=WARN', 'ERROR' or '>=13' as the lowest severity number to show."""
    value = text.strip().upper().removeprefix(">=").strip()
    if value.isdigit() and 1 <= int(value) <= 24:
        return int(value)
    if value in SEVERITIES:
        return SEVERITIES[value]
    raise UsageError(
        f"unknown severity {text!r} (use >=LEVEL with one of: TRACE, DEBUG, INFO, WARN, "
        "ERROR, FATAL, or a number 1-24)"
    )


def register(subparsers: Any) -> None:
    """Add the query commands to the CLI."""
    services = subparsers.add_parser("services", help="every service with counts and errors")
    common.add_query_args(services)
    services.set_defaults(handler=run_services)

    traces = subparsers.add_parser("traces", help="find traces, newest first")
    common.add_query_args(traces)
    traces.add_argument("--service")
    traces.add_argument("--operation", help="span name")
    traces.add_argument("--errors", action="store_true", help="only traces with an error span")
    traces.add_argument("--min-duration", help="e.g. 250ms: a span at least this long")
    traces.add_argument("--attr", action="append", default=[], help="key=value (repeatable)")
    traces.add_argument("--limit", type=int, default=20)
    traces.set_defaults(handler=run_traces)

    trace = subparsers.add_parser("trace", help="one trace as a tree, with its logs")
    common.add_query_args(trace)
    trace.add_argument("trace_id", help="32 hex digits, or the first 8+ as log lines show them")
    trace.set_defaults(handler=run_trace)

    logs = subparsers.add_parser("logs", help="log records, oldest first")
    common.add_query_args(logs)
    logs.add_argument("text", nargs="?", help="case-insensitive text in the body")
    logs.add_argument("--service")
    logs.add_argument("--severity", help="e.g. >=WARN")
    logs.add_argument("--trace", help="trace id")
    logs.add_argument("--limit", type=int, default=200, help="the newest N records (200)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    logs.set_defaults(handler=run_logs)

    metrics = subparsers.add_parser("metrics", help="metric names, or one metric's series")
    common.add_query_args(metrics)
    metrics.add_argument("name", nargs="?")
    metrics.add_argument("--service")
    metrics.add_argument("--points", type=int, default=20, help="recent points per series")
    metrics.set_defaults(handler=run_metrics)


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise UsageError(f"--{name} must be at least 1, got {value}")
    return value


def run_services(args: argparse.Namespace) -> int:
    with open_source(common.data_dir(args), common.token(args)) as source:
        rows = source.services(common.window(args))
    if args.json:
        common.print_json({"services": rows})
    else:
        from stethoscope.cli import render  # rich loads only when something is drawn

        render.render_services(rows, common.console())
    return 0


def run_traces(args: argparse.Namespace) -> int:
    from stethoscope.model.timeutil import parse_duration_ns
    from stethoscope.server.queryparams import parse_attribute_filter
    from stethoscope.store.base import TraceQuery

    query = TraceQuery(
        window=common.window(args),
        service=args.service,
        operation=args.operation,
        errors_only=args.errors,
        min_duration_ns=parse_duration_ns(args.min_duration) if args.min_duration else None,
        attributes=tuple(parse_attribute_filter(text) for text in args.attr),
        limit=_positive("limit", args.limit),
    )
    with open_source(common.data_dir(args), common.token(args)) as source:
        rows = source.traces(query)
    if args.json:
        common.print_json({"traces": rows})
    else:
        from stethoscope.cli import render  # rich loads only when something is drawn

        render.render_traces(rows, common.console())
    return 0


def run_trace(args: argparse.Namespace) -> int:
    with open_source(common.data_dir(args), common.token(args)) as source:
        found = source.trace(_full_trace_id(source, args.trace_id))
    if found is None:
        raise UsageError(f"no trace {args.trace_id} in this store")
    if args.json:
        common.print_json(found)
    else:
        from stethoscope.cli import render  # rich loads only when something is drawn

        render.render_trace(found, common.console())
    return 0


def _full_trace_id(source: Any, given: str) -> str:
    """The full id for a prefix as log lines print it (8+ digits); ambiguity is an error."""
    if len(given.strip()) == 32:
        return given
    found = source.trace_ids(given)
    if len(found) == 1:
        return str(found[0])
    if not found:
        raise UsageError(f"no trace id starts with {given}")
    raise UsageError(f"{given} is ambiguous; it starts: {', '.join(found)} (give more digits)")


def _log_query(args: argparse.Namespace, window: Window) -> LogQuery:
    from stethoscope.store.base import LogQuery

    return LogQuery(
        window=window,
        text=args.text,
        service=args.service,
        min_severity=parse_severity(args.severity) if args.severity else None,
        trace_id=args.trace,
        limit=_positive("limit", args.limit),
        newest_first=True,
    )


def run_logs(args: argparse.Namespace) -> int:
    data = common.data_dir(args)
    if args.follow and read_addresses(data) is None:
        raise UsageError(f"--follow needs a running server on {data} (start `steth up`)")
    window = common.window(args)
    with open_source(data, common.token(args)) as source:
        rows = list(reversed(source.logs(_log_query(args, window))))
        _print_logs(args, rows)
        if args.follow:
            _follow(args, source, window, rows)
    return 0


def _print_logs(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    # Following prints one JSON object per line, so that each arrives as it is found.
    if args.json and args.follow:
        for row in rows:
            sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()
    elif args.json:
        common.print_json({"logs": rows})
    elif rows or not args.follow:
        from stethoscope.cli import render  # rich loads only when something is drawn

        render.render_logs(rows, common.console())


def _follow(
    args: argparse.Namespace, source: Any, window: Window, rows: list[dict[str, Any]]
) -> None:
    # Records reach the store late (batching, slow exporters, skewed clocks), so each poll looks
    # back FOLLOW_LOOKBACK_NS before the newest time seen and skips what was already printed.
    from dataclasses import replace

    from stethoscope.store.base import Window

    seen = {_log_key(row): row["time_ns"] for row in rows}
    newest = max(seen.values(), default=window.since_ns or time.time_ns())
    try:
        while True:
            time.sleep(FOLLOW_POLL_S)
            query = _log_query(args, Window(since_ns=newest - FOLLOW_LOOKBACK_NS))
            found = reversed(source.logs(replace(query, limit=FOLLOW_BATCH)))
            fresh = [row for row in found if _log_key(row) not in seen]
            if not fresh:
                continue
            _print_logs(args, fresh)
            seen.update((_log_key(row), row["time_ns"]) for row in fresh)
            newest = max(newest, *(row["time_ns"] for row in fresh))
            seen = {key: t for key, t in seen.items() if t >= newest - FOLLOW_LOOKBACK_NS}
    except KeyboardInterrupt:
        return


def _log_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["time_ns"], row["service"], row["instance"], row["span_id"], row["body"])


def run_metrics(args: argparse.Namespace) -> int:
    from stethoscope.store.base import MetricQuery

    query = MetricQuery(
        window=common.window(args),
        name=args.name,
        service=args.service,
        points_per_series=_positive("points", args.points),
    )
    with open_source(common.data_dir(args), common.token(args)) as source:
        result = source.metrics(query)
    if args.json:
        common.print_json(result)
    else:
        from stethoscope.cli import render  # rich loads only when something is drawn

        draw = render.render_metric if args.name else render.render_metric_list
        draw(result, common.console())
    return 0
