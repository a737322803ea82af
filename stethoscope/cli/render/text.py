"""What every renderer shares: safe text, table and time cells, severities."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stethoscope.model.timeutil import format_duration_ns, format_ns

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


def _ns(record: Record, key: str) -> int:
    """An integer nanosecond field, zero when missing or malformed."""
    value = record.get(key)
    return value if isinstance(value, int) else 0


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
