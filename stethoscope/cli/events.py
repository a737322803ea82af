"""`steth templates` and `steth events`: what the log records say beyond their text."""

from __future__ import annotations

import argparse
from typing import Any

from stethoscope.cli import common
from stethoscope.cli.source import open_source
from stethoscope.errors import UsageError
from stethoscope.store.base import EventQuery, TemplateQuery


def register(subparsers: Any) -> None:
    """Add `templates` and `events` to the CLI."""
    templates = subparsers.add_parser(
        "templates", help="log templates with counts, most frequent first"
    )
    common.add_query_args(templates)
    templates.add_argument("--service")
    templates.add_argument("--limit", type=int, default=50, help="the N most frequent (50)")
    templates.set_defaults(handler=run_templates)

    events = subparsers.add_parser("events", help="events (lifecycle, probes, ...), oldest first")
    common.add_query_args(events)
    events.add_argument("--service")
    events.add_argument("--name", help="event name, e.g. process.exit")
    events.add_argument("--limit", type=int, default=100, help="the newest N events (100)")
    events.set_defaults(handler=run_events)


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise UsageError(f"--{name} must be at least 1, got {value}")
    return value


def run_templates(args: argparse.Namespace) -> int:
    query = TemplateQuery(
        window=common.window(args),
        service=args.service,
        limit=_positive("limit", args.limit),
    )
    with open_source(common.data_dir(args), common.token(args)) as source:
        rows = source.templates(query)
    if args.json:
        common.print_json({"templates": rows})
    else:
        from stethoscope.cli import render  # rich loads only when something is drawn

        render.render_templates(rows, common.console())
    return 0


def run_events(args: argparse.Namespace) -> int:
    query = EventQuery(
        window=common.window(args),
        service=args.service,
        name=args.name,
        limit=_positive("limit", args.limit),
    )
    with open_source(common.data_dir(args), common.token(args)) as source:
        rows = source.events(query)
    if args.json:
        common.print_json({"events": rows})
    else:
        from stethoscope.cli import render  # rich loads only when something is drawn

        render.render_events(rows, common.console())
    return 0
