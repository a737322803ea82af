"""Terminal rendering of query results with rich.

Every renderer is a pure function ``render_X(data, console)`` over the JSON-ready result dicts
the query commands print with ``--json`` (ids as hex strings, times as int ns since the epoch,
UTC). Renderers only choose styles; whether colour is emitted is the console's decision, so
piped output is plain text. Everything that came from the observed system (names, bodies,
attribute values) goes into ``Text`` objects, never through rich markup, and has its control
characters made visible so a log line cannot drive the user's terminal.
"""

from stethoscope.cli.render.events import render_events, render_templates
from stethoscope.cli.render.tables import (
    render_logs,
    render_metric,
    render_metric_list,
    render_services,
    render_traces,
)
from stethoscope.cli.render.trace import render_trace

__all__ = [
    "render_events",
    "render_logs",
    "render_metric",
    "render_metric_list",
    "render_services",
    "render_templates",
    "render_trace",
    "render_traces",
]
