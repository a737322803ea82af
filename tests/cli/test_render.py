"""What a user sees from stethoscope.cli.render, on narrow and wide consoles without colour."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console

from stethoscope.cli import render
from stethoscope.cli.render import (
    render_logs,
    render_metric,
    render_metric_list,
    render_services,
    render_trace,
    render_traces,
)
from stethoscope.cli.render.tables import _sparkline

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
MS = 1_000_000
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
WIDTHS = [80, 160]


def show(renderer: Callable[[Any, Console], None], data: Any, width: int = 100) -> str:
    """What the renderer prints on a console this wide that is not a terminal."""
    buffer = io.StringIO()
    renderer(data, Console(file=buffer, width=width, color_system=None))
    return buffer.getvalue()


def span(
    span_id: str,
    parent: str,
    service: str,
    name: str,
    *,
    start_ms: int,
    duration_ms: int,
    status: str = "unset",
    message: str = "",
    attributes: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A span dict as the trace query returns it; ids are short stand-ins."""
    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "service": service,
        "instance": f"{service}-1",
        "name": name,
        "kind": "server",
        "start_ns": T0 + start_ms * MS,
        "duration_ns": duration_ms * MS,
        "status_code": status,
        "status_message": message,
        "attributes": attributes or {},
        "events": events or [],
        "links": [],
        "resource": {"service.name": service},
    }


def log(
    body: Any,
    *,
    at_ms: int = 0,
    service: str = "api",
    instance: str = "",
    severity_number: int = 9,
    severity_text: str = "",
    trace_id: str = "",
    span_id: str = "",
) -> dict[str, Any]:
    """A log record dict as the logs query returns it."""
    return {
        "time_ns": T0 + at_ms * MS,
        "service": service,
        "instance": instance,
        "severity_number": severity_number,
        "severity_text": severity_text,
        "body": body,
        "attributes": {},
        "trace_id": trace_id,
        "span_id": span_id,
        "event_name": "",
    }


def checkout_trace() -> dict[str, Any]:
    """Three levels, two services: frontend -> frontend -> cart (failing), frontend -> cart."""
    exception = {
        "time_ns": T0 + 60 * MS,
        "name": "exception",
        "attributes": {"exception.type": "ConnectionError", "exception.message": "refused"},
    }
    return {
        "trace_id": TRACE_ID,
        "spans": [
            span("s3", "s2", "cart", "SELECT cart", start_ms=50, duration_ms=20,
                 status="error", message="connection refused", events=[exception],
                 attributes={"db.system": "postgresql", "db.statement": "SELECT * FROM carts"}),
            span("s1", "", "frontend", "GET /checkout", start_ms=0, duration_ms=100, status="ok",
                 attributes={"http.request.method": "GET", "http.route": "/checkout"}),
            span("s4", "s1", "cart", "GetCart", start_ms=80, duration_ms=10),
            span("s2", "s1", "frontend", "POST /cart", start_ms=50, duration_ms=30),
        ],
        "logs": [
            log("retrying connection", at_ms=65, service="cart", severity_number=13,
                trace_id=TRACE_ID, span_id="s3"),
            log("pool exhausted", at_ms=55, service="cart", severity_number=17,
                trace_id=TRACE_ID, span_id="s3"),
            log("stray record", at_ms=99, service="cart", trace_id=TRACE_ID, span_id="nope"),
        ],
    }  # fmt: skip


def line_index(lines: list[str], needle: str) -> int:
    """The index of the only line containing needle."""
    found = [i for i, line in enumerate(lines) if needle in line]
    assert len(found) == 1, (needle, found, lines)
    return found[0]


def bar_start(line: str, width: int) -> int:
    """Where a span's timing bar begins within the bar column (the last cells of the line)."""
    bar_cells = 30 if width >= 120 else 20
    return line.ljust(width)[width - bar_cells :].index("█")


# ---------------------------------------------------------------------------------------------
# trace tree


