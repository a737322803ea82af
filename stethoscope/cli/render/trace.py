"""One trace as an indented tree with timing bars, its events and log records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.text import Text

from stethoscope.cli.render.text import (
    _BAR_NARROW,
    _BAR_WIDE,
    _BODY_LINES_IN_TREE,
    _DURATION_CELLS,
    _KEY_ATTRIBUTES,
    _MAX_KEY_ATTRIBUTES,
    _SERVICE_STYLES,
    _STATEMENT_CELLS,
    _STATUS_CELLS,
    _TREE_BODY_INDENT,
    _WIDE,
    Record,
    _body_lines,
    _duration,
    _empty,
    _log_line,
    _ns,
    _one_line,
    _severity,
)
from stethoscope.model.timeutil import format_duration_ns, format_ns

__all__ = ["render_trace"]

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


def _start(span: Record) -> int:
    return _ns(span, "start_ns")


def _length(span: Record) -> int:
    return max(0, _ns(span, "duration_ns"))


def render_trace(data: Record, console: Console) -> None:
    """A trace as an indented span tree with timing bars, key attributes, events and logs.

    Spans and records carrying a `clock_offset_ns` are drawn at their corrected times, with a
    note naming each instance whose clock was corrected.
    """
    spans: Sequence[Record] = [_corrected_span(s) for s in data.get("spans") or []]
    logs: Sequence[Record] = [_corrected(r, "time_ns") for r in data.get("logs") or []]
    trace_id = _one_line(data.get("trace_id"))
    if not spans:
        console.print(Text.assemble("trace ", (trace_id, "bold")))
        _empty(console, f"no spans in trace {trace_id}")
        _print_lines(console, _other_logs(logs))
        return
    layout = _Layout.of(spans, console.width)
    console.print(_trace_header(trace_id, spans, layout))
    _print_lines(console, _clock_notes(data.get("clock_corrections") or []))
    by_span, others = _logs_by_span(logs, {str(s.get("span_id")) for s in spans})
    lines = [_column_header(layout)]
    for node in _walk(spans):
        lines.append(_span_line(node, layout))
        lines.extend(_span_details(node, by_span.get(str(node.span.get("span_id")), []), layout))
    lines.extend(_other_logs(others))
    _print_lines(console, lines)


def _clock_offset(record: Record) -> int:
    offset = record.get("clock_offset_ns")
    return offset if isinstance(offset, int) and not isinstance(offset, bool) else 0


def _corrected(record: Record, *keys: str) -> Record:
    """The record with its times moved by its clock offset (itself when there is none)."""
    offset = _clock_offset(record)
    if not offset:
        return record
    moved = dict(record)
    for key in keys:
        moved[key] = _ns(record, key) + offset
    return moved


def _corrected_span(span: Record) -> Record:
    """A span and its events at corrected times."""
    offset = _clock_offset(span)
    if not offset:
        return span
    events = [
        _corrected({**event, "clock_offset_ns": offset}, "time_ns") for event in _events(span)
    ]
    return {**_corrected(span, "start_ns"), "events": events}


def _clock_notes(corrections: Sequence[Any]) -> list[Text]:
    """One line per instance whose clock the timeline corrects."""
    notes = []
    for item in corrections:
        if not isinstance(item, Mapping):
            continue
        offset = _clock_offset({"clock_offset_ns": item.get("offset_ns")})
        if not offset:
            continue
        name = _one_line(item.get("instance")) or _one_line(item.get("service"))
        sign = "-" if offset < 0 else "+"
        notes.append(
            Text(
                f"{name}: clock corrected by {sign}{format_duration_ns(abs(offset))} "
                "(its spans sat outside their callers')",
                style="yellow",
            )
        )
    return notes


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
