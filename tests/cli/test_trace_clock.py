"""`steth trace` puts an instance with a wrong clock back inside its callers, and says so.

One trace is imported with the real `steth import` into a real DuckDB file: frontend calls
catalog, whose clock is 42 s ahead, and catalog calls db (right clock). The timeline must draw
catalog inside the frontend's call, note the correction, and the JSON must carry it per span
and per record while keeping the stored times.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_steth

MS = 1_000_000
SECOND = 1_000_000_000
START = 1_700_000_000 * SECOND
TRACE = "5b8efff798038103d269b633813fc60c"
SKEW = 42 * SECOND


def _span(span_id: str, parent: str, name: str, kind: int, start: int, dur: int) -> Any:
    return {"traceId": TRACE, "spanId": span_id * 8, "parentSpanId": parent * 8 if parent else "",
            "name": name, "kind": kind, "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + dur)}  # fmt: skip


def _resource(service: str, instance: str) -> dict[str, Any]:
    return {"attributes": [
        {"key": "service.name", "value": {"stringValue": service}},
        {"key": "service.instance.id", "value": {"stringValue": instance}},
    ]}  # fmt: skip


def _export(service: str, instance: str, spans: list[Any], logs: list[Any]) -> str:
    """Two file-exporter lines: the spans, then the log records, of one instance."""
    resource = _resource(service, instance)
    return "".join(
        json.dumps(line) + "\n"
        for line in (
            {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]},
            {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": logs}]}]},
        )
    )


def _log(span_id: str, at: int, body: str) -> dict[str, Any]:
    return {"timeUnixNano": str(at), "severityNumber": 9, "body": {"stringValue": body},
            "traceId": TRACE, "spanId": span_id * 8}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trace, imported: catalog's spans and its log record stamped 42 s late."""
    root = tmp_path_factory.mktemp("trace-clock")
    frontend = [
        _span("a1", "", "GET /shop", 2, START, 100 * MS),
        _span("a2", "a1", "GET", 3, START + 10 * MS, 80 * MS),
    ]
    catalog = [
        _span("b1", "a2", "GET /items", 2, START + 12 * MS + SKEW, 76 * MS),
        _span("b2", "b1", "SELECT", 3, START + 20 * MS + SKEW, 40 * MS),
    ]
    db = [_span("c1", "b2", "SELECT items", 2, START + 22 * MS, 36 * MS)]
    lines = [
        _export("frontend", "frontend-1", frontend, [_log("a1", START + 5 * MS, "shop opened")]),
        _export("catalog", "catalog-1", catalog, [_log("b1", START + 15 * MS + SKEW, "listing")]),
        _export("db", "db-1", db, []),
    ]
    recording = root / "trace.jsonl"
    recording.write_text("".join(lines))
    code, _, err = run_steth("import", str(recording), "--data", str(root / "data"))
    assert code == 0, err
    return root / "data"


def test_the_timeline_is_corrected_and_says_so(data: Path) -> None:
    code, out, err = run_steth("trace", TRACE, "--data", str(data))
    assert code == 0, err
    assert "catalog-1: clock corrected by -42.00s" in out
    # The whole trace lasts the root's 100 ms, not the 42 s the skew would stretch it to.
    assert "100.0ms" in out.splitlines()[0]
    # Drawn inside their callers: each bar starts no earlier and ends no later than the one
    # above it (uncorrected, catalog's would sit 42 s to the right of the frontend's).
    bars = [line.rstrip() for line in out.splitlines() if line.rstrip().endswith("█")]
    assert len(bars) == 5
    extents = [(len(bar.rstrip("█")), len(bar)) for bar in bars]
    for (start, end), (outer_start, outer_end) in zip(extents[1:], extents, strict=False):
        assert outer_start <= start and end <= outer_end, out
    # The catalog record is shown under its span at its own offset, not 42 s away.
    assert "+3.0ms  INFO  listing" in out


def test_json_keeps_stored_times_and_adds_the_offset(data: Path) -> None:
    code, out, err = run_steth("trace", TRACE, "--json", "--data", str(data))
    assert code == 0, err
    found = json.loads(out)
    offsets = {span["name"]: span["clock_offset_ns"] for span in found["spans"]}
    assert offsets == {"GET /shop": 0, "GET": 0, "GET /items": -SKEW, "SELECT": -SKEW,
                       "SELECT items": 0}  # fmt: skip
    items = next(span for span in found["spans"] if span["name"] == "GET /items")
    assert items["start_ns"] == START + 12 * MS + SKEW  # stored time, unchanged
    assert {r["body"]: r["clock_offset_ns"] for r in found["logs"]} == {
        "shop opened": 0,
        "listing": -SKEW,
    }
    assert found["clock_corrections"] == [
        {"service": "catalog", "instance": "catalog-1", "offset_ns": -SKEW}
    ]