@pytest.mark.parametrize("width", WIDTHS)
def test_trace_tree_is_ordered_by_parent_then_start_and_indented_by_depth(width: int) -> None:
    lines = show(render_trace, checkout_trace(), width).splitlines()
    order = [line_index(lines, name) for name in ("GET /checkout", "POST /cart", "SELECT cart")]
    order.append(line_index(lines, "GetCart"))
    assert order == sorted(order)
    columns = {
        name: lines[line_index(lines, f"{service} {name}")].index(service)
        for service, name in [
            ("frontend", "GET /checkout"),
            ("frontend", "POST /cart"),
            ("cart", "SELECT cart"),
            ("cart", "GetCart"),
        ]
    }
    assert columns["GET /checkout"] < columns["POST /cart"] < columns["SELECT cart"]
    assert columns["GetCart"] == columns["POST /cart"]


@pytest.mark.parametrize("width", WIDTHS)
def test_trace_header_names_id_duration_spans_services_and_start(width: int) -> None:
    out = show(render_trace, checkout_trace(), width)
    header = " ".join(out.splitlines()[:2])
    for expected in (TRACE_ID, "100.0ms", "4 spans", "cart, frontend", "2023-11-14T22:13:20.000Z"):
        assert expected in header


@pytest.mark.parametrize("width", WIDTHS)
def test_child_starting_halfway_has_its_bar_right_of_its_parent(width: int) -> None:
    lines = show(render_trace, checkout_trace(), width).splitlines()
    root = lines[line_index(lines, "GET /checkout")]
    child = lines[line_index(lines, "POST /cart")]
    assert bar_start(root, width) == 0
    assert bar_start(child, width) > bar_start(root, width)
    assert bar_start(child, width) == (20 if width < 120 else 30) // 2


def test_tiny_span_still_gets_one_bar_cell() -> None:
    trace = {
        "trace_id": TRACE_ID,
        "spans": [
            span("a", "", "api", "root", start_ms=0, duration_ms=10_000),
            span("b", "a", "api", "blink", start_ms=9_999, duration_ms=0),
        ],
        "logs": [],
    }
    lines = show(render_trace, trace, 80).splitlines()
    assert lines[line_index(lines, "blink")].count("█") == 1


@pytest.mark.parametrize("width", WIDTHS)
def test_error_status_and_message_shown(width: int) -> None:
    lines = show(render_trace, checkout_trace(), width).splitlines()
    failing = line_index(lines, "SELECT cart")
    assert "error" in lines[failing]
    assert "ok" in lines[line_index(lines, "GET /checkout")]
    assert "error: connection refused" in lines[failing + 1]


def test_key_attributes_and_exception_event_under_their_span() -> None:
    lines = show(render_trace, checkout_trace(), 120).splitlines()
    root = line_index(lines, "GET /checkout")
    assert "http.request.method=GET" in lines[root + 1]
    assert "http.route=/checkout" in lines[root + 1]
    failing = line_index(lines, "SELECT cart")
    assert "db.system=postgresql" in lines[failing + 2]
    assert "db.statement=SELECT * FROM carts" in lines[failing + 2]
    assert "exception ConnectionError: refused" in "\n".join(lines[failing:])


def test_at_most_four_key_attributes_and_long_statements_cut() -> None:
    attributes = {
        "http.method": "POST",
        "http.route": "/q",
        "http.url": "http://x/q",
        "http.status_code": 500,
        "db.system": "mysql",
        "user.id": "u1",
    }
    statement = {"db.system": "mysql", "db.statement": "SELECT " + "col, " * 100 + "x FROM t"}
    trace = {
        "trace_id": TRACE_ID,
        "spans": [
            span("a", "", "api", "many", start_ms=0, duration_ms=5, attributes=attributes),
            span("b", "a", "api", "query", start_ms=1, duration_ms=1, attributes=statement),
        ],
        "logs": [],
    }
    out = show(render_trace, trace, 200)
    assert "http.status_code=500" in out
    assert "db.system=mysql  " not in out.split("query")[0]
    assert "user.id" not in out
    assert "x FROM t" not in out
    assert "db.statement=SELECT col, col," in out


