"""Services, traces, log records and metrics as tables and lines."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from stethoscope.cli.render.events import state_label
from stethoscope.cli.render.text import (
    _FEW_INSTANCES,
    _SPARK_BLOCKS,
    _SPARK_NARROW,
    _SPARK_WIDE,
    _WIDE,
    Record,
    _Clock,
    _count,
    _duration,
    _empty,
    _log_line,
    _number,
    _one_line,
    _table,
)

__all__ = [
    "render_logs",
    "render_metric",
    "render_metric_list",
    "render_services",
    "render_traces",
]

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
    """The instance count; a few are named with their state, many get counts per state."""
    cell = Text(str(len(instances)))
    if 0 < len(instances) <= _FEW_INSTANCES:
        cell.append(" (", style="dim")
        for index, instance in enumerate(instances):
            if index:
                cell.append(", ", style="dim")
            cell.append(_one_line(instance.get("instance")) or "-", style="dim")
            label = state_label(instance)
            if label is not None:
                cell.append(" ")
                cell.append_text(label)
        cell.append(")", style="dim")
        return cell
    labels = Counter(label.plain for label in map(state_label, instances) if label is not None)
    if labels:
        summary = ", ".join(f"{count} {label}" for label, count in sorted(labels.items()))
        cell.append(f" ({summary})", style="dim")
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
# logs


def render_logs(data: Sequence[Record], console: Console) -> None:
    """One line per log record, in the order given, so the output can be grepped."""
    if not data:
        _empty(console, "no matching log records")
        return
    for record in data:
        # soft_wrap: long lines are left whole for the terminal (and grep) rather than cut.
        console.print(_log_line(record), soft_wrap=True)


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
