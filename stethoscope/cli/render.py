"""Terminal rendering of query results with rich.

Every renderer is a pure function ``render_X(data, console)`` over the JSON-ready result dicts
the query commands print with ``--json`` (ids as hex strings, times as int ns since the epoch,
UTC). Renderers only choose styles; whether colour is emitted is the console's decision, so
piped output is plain text. Everything that came from the observed system (names, bodies,
attribute values) goes into ``Text`` objects, never through rich markup, and has its control
characters made visible so a log line cannot drive the user's terminal.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stethoscope.model.timeutil import format_duration_ns, format_ns

__all__ = [
    "render_logs",
    "render_metric",
    "render_metric_list",
    "render_services",
    "render_trace",
    "render_traces",
]

Record = Mapping[str, Any]

# Below this width tables print times of day (the date goes in the caption) and trees use a
# shorter timing bar, so that an 80-column terminal still shows whole trace ids.
_WIDE = 120
_BAR_WIDE = 30
_BAR_NARROW = 20
_DURATION_CELLS = 8
_STATUS_CELLS = 6
_SPARK_WIDE = 24
_SPARK_NARROW = 12
_SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
_FEW_INSTANCES = 3
_MAX_KEY_ATTRIBUTES = 4
_STATEMENT_CELLS = 60
_BODY_LINES_IN_TREE = 10
_CONTINUATION = "    "
# Later lines of a log body under a span start past the offset and severity columns.
_TREE_BODY_INDENT = " " * (_DURATION_CELLS + 2) + _CONTINUATION
_SERVICE_STYLES = ("cyan", "magenta", "green", "blue", "yellow", "bright_cyan", "bright_magenta")

# Control characters (except tab and newline) shown as escapes: bodies come from untrusted programs.
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if c not in (9, 10)}

# Attribute groups worth a line under a span, in display order; the first alias present wins.
_KEY_ATTRIBUTES: tuple[tuple[str, ...], ...] = (
    ("http.request.method", "http.method"),
    ("http.route",),
    ("url.full", "http.url", "http.target"),
    ("http.response.status_code", "http.status_code"),
    ("db.system",),
    ("db.statement",),
    ("rpc.method",),
    ("messaging.destination.name",),
    ("exception.type",),
)


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _clean(value: object) -> str:
    """Text from the observed system, with control characters made visible."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, default=str, ensure_ascii=False)
    return value.translate(_CONTROL)


def _one_line(value: object) -> str:
    """Like ``_clean`` but folded onto one line, for names and attribute values."""
    return _clean(value).replace("\r\n", "\n").replace("\n", "⏎").replace("\t", " ")


def _count(value: object) -> str:
    """An integer count with thousands separators; anything else as text."""
    return f"{value:,}" if isinstance(value, int) else _one_line(value)