@pytest.mark.parametrize("width", WIDTHS)
def test_logs_are_interleaved_under_their_span_by_time(width: int) -> None:
    lines = show(render_trace, checkout_trace(), width).splitlines()
    failing = line_index(lines, "SELECT cart")
    pool = line_index(lines, "pool exhausted")
    exception = line_index(lines, "ConnectionError")
    retry = line_index(lines, "retrying connection")
    sibling = line_index(lines, "GetCart")
    assert failing < pool < exception < retry < sibling
    assert "ERROR" in lines[pool]
    assert "WARN" in lines[retry]
    assert "+5.0ms" in lines[pool]


def test_logs_matching_no_span_go_last_under_their_own_heading() -> None:
    lines = show(render_trace, checkout_trace(), 100).splitlines()
    heading = line_index(lines, "other log records")
    assert line_index(lines, "stray record") > heading > line_index(lines, "GetCart")


@pytest.mark.parametrize("width", WIDTHS)
def test_span_whose_parent_is_missing_is_an_extra_marked_root(width: int) -> None:
    trace = checkout_trace()
    trace["spans"].append(span("s9", "gone", "cart", "late callback", start_ms=95, duration_ms=1))
    lines = show(render_trace, trace, width).splitlines()
    orphan = lines[line_index(lines, "late callback")]
    assert "(parent missing)" in orphan
    assert orphan.startswith("cart late callback")
    assert sum("(parent missing)" in line for line in lines) == 1


def test_parent_cycle_is_shown_rather_than_lost() -> None:
    trace = {
        "trace_id": TRACE_ID,
        "spans": [
            span("a", "b", "api", "first", start_ms=0, duration_ms=5),
            span("b", "a", "api", "second", start_ms=1, duration_ms=1),
        ],
        "logs": [],
    }
    out = show(render_trace, trace, 100)
    assert "api first (parent cycle)" in out
    assert "second" in out


def test_markup_and_control_characters_in_trace_print_literally() -> None:
    trace = checkout_trace()
    trace["spans"][1]["name"] = "GET /[bold]x[/bold]"
    trace["logs"][0]["body"] = "[red]not red[/red] \x1b[31m"
    out = show(render_trace, trace, 120)
    assert "GET /[bold]x[/bold]" in out
    assert "[red]not red[/red] \\x1b[31m" in out
    assert "\x1b" not in out


@pytest.mark.parametrize("width", WIDTHS)
def test_deep_tree_renders_every_level(width: int) -> None:
    depth = 200
    spans = [span("d0", "", "api", "level 0", start_ms=0, duration_ms=depth + 1)]
    spans += [
        span(f"d{i}", f"d{i - 1}", "api", f"level {i}", start_ms=i, duration_ms=1)
        for i in range(1, depth)
    ]
    lines = show(render_trace, {"trace_id": TRACE_ID, "spans": spans, "logs": []}, width)
    levels = [line for line in lines.splitlines() if " level " in line]
    assert len(levels) == depth
    assert "level 199" in levels[-1]
    assert all(len(line) <= width for line in lines.splitlines())


def test_five_thousand_span_trace_renders_quickly() -> None:
    spans = [span("r", "", "api", "root", start_ms=0, duration_ms=10_000)]
    for i in range(1, 5000):
        parent = "r" if i < 50 else f"x{i % 50 or 1}"
        spans.append(span(f"x{i}", parent, f"svc{i % 7}", f"op{i}", start_ms=i, duration_ms=3))
    logs = [log(f"line {i}", at_ms=i, span_id=f"x{i}") for i in range(1, 5000, 5)]
    started = time.perf_counter()
    out = show(render_trace, {"trace_id": TRACE_ID, "spans": spans, "logs": logs}, 120)
    assert time.perf_counter() - started < 15
    assert sum(1 for line in out.splitlines() if " op" in line and "█" in line) == 4999
    assert "line 4996" in out


