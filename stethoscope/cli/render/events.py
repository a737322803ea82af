"""Log templates as a table, events as lines, and an instance's lifecycle state as a label."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from stethoscope.cli.render.text import Record, _Clock, _count, _empty, _ns, _one_line, _table
from stethoscope.model.timeutil import format_ns

__all__ = ["render_events", "render_templates", "state_label"]

_MAX_EVENT_ATTRIBUTES = 8
_EVENT_VALUE_CELLS = 60
_EXAMPLE_CELLS = 120
_STATE_STYLES = {"running": "green", "restarting": "yellow", "crash_loop": "bold red"}


def render_templates(data: Sequence[Record], console: Console) -> None:
    """A table of templates in the order given (most frequent first), each with an example."""
    if not data:
        _empty(console, "no log templates in this window")
        return
    clock = _Clock(
        (t for row in data for t in (row.get("first_seen_ns"), row.get("last_seen_ns"))), console
    )
    # The template goes last, so that its wrapped lines read on; narrow consoles drop first seen.
    seen = ("last seen",) if clock.narrow else ("first seen", "last seen")
    table = _table(
        "count", "template id", "service", *seen, "template",
        right=("count",),
        no_wrap=("count", "template id", *seen),
    )  # fmt: skip
    table.caption = clock.caption
    for row in data:
        template = Text(_one_line(row.get("template")))
        example = _one_line(row.get("example"))
        if example and example != template.plain:
            template.append("\ne.g. " + _shorten(example, _EXAMPLE_CELLS), style="dim")
        times = [clock.cell(row.get(key + "_seen_ns")) for key in ("first", "last")]
        table.add_row(
            Text(_count(row.get("count", 0)), style="bold"),
            Text(_one_line(row.get("template_id"))),
            Text(_one_line(row.get("service")), style="cyan"),
            *times[-len(seen) :],
            template,
        )
    console.print(table)


def render_events(data: Sequence[Record], console: Console) -> None:
    """One line per event: time, service/instance, event name, its attributes as k=v."""
    if not data:
        _empty(console, "no matching events")
        return
    for record in data:
        console.print(_event_line(record), soft_wrap=True)


def _event_line(record: Record) -> Text:
    line = Text(format_ns(_ns(record, "time_ns")), style="dim")
    who = _one_line(record.get("service")) or "-"
    instance = _one_line(record.get("instance"))
    line.append(" " + who + (f"/{instance}" if instance else ""), style="cyan")
    name = _one_line(record.get("event_name"))
    line.append(" " + name, style=_event_style(record))
    attributes = record.get("attributes") or {}
    shown = [(k, v) for k, v in attributes.items() if k != "event.name"]
    for key, value in shown[:_MAX_EVENT_ATTRIBUTES]:
        line.append(f" {_one_line(key)}=", style="dim")
        line.append(_compact(value))
    if len(shown) > _MAX_EVENT_ATTRIBUTES:
        line.append(f" (+{len(shown) - _MAX_EVENT_ATTRIBUTES} more, see --json)", style="dim")
    return line


def _event_style(record: Record) -> str:
    number = record.get("severity_number") or 0
    if isinstance(number, int) and number >= 17:
        return "bold red"
    return "yellow" if isinstance(number, int) and number >= 13 else "bold"


def _compact(value: Any) -> str:
    """An attribute value in a few cells: maps by their size, lists joined, long text cut."""
    if isinstance(value, Mapping):
        return f"{{{len(value)} keys}}"
    if isinstance(value, list):
        return _shorten(" ".join(_one_line(item) for item in value), _EVENT_VALUE_CELLS)
    return _shorten(_one_line(value), _EVENT_VALUE_CELLS)


def _shorten(text: str, cells: int) -> str:
    return text if len(text) <= cells else text[: cells - 1] + "…"


def state_label(instance: Record) -> Text | None:
    """An instance's lifecycle state as a styled label, or None when it reported none."""
    state = instance.get("state")
    if not state:
        return None
    if state == "exited":
        code, signal = instance.get("exit_code"), instance.get("exit_signal")
        detail = f" {_one_line(signal)}" if signal not in (None, "") else ""
        if not detail and code is not None:
            detail = f" {_one_line(code)}"
        failed = bool(detail) and code != 0
        return Text("exited" + detail, style="red" if failed else "dim")
    label = "crash loop" if state == "crash_loop" else _one_line(state)
    return Text(label, style=_STATE_STYLES.get(state, ""))
