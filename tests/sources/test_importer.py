"""`steth import`: OTLP/JSON lines in, with the store alone or through a running server."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import RunningServer, run_steth

RECORDING = Path(__file__).resolve().parents[2].parent / "shared/data/recordings"
BASELINE = RECORDING / "trainticket-2023-01-30/baseline-traces.jsonl.gz"
OLD_NS = 1_600_000_000 * 10**9  # 2020: far beyond any retention


def resource(service: str) -> dict:
    return {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}


def lines() -> list[str]:
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "GET /old",
        "kind": 2,
        "startTimeUnixNano": str(OLD_NS),
        "endTimeUnixNano": str(OLD_NS + 5_000_000),
        "attributes": [{"key": "http.route", "value": {"stringValue": "/old"}}],
    }
    bad_span = {**span, "traceId": "not-hex", "spanId": "eee19b7ec3c1b175"}
    log = {"timeUnixNano": str(OLD_NS), "severityNumber": 17, "body": {"stringValue": "boom"}}
    point = {"timeUnixNano": str(OLD_NS), "asDouble": 0.5}
    return [
        json.dumps({"resourceSpans": [{"resource": resource("legacy"),
                                       "scopeSpans": [{"spans": [span, bad_span]}]}]}),
        json.dumps({"resourceLogs": [{"resource": resource("legacy"),
                                      "scopeLogs": [{"logRecords": [log]}]}]}),
        json.dumps({"resourceMetrics": [{"resource": resource("legacy"), "scopeMetrics": [
            {"metrics": [{"name": "load", "unit": "1", "gauge": {"dataPoints": [point]}}]}]}]}),
        "{this is not json",
        json.dumps({"somethingElse": []}),
        json.dumps({"resourceSpans": "not a list"}),  # looks like a request, fails to decode
        json.dumps({"resourceLogs": [{"resource": resource("legacy"),
                                      "scopeLogs": [{"logRecords": [log]}]}]}),
        "",
    ]  # fmt: skip


@pytest.fixture(params=["plain", "gzip"])
def export_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    text = "\n".join(lines()) + "\n"
    if request.param == "gzip":
        path = tmp_path / "export.jsonl.gz"
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path = tmp_path / "export.jsonl"
        path.write_text(text)
    return path


def check_summary(summary: dict) -> None:
    assert summary["accepted"] == {"traces": 1, "logs": 2, "metrics": 1}
    assert summary["rejected_records"] == 1  # the span with a bad trace id
    assert summary["rejected_lines"] == 3  # broken JSON, an unknown request, a malformed one
    problems = "\n".join(summary["problems"])
    assert ":4:" in problems and "not valid JSON" in problems
    assert ":5:" in problems and "not an OTLP export request" in problems
    assert ":6:" in problems  # refused by the decoder, the line after it still taken
    assert "invalid trace id" in problems


def test_import_into_the_store_directly_keeps_historical_timestamps(
    export_file: Path, tmp_path: Path
) -> None:
    data = str(tmp_path / "data")
    code, out, err = run_steth("import", str(export_file), "--json", "--data", data)
    assert code == 0, err
    check_summary(json.loads(out))
    code, out, _ = run_steth("traces", "--service", "legacy", "--json", "--data", data)
    [trace] = json.loads(out)["traces"]
    assert trace["start_ns"] == OLD_NS and trace["duration_ns"] == 5_000_000
    code, out, _ = run_steth("logs", "--service", "legacy", "--json", "--data", data)
    assert [r["body"] for r in json.loads(out)["logs"]] == ["boom", "boom"]


def test_import_through_a_running_server_survives_its_retention(
    export_file: Path, start_server
) -> None:
    server: RunningServer = start_server(extra_args=["--retention", "1h"])
    code, out, err = server.steth("import", str(export_file), "--json")
    assert code == 0, err
    check_summary(json.loads(out))
    # Six years old, yet kept: imports are exempt from retention.
    [trace] = server.steth_json("traces", "--service", "legacy")["traces"]
    assert trace["start_ns"] == OLD_NS
    metrics = server.steth_json("metrics", "load")
    assert [p["value"] for s in metrics["series"] for p in s["points"]] == [0.5]


def test_import_reports_unreadable_paths(tmp_path: Path) -> None:
    code, _, err = run_steth("import", str(tmp_path / "missing.jsonl"), "--data", str(tmp_path))
    assert code == 2
    assert "cannot read" in err and "missing.jsonl" in err


@pytest.mark.skipif(not BASELINE.exists(), reason="shared recordings not present")
def test_import_a_real_recording(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    code, out, err = run_steth("import", str(BASELINE), "--json", "--data", data)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["accepted"]["traces"] > 1000 and summary["rejected_records"] == 0
    code, out, _ = run_steth("services", "--json", "--data", data)
    names = {row["service"] for row in json.loads(out)["services"]}
    assert "ts-gateway-service" in names and len(names) > 10