def test_trace_without_spans_says_so_and_keeps_its_logs() -> None:
    out = show(render_trace, {"trace_id": TRACE_ID, "spans": [], "logs": [log("alone")]}, 80)
    assert f"no spans in trace {TRACE_ID}" in out
    assert "alone" in out


# ---------------------------------------------------------------------------------------------
# logs


def test_log_lines_show_time_severity_service_instance_body_and_trace() -> None:
    records = [
        log("started", severity_number=9, service="api", instance="host:12"),
        log("slow", severity_number=13, trace_id=TRACE_ID, span_id="s1"),
        log("custom", severity_number=0, severity_text="notice"),
    ]
    lines = show(render_logs, records, 80).splitlines()
    assert lines[0] == "2023-11-14T22:13:20.000Z INFO  api/host:12 started"
    assert lines[1] == "2023-11-14T22:13:20.000Z WARN  api slow trace=4bf92f35"
    assert "NOTICE api custom" in lines[2]


def test_log_body_markup_is_printed_literally() -> None:
    out = show(render_logs, [log("[red]boom[/red] and [bold]x :smile:")], 80)
    assert "[red]boom[/red] and [bold]x :smile:" in out


def test_multiline_body_keeps_its_breaks_indented() -> None:
    body = 'Traceback (most recent call last):\n  File "x.py"\nValueError: bad\n'
    lines = show(render_logs, [log(body, severity_number=17, trace_id=TRACE_ID)], 80).splitlines()
    assert lines[0].endswith("ERROR api Traceback (most recent call last): trace=4bf92f35")
    assert lines[1:] == ['      File "x.py"', "    ValueError: bad"]


def test_long_log_line_is_not_cut_at_console_width() -> None:
    body = "x" * 300
    assert body in show(render_logs, [log(body)], 80)


def test_structured_body_is_shown_as_json() -> None:
    assert '{"user": "u1", "n": 2}' in show(render_logs, [log({"user": "u1", "n": 2})], 80)


# ---------------------------------------------------------------------------------------------
# tables