def _number(value: object) -> str:
    """A metric value, compactly (integers exact, floats to 6 significant digits)."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return _one_line(value)


def _duration(ns: object) -> str:
    """A span or trace duration for people; negative or missing counts as zero."""
    return format_duration_ns(max(0, int(ns))) if isinstance(ns, int | float) else "-"


def _table(*headers: str, right: Iterable[str] = (), no_wrap: Iterable[str] = ()) -> Table:
    """A borderless table in the style of ``docker ps``: cheap on narrow terminals."""
    table = Table(box=None, pad_edge=False, header_style="bold underline", caption_style="dim")
    right, no_wrap = set(right), set(no_wrap)
    for header in headers:
        table.add_column(
            header,
            justify="right" if header in right else "left",
            no_wrap=header in no_wrap,
            overflow="fold",  # names are shown whole, folded if need be, so they can be copied
        )
    return table


def _empty(console: Console, message: str) -> None:
    """The one line printed instead of an empty table."""
    console.print(Text(message, style="dim"))


class _Clock:
    """How the times in one table print.

    Wide consoles get full ISO-8601 stamps. Narrow ones get the UTC time of day to the second
    when every time shares a date (named in the caption), or date and time on two lines.
    """

    def __init__(self, times: Iterable[object], console: Console) -> None:
        stamps = [format_ns(t) for t in times if isinstance(t, int) and t > 0]
        self.narrow = console.width < _WIDE
        dates = {stamp[:10] for stamp in stamps}
        self.date = dates.pop() if self.narrow and len(dates) == 1 else None

    @property
    def caption(self) -> str | None:
        """The table caption saying what narrow times leave out."""
        if not self.narrow:
            return None
        return f"times are UTC on {self.date}" if self.date else "times are UTC"

    def cell(self, ns: object) -> Text:
        """One time as a table cell."""
        if not isinstance(ns, int) or ns <= 0:
            return Text("-", style="dim")
        stamp = format_ns(ns)
        if not self.narrow:
            return Text(stamp)
        # Seconds are enough to scan a narrow table; --json and wide consoles keep milliseconds.
        day, time_of_day = stamp[:10], stamp[11:19]
        return Text(time_of_day if self.date else f"{day}\n{time_of_day}")


def _severity(record: Record) -> tuple[str, str]:
    """A log record's level label and the style it prints in."""
    number = record.get("severity_number") or 0
    text = _one_line(record.get("severity_text")).upper()
    names = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
    if not isinstance(number, int) or not 1 <= number <= 24:
        number = 0
    label = text or (names[(number - 1) // 4] if number else "-")
    level = (number - 1) // 4 if number else _level_from_text(label)
    styles = ("dim", "dim", "", "yellow", "red", "bold red")
    return label, styles[level] if level >= 0 else ""


def _level_from_text(label: str) -> int:
    """The OTel level (0 TRACE .. 5 FATAL) a severity text names, or -1 if unknown."""
    for level, prefixes in (
        (5, ("FATAL", "CRIT", "EMERG", "ALERT", "PANIC")),
        (4, ("ERR", "SEVERE")),
        (3, ("WARN",)),
        (1, ("DEBUG",)),
        (0, ("TRACE",)),
        (2, ("INFO", "NOTICE")),
    ):
        if label.startswith(prefixes):
            return level
    return -1


# ---------------------------------------------------------------------------------------------
# services


def render_services(data: Sequence[Record], console: Console) -> None:
    """A table of services: instances, first and last seen, signal counts and errors."""
    if not data:
        _empty(console, "no services in this window")
        return
    clock = _Clock(
        (t for s in data for t in (s.get("first_seen_ns"), s.get("last_seen_ns"))), console
    )
    table = _table(
        "service", "instances", "first seen", "last seen", "spans", "logs", "points", "errors",
        right=("spans", "logs", "points", "errors"),
        no_wrap=("first seen", "last seen", "spans", "logs", "points", "errors"),
    )  # fmt: skip
    table.caption = clock.caption
    for service in data:
        table.add_row(
            Text(_one_line(service.get("service")), style="bold"),
            _instances_cell(service.get("instances") or []),
            clock.cell(service.get("first_seen_ns")),
            clock.cell(service.get("last_seen_ns")),
            Text(_count(service.get("spans", 0))),
            Text(_count(service.get("logs", 0))),
            Text(_count(service.get("metric_points", 0))),
            _errors_cell(service),
        )
    console.print(table)


def _instances_cell(instances: Sequence[Record]) -> Text:
    """The instance count, and their names when there are only a few."""
    cell = Text(str(len(instances)))
    if 0 < len(instances) <= _FEW_INSTANCES:
        names = ", ".join(_one_line(i.get("instance")) or "-" for i in instances)
        cell.append(f" ({names})", style="dim")
    return cell


def _errors_cell(service: Record) -> Text:
    """Error spans plus error logs, red when there are any."""
    errors = (service.get("error_spans") or 0) + (service.get("error_logs") or 0)
    return Text(_count(errors), style="bold red" if errors else "")


# ---------------------------------------------------------------------------------------------
# traces


def render_traces(data: Sequence[Record], console: Console) -> None:
    """A table of traces in the order given (newest first), with copyable full trace ids."""
    if not data:
        _empty(console, "no matching traces")
        return
    clock = _Clock((t.get("start_ns") for t in data), console)
    # Narrow consoles fold service and operation into one column to leave room for the id.
    roots = ("root",) if clock.narrow else ("service", "operation")
    table = _table(
        "time", "trace id", *roots, "duration", "spans", "error",
        right=("duration", "spans"),
        no_wrap=("time", "trace id", "duration", "spans", "error"),
    )  # fmt: skip
    table.caption = clock.caption
    for trace in data:
        service = Text(_one_line(trace.get("root_service")), style="bold")
        operation = Text(_one_line(trace.get("root_operation")))
        root = [Text.assemble(service, "\n", operation)] if clock.narrow else [service, operation]
        table.add_row(
            clock.cell(trace.get("start_ns")),
            Text(_one_line(trace.get("trace_id"))),
            *root,
            Text(_duration(trace.get("duration_ns"))),
            Text(_count(trace.get("span_count", 0))),
            Text("error", style="bold red") if trace.get("error") else Text(""),
        )
    console.print(table)


# ---------------------------------------------------------------------------------------------
# one trace


@dataclass(frozen=True)
class _Layout:
    """Where the columns of a trace tree fall on one console, and the trace's time span."""

    start_ns: int
    total_ns: int
    width: int
    bar_width: int
    label_width: int
    styles: Mapping[str, str]

    @classmethod
    def of(cls, spans: Sequence[Record], width: int) -> _Layout:
        """The layout for these spans on a console this wide."""
        start = min(_start(s) for s in spans)
        end = max(_start(s) + _length(s) for s in spans)
        bar = _BAR_WIDE if width >= _WIDE else _BAR_NARROW
        label = max(10, width - bar - _DURATION_CELLS - _STATUS_CELLS - 3)
        services = sorted({_one_line(s.get("service")) for s in spans})
        styles = {
            name: _SERVICE_STYLES[i % len(_SERVICE_STYLES)] for i, name in enumerate(services)
        }
        return cls(start, max(1, end - start), width, bar, label, styles)

    @property
    def indent_limit(self) -> int:
        """The most cells tree guides may take before deep levels are folded."""
        return self.label_width // 2


@dataclass(frozen=True)
class _Node:
    """One span placed in the tree: the guides drawn before it and before its details."""

    span: Record
    depth: int
    guide: str
    detail_guide: str
    note: str


def _ns(record: Record, key: str) -> int:
    """An integer nanosecond field, zero when missing or malformed."""
    value = record.get(key)
    return value if isinstance(value, int) else 0


def _start(span: Record) -> int:
    return _ns(span, "start_ns")


def _length(span: Record) -> int:
    return max(0, _ns(span, "duration_ns"))


def render_trace(data: Record, console: Console) -> None:
    """A trace as an indented span tree with timing bars, key attributes, events and logs."""
    spans: Sequence[Record] = data.get("spans") or []
    logs: Sequence[Record] = data.get("logs") or []
    trace_id = _one_line(data.get("trace_id"))
    if not spans:
        console.print(Text.assemble("trace ", (trace_id, "bold")))
        _empty(console, f"no spans in trace {trace_id}")
        _print_lines(console, _other_logs(logs))
        return
    layout = _Layout.of(spans, console.width)
    console.print(_trace_header(trace_id, spans, layout))
    by_span, others = _logs_by_span(logs, {str(s.get("span_id")) for s in spans})
    lines = [_column_header(layout)]
    for node in _walk(spans):
        lines.append(_span_line(node, layout))
        lines.extend(_span_details(node, by_span.get(str(node.span.get("span_id")), []), layout))
    lines.extend(_other_logs(others))
    _print_lines(console, lines)


def _print_lines(console: Console, lines: Sequence[Text]) -> None:
    """Print pre-laid-out lines in one call (fast for thousands of spans), never wrapping."""
    if lines:
        console.print(Text("\n").join(lines), no_wrap=True, overflow="ellipsis", crop=True)


def _trace_header(trace_id: str, spans: Sequence[Record], layout: _Layout) -> Text:
    """Trace id, total duration, span count, services and start time."""
    services = ", ".join(layout.styles)
    return Text.assemble(
        "trace ", (trace_id, "bold"),
        "  ", (format_duration_ns(layout.total_ns), "bold"),
        f"  {len(spans):,} spans\n",
        f"started {format_ns(layout.start_ns)}  services: {services}",
    )  # fmt: skip


def _column_header(layout: _Layout) -> Text:
    """Column names above the tree; the bar column is labelled with its time scale."""
    scale = format_duration_ns(layout.total_ns)
    ruler = "0" + scale.rjust(layout.bar_width - 1)
    head = " ".join(
        [
            "span".ljust(layout.label_width),
            "duration".rjust(_DURATION_CELLS),
            "status".ljust(_STATUS_CELLS),
            "",
        ]
    )
    return Text(head[: layout.width - layout.bar_width] + ruler, style="dim")


def _tree_shape(spans: Sequence[Record]) -> tuple[list[int], dict[str, list[int]], set[int]]:
    """Root span indexes, child indexes by parent id, and which roots lost their parent."""
    ids = {str(s.get("span_id")) for s in spans}
    children: dict[str, list[int]] = defaultdict(list)
    roots: list[int] = []
    orphans: set[int] = set()
    for index, span in enumerate(spans):
        parent = str(span.get("parent_span_id") or "")
        if parent and parent in ids and parent != str(span.get("span_id")):
            children[parent].append(index)
            continue
        roots.append(index)
        if parent and parent not in ids:
            orphans.add(index)

    def order(i: int) -> tuple[int, int]:
        return (_start(spans[i]), i)

    roots.sort(key=lambda i: (_start(spans[i]), i in orphans, i))
    for kids in children.values():
        kids.sort(key=order)
    return roots, children, orphans


def _walk(spans: Sequence[Record]) -> Iterator[_Node]:
    """Spans in tree order, depth first, iteratively so that deep traces cannot overflow.

    Spans caught in a parent cycle are reachable from no root; they are shown as extra roots.
    """
    roots, children, orphans = _tree_shape(spans)
    seen: set[int] = set()
    notes = {i: "(parent missing)" for i in orphans}
    yield from _walk_from(spans, roots, children, seen, notes)
    for index in sorted(range(len(spans)), key=lambda i: (_start(spans[i]), i)):
        if index not in seen:
            yield from _walk_from(spans, [index], children, seen, {index: "(parent cycle)"})


def _walk_from(
    spans: Sequence[Record],
    roots: Sequence[int],
    children: Mapping[str, Sequence[int]],
    seen: set[int],
    notes: Mapping[int, str],
) -> Iterator[_Node]:
    """Depth-first walk from these roots with an explicit stack, skipping spans already shown."""
    # Stack entries: (span index, depth, guide before the span, guide base for its children).
    stack = [(i, 0, "", "") for i in reversed(roots)]
    while stack:
        index, depth, guide, base = stack.pop()
        if index in seen:
            continue
        seen.add(index)
        kids = [k for k in children.get(str(spans[index].get("span_id")), ()) if k not in seen]
        detail = base + ("│  " if kids else "   ")
        yield _Node(spans[index], depth, guide, detail, notes.get(index, ""))
        for position in range(len(kids) - 1, -1, -1):
            last = position == len(kids) - 1
            child_guide = base + ("└─ " if last else "├─ ")
            child_base = base + ("   " if last else "│  ")
            stack.append((kids[position], depth + 1, child_guide, child_base))


def _fold_guide(guide: str, depth: int, limit: int) -> str:
    """Tree guides cut to ``limit`` cells; deep levels show their depth instead."""
    if len(guide) <= limit:
        return guide
    mark = f"[{depth}]"
    return mark + guide[len(guide) - max(0, limit - len(mark)) :]


def _span_line(node: _Node, layout: _Layout) -> Text:
    """One span: guides, service, operation, duration, status and timing bar."""
    span = node.span
    service = _one_line(span.get("service"))
    label = Text(_fold_guide(node.guide, node.depth, layout.indent_limit), style="dim")
    label.append(service, style=f"bold {layout.styles.get(service, '')}")
    label.append(" " + _one_line(span.get("name")))
    if node.note:
        label.append(" " + node.note, style="yellow")
    label.truncate(layout.label_width, overflow="ellipsis", pad=True)
    error = span.get("status_code") == "error"
    status = {"error": ("error", "bold red"), "ok": ("ok", "green")}.get(
        str(span.get("status_code")), ("", "")
    )
    line = Text.assemble(label, " ", _duration(span.get("duration_ns")).rjust(_DURATION_CELLS))
    line.append(" ")
    line.append(status[0].ljust(_STATUS_CELLS), style=status[1])
    line.append(" ")
    line.append_text(_bar(span, layout, "red" if error else layout.styles.get(service, "")))
    return line


def _bar(span: Record, layout: _Layout, style: str) -> Text:
    """The span's place in the trace: offset and width proportional, at least one cell."""
    cells = layout.bar_width
    offset = (_start(span) - layout.start_ns) * cells // layout.total_ns
    offset = min(max(0, offset), cells - 1)
    width = max(1, round(_length(span) * cells / layout.total_ns))
    width = min(width, cells - offset)
    return Text.assemble(" " * offset, ("█" * width, style))


def _span_details(node: _Node, logs: Sequence[Record], layout: _Layout) -> list[Text]:
    """Lines under a span: error message, key attributes, then events and logs by time."""
    span = node.span
    lines: list[Text] = []
    if span.get("status_code") == "error" and span.get("status_message"):
        lines.append(Text("error: " + _one_line(span.get("status_message")), style="red"))
    attributes = _key_attributes(span.get("attributes") or {})
    if attributes:
        lines.append(Text(attributes, style="dim"))
    timed = [(_ns(e, "time_ns"), 0, i, _event_line(e, span)) for i, e in enumerate(_events(span))]
    timed += [(_ns(r, "time_ns"), 1, i, _span_log_line(r, span)) for i, r in enumerate(logs)]
    for _, _, _, text in sorted(timed, key=lambda item: item[:3]):
        lines.extend(text)
    guide = Text(_fold_guide(node.detail_guide, node.depth, layout.indent_limit), style="dim")
    return [_fit(Text.assemble(guide, line), layout.width) for line in lines]


def _fit(line: Text, width: int) -> Text:
    """A line cut to the console width with an ellipsis."""
    line.truncate(width, overflow="ellipsis")
    return line


def _key_attributes(attributes: Mapping[str, Any]) -> str:
    """At most four well-known attributes as ``key=value``, statements shortened."""
    shown: list[str] = []
    for group in _KEY_ATTRIBUTES:
        key = next((k for k in group if attributes.get(k) not in (None, "")), None)
        if key is None:
            continue
        value = " ".join(_one_line(attributes[key]).split())
        if key == "db.statement" and len(value) > _STATEMENT_CELLS:
            value = value[: _STATEMENT_CELLS - 1] + "…"
        shown.append(f"{key}={value}")
        if len(shown) == _MAX_KEY_ATTRIBUTES:
            break
    return "  ".join(shown)


def _events(span: Record) -> list[Record]:
    events = span.get("events") or []
    return [e for e in events if isinstance(e, Mapping)]


def _offset(time_ns: int, span: Record) -> str:
    """Time since the span started, signed, padded to line up."""
    delta = time_ns - _start(span)
    sign = "-" if delta < 0 else "+"
    return f"{sign}{format_duration_ns(abs(delta))}".rjust(_DURATION_CELLS)


def _event_line(event: Record, span: Record) -> list[Text]:
    """A span event; exception events show type and message in red."""
    name = _one_line(event.get("name"))
    line = Text(_offset(_ns(event, "time_ns"), span) + "  ")
    if name == "exception":
        attrs = event.get("attributes") or {}
        kind = _one_line(attrs.get("exception.type")) or "exception"
        message = _one_line(attrs.get("exception.message"))
        line.append(f"exception {kind}" + (f": {message}" if message else ""), style="red")
    else:
        line.append("event ", style="dim")
        line.append(name)
    return [line]


def _span_log_line(record: Record, span: Record) -> list[Text]:
    """A log record under its span: offset, severity, body (first lines of long bodies)."""
    label, style = _severity(record)
    head = Text(_offset(_ns(record, "time_ns"), span) + "  ")
    head.append(f"{label:<5}", style=style)
    head.append(" ")
    body = _body_lines(record.get("body"))
    head.append(body[0] if body else "")
    rest = [Text(_TREE_BODY_INDENT + line) for line in body[1:]]
    if len(rest) > _BODY_LINES_IN_TREE:
        more = len(rest) - _BODY_LINES_IN_TREE
        rest = [
            *rest[:_BODY_LINES_IN_TREE],
            Text(f"{_TREE_BODY_INDENT}… {more} more lines", style="dim"),
        ]
    return [head, *rest]


def _other_logs(logs: Sequence[Record]) -> list[Text]:
    """Log records of the trace that belong to none of its spans, under their own heading."""
    if not logs:
        return []
    ordered = sorted(logs, key=lambda r: _ns(r, "time_ns"))
    return [Text("other log records", style="bold"), *(_log_line(r) for r in ordered)]


def _logs_by_span(
    logs: Sequence[Record], span_ids: set[str]
) -> tuple[dict[str, list[Record]], list[Record]]:
    """Log records grouped under the span they name, and those naming no span of the trace."""
    by_span: dict[str, list[Record]] = defaultdict(list)
    others: list[Record] = []
    for record in logs:
        span_id = str(record.get("span_id") or "")
        if span_id and span_id in span_ids:
            by_span[span_id].append(record)
        else:
            others.append(record)
    return by_span, others


# ---------------------------------------------------------------------------------------------
# logs


def render_logs(data: Sequence[Record], console: Console) -> None:
    """One line per log record, in the order given, so the output can be grepped."""
    if not data:
        _empty(console, "no matching log records")
        return
    for record in data:
        # soft_wrap: long lines are left whole for the terminal (and grep) rather than cut.
        console.print(_log_line(record), soft_wrap=True)


def _log_line(record: Record) -> Text:
    """time severity service[/instance] body [trace=xxxxxxxx]; later body lines indented."""
    label, style = _severity(record)
    line = Text(format_ns(_ns(record, "time_ns")), style="dim")
    line.append(" ")
    line.append(f"{label:<5}", style=style)
    who = _one_line(record.get("service")) or "-"
    instance = _one_line(record.get("instance"))
    line.append(" " + who + (f"/{instance}" if instance else ""), style="cyan")
    body = _body_lines(record.get("body"))
    line.append(" " + (body[0] if body else ""))
    trace_id = _one_line(record.get("trace_id"))
    if trace_id:
        line.append(f" trace={trace_id[:8]}", style="dim")
    event_name = _one_line(record.get("event_name"))
    if event_name:
        line.append(f" event={event_name}", style="dim")
    for extra in body[1:]:
        line.append("\n" + _CONTINUATION + extra)
    return line


def _body_lines(body: object) -> list[str]:
    """A log body as display lines: strings keep their line breaks, other values become JSON."""
    text = _clean(body).replace("\t", "    ")
    return text.rstrip("\r\n").splitlines()


# ---------------------------------------------------------------------------------------------
# metrics


def render_metric_list(data: Record, console: Console) -> None:
    """A table of metrics: name, type, unit, series and point counts, services, last seen."""
    metrics: Sequence[Record] = data.get("metrics") or []
    if not metrics:
        _empty(console, "no metrics in this window")
        return
    clock = _Clock((m.get("last_ns") for m in metrics), console)
    table = _table(
        "name", "type", "unit", "series", "points", "services", "last seen",
        right=("series", "points"),
        no_wrap=("series", "points", "last seen"),
    )  # fmt: skip
    table.caption = clock.caption
    for metric in metrics:
        services = ", ".join(_one_line(s) for s in metric.get("services") or [])
        table.add_row(
            Text(_one_line(metric.get("name")), style="bold"),
            Text(_one_line(metric.get("type"))),
            Text(_one_line(metric.get("unit"))),
            Text(_count(metric.get("series", 0))),
            Text(_count(metric.get("points", 0))),
            Text(services),
            clock.cell(metric.get("last_ns")),
        )
    console.print(table)


def render_metric(data: Record, console: Console) -> None:
    """One metric: a header, then a row per series with its last value and a sparkline."""
    name = _one_line(data.get("name"))
    console.print(_metric_header(data))
    series: Sequence[Record] = data.get("series") or []
    if not series:
        _empty(console, f"no series for metric {name}")
        return
    spark = _SPARK_WIDE if console.width >= _WIDE else _SPARK_NARROW
    table = _table("service", "instance", "attributes", "last", "trend", no_wrap=("trend",))
    for one in series:
        points = _points(one)
        table.add_row(
            Text(_one_line(one.get("service")), style="bold"),
            Text(_one_line(one.get("instance"))),
            Text(_attributes_text(one.get("attributes") or {})),
            Text(_last_value(one, points)),
            Text(_sparkline([_point_value(p) for p in points], spark), style="cyan"),
        )
    console.print(table)


def _metric_header(data: Record) -> Text:
    """Name, type, unit and temporality on one line; the description under it."""
    header = Text(_one_line(data.get("name")), style="bold")
    for key in ("type", "unit", "temporality"):
        value = _one_line(data.get(key))
        if value:
            header.append(f"  {key}={value}")
    description = _one_line(data.get("description"))
    if description:
        header.append("\n" + description, style="dim")
    return header


def _points(series: Record) -> list[Record]:
    """A series' points in time order."""
    points = [p for p in series.get("points") or [] if isinstance(p, Mapping)]
    return sorted(points, key=lambda p: p.get("time_ns") or 0)


def _attributes_text(attributes: Mapping[str, Any]) -> str:
    """Series attributes as ``k=v, k=v`` in key order."""
    return ", ".join(f"{_one_line(k)}={_one_line(v)}" for k, v in sorted(attributes.items()))


def _is_distribution(point: Record) -> bool:
    """Whether a point is a histogram or summary (count and sum) rather than a number."""
    return "value" not in point and "count" in point


def _last_value(series: Record, points: Sequence[Record]) -> str:
    """The latest value; for histograms and summaries the count and mean."""
    last = points[-1] if points else None
    if last is not None and _is_distribution(last):
        count = last.get("count") or 0
        mean = _point_value(last)
        return f"count={_count(count)}" + (f" mean={_number(mean)}" if mean is not None else "")
    if series.get("last") is not None:
        return _number(series.get("last"))
    return _number(last.get("value")) if last is not None else "-"


def _point_value(point: Record) -> float | None:
    """The number a point contributes to its sparkline: its value, or its mean."""
    try:
        if _is_distribution(point):
            count = float(point.get("count") or 0)
            return float(point.get("sum") or 0) / count if count > 0 else None
        raw: Any = point.get("value")
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _sparkline(values: Sequence[float | None], width: int) -> str:
    """Values as block characters, averaged into at most ``width`` cells."""
    present = [v for v in values if v is not None]
    if len(present) > width:
        present = [
            _mean(present[i * len(present) // width : (i + 1) * len(present) // width])
            for i in range(width)
        ]
    if not present:
        return ""
    low, high = min(present), max(present)
    if high == low:
        return _SPARK_BLOCKS[3] * len(present)
    top = len(_SPARK_BLOCKS) - 1
    return "".join(_SPARK_BLOCKS[round((v - low) / (high - low) * top)] for v in present)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