def traces_list() -> list[dict[str, Any]]:
    return [
        {
            "trace_id": TRACE_ID,
            "root_service": "frontend",
            "root_operation": "GET /checkout",
            "start_ns": T0 + 5 * MS,
            "duration_ns": 1_250 * MS,
            "span_count": 12,
            "services": ["frontend", "cart"],
            "error": True,
        },
        {
            "trace_id": "0" * 31 + "1",
            "root_service": "frontend",
            "root_operation": "GET /",
            "start_ns": T0,
            "duration_ns": 3 * MS,
            "span_count": 1,
            "services": ["frontend"],
            "error": False,
        },
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_traces_table_keeps_full_ids_in_the_given_order(width: int) -> None:
    lines = show(render_traces, traces_list(), width).splitlines()
    first, second = line_index(lines, TRACE_ID), line_index(lines, "0" * 31 + "1")
    assert first < second
    assert "1.25s" in lines[first] and "12" in lines[first] and "error" in lines[first]
    assert "error" not in lines[second]
    assert "22:13:20" in lines[first]
    assert "frontend" in lines[first]
    assert all(len(line) <= width for line in lines)


def test_wide_traces_table_has_full_timestamps_and_separate_operation() -> None:
    lines = show(render_traces, traces_list(), 160).splitlines()
    row = lines[line_index(lines, TRACE_ID)]
    assert "2023-11-14T22:13:20.005Z" in row and "GET /checkout" in row


def test_narrow_table_over_several_days_shows_dates() -> None:
    traces = traces_list()
    traces[1]["start_ns"] = T0 - 86_400 * 10**9
    out = show(render_traces, traces, 80)
    assert "2023-11-14" in out and "2023-11-13" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_services_table(width: int) -> None:
    services = [
        {
            "service": "frontend",
            "instances": [
                {"instance": "host:1", "first_seen_ns": T0, "last_seen_ns": T0},
                {"instance": "host:2", "first_seen_ns": T0, "last_seen_ns": T0},
            ],
            "first_seen_ns": T0,
            "last_seen_ns": T0 + 60_000 * MS,
            "spans": 12345,
            "logs": 7,
            "metric_points": 0,
            "error_spans": 2,
            "error_logs": 1,
        }
    ]
    out = show(render_services, services, width)
    assert "frontend" in out and "host:1" in out and "host:2" in out
    assert "12,345" in out
    assert "22:14:20" in out
    row = out.splitlines()[line_index(out.splitlines(), "frontend")]
    assert row.rstrip().endswith(" 3")
    assert all(len(line) <= width for line in out.splitlines())


def test_services_with_many_instances_show_only_the_count() -> None:
    instances = [
        {"instance": f"host:{i}", "first_seen_ns": T0, "last_seen_ns": T0} for i in range(9)
    ]
    service = {"service": "api", "instances": instances, "first_seen_ns": T0, "last_seen_ns": T0,
               "spans": 1, "logs": 0, "metric_points": 0, "error_spans": 0,
               "error_logs": 0}  # fmt: skip
    out = show(render_services, [service], 120)
    assert " 9 " in out and "host:" not in out


def test_metric_list_table() -> None:
    metrics = {
        "metrics": [
            {
                "name": "http.server.request.duration",
                "type": "histogram",
                "unit": "s",
                "description": "",
                "services": ["frontend", "cart"],
                "series": 3,
                "points": 1500,
                "last_ns": T0,
            }
        ]
    }
    wide = show(render_metric_list, metrics, 160)
    assert "http.server.request.duration" in wide
    assert "histogram" in wide and "1,500" in wide and "frontend, cart" in wide
    narrow = show(render_metric_list, metrics, 80).splitlines()
    assert all(len(line) <= 80 for line in narrow)
    # A long name is folded, never cut, on a narrow console.
    folded = "".join(line.split(" ")[0] for line in narrow[1:3])
    assert folded == "http.server.request.duration"


def one_metric(points: list[dict[str, Any]], metric_type: str = "gauge") -> dict[str, Any]:
    return {
        "name": "queue.depth",
        "type": metric_type,
        "unit": "1",
        "description": "Jobs waiting",
        "temporality": "cumulative",
        "series": [
            {
                "service": "worker",
                "instance": "w-1",
                "attributes": {"queue": "mail", "tier": "b"},
                "points": points,
                "last": points[-1].get("value", 0) if points else 0,
            }
        ],
    }


def test_metric_shows_header_series_last_value_and_sparkline() -> None:
    points = [{"time_ns": T0 + i, "value": v} for i, v in enumerate([0, 1, 2, 3, 4, 5, 6, 7])]
    out = show(render_metric, one_metric(points), 100)
    assert "queue.depth" in out and "type=gauge" in out and "temporality=cumulative" in out
    assert "Jobs waiting" in out
    row = out.splitlines()[line_index(out.splitlines(), "w-1")]
    assert "queue=mail, tier=b" in row
    assert " 7 " in row
    assert "▁▂▃▄▅▆▇█" in row


def test_histogram_series_shows_count_and_mean() -> None:
    points = [
        {"time_ns": T0, "count": 2, "sum": 3.0, "min": 1, "max": 2},
        {"time_ns": T0 + 1, "count": 4, "sum": 10.0, "bucket_counts": [1, 3]},
    ]
    out = show(render_metric, one_metric(points, "histogram"), 100)
    assert "count=4 mean=2.5" in out


def test_histogram_without_observations_has_no_mean() -> None:
    out = show(render_metric, one_metric([{"time_ns": T0, "count": 0, "sum": 0}], "histogram"))
    assert "count=0" in out and "mean" not in out


def test_sparkline_is_bounded_and_flat_series_draws_a_level_line() -> None:
    assert len(_sparkline([float(i) for i in range(1000)], 12)) == 12
    assert _sparkline([2.0, 2.0, 2.0], 12) == "▄▄▄"
    assert _sparkline([None, None], 12) == ""


# ---------------------------------------------------------------------------------------------
# empty results and plain output


@pytest.mark.parametrize(
    ("renderer", "data", "message"),
    [
        pytest.param(render_services, [], "no services in this window", id="services"),
        pytest.param(render_traces, [], "no matching traces", id="traces"),
        pytest.param(render_logs, [], "no matching log records", id="logs"),
        pytest.param(
            render_metric_list, {"metrics": []}, "no metrics in this window", id="metrics"
        ),
        pytest.param(
            render_metric,
            {"name": "cpu", "type": "gauge", "unit": "1", "description": "", "series": []},
            "no series for metric cpu",
            id="metric",
        ),
    ],
)
def test_empty_results_say_so(
    renderer: Callable[[Any, Console], None], data: Any, message: str
) -> None:
    assert message in show(renderer, data, 80)


def test_output_to_a_non_terminal_has_no_escape_codes() -> None:
    outputs = [
        show(render_trace, checkout_trace(), 120),
        show(render_traces, traces_list(), 120),
        show(render_logs, checkout_trace()["logs"], 120),
    ]
    assert all("\x1b" not in out for out in outputs)


def test_public_api_is_the_renderers() -> None:
    assert sorted(render.__all__) == sorted(
        name for name in dir(render) if name.startswith("render_")
    )


def test_services_with_many_instances_count_their_states() -> None:
    states = ["running"] * 6 + ["crash_loop"] + [None] * 2
    instances = [
        {"instance": f"host:{i}", "first_seen_ns": T0, "last_seen_ns": T0, "state": state}
        for i, state in enumerate(states)
    ]
    service = {"service": "api", "instances": instances, "first_seen_ns": T0, "last_seen_ns": T0,
               "spans": 1, "logs": 0, "metric_points": 0, "error_spans": 0,
               "error_logs": 0}  # fmt: skip
    out = show(render_services, [service], 120)
    assert "9 (1 crash loop, 6 running)" in out and "host:" not in out


@pytest.mark.parametrize(
    ("instance", "label"),
    [
        ({"state": "exited", "exit_code": 0}, "exited 0"),
        ({"state": "exited", "exit_code": 137}, "exited 137"),
        ({"state": "exited", "exit_code": None, "exit_signal": "SIGKILL"}, "exited SIGKILL"),
        ({"state": "exited"}, "exited"),
        ({"state": "restarting", "restart_count": 2}, "restarting"),
        ({"state": "crash_loop"}, "crash loop"),
        ({"state": "running"}, "running"),
    ],
    ids=[
        "clean exit",
        "exit code",
        "signal",
        "exit unknown",
        "restarting",
        "crash loop",
        "running",
    ],
)
def test_instance_state_labels(instance: dict[str, Any], label: str) -> None:
    from stethoscope.cli.render.events import state_label

    found = state_label(instance)
    assert found is not None and found.plain == label


def test_events_are_one_compact_line_each() -> None:
    attributes = {
        "event.name": "process.fingerprint",
        "process.environment": {"HOME": "/root", "PATH": "/bin"},
        "process.command_args": ["python", "app.py", "--port", "8080"],
        "error.message": "bad \x1b[31mred\x1b[0m " + "x" * 100,
        **{f"extra.{i}": i for i in range(8)},
    }
    event = {"time_ns": T0, "service": "api", "instance": "api-1", "severity_number": 9,
             "event_name": "process.fingerprint", "attributes": attributes}  # fmt: skip
    out = show(render.render_events, [event], 400)
    [line] = out.splitlines()
    assert "api/api-1 process.fingerprint" in line and "event.name" not in line
    assert "process.environment={2 keys}" in line
    assert "process.command_args=python app.py --port 8080" in line
    assert "\x1b" not in line and "\\x1b[31mred" in line and "…" in line
    assert "(+3 more, see --json)" in line


@pytest.mark.parametrize(
    ("renderer", "message"),
    [(render.render_events, "no matching events"), (render.render_templates, "no log templates")],
    ids=["events", "templates"],
)
def test_empty_events_and_templates(renderer: Callable[[Any, Console], None], message: str) -> None:
    assert message in show(renderer, [])
