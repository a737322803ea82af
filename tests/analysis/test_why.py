"""`steth why` over imported recordings of a small system with a known fault.

Each case imports a synthetic recording (real `steth import` into a real DuckDB file), then asks
`steth why --json` about the window after the fault, as an operator would, and checks the true
cause is ranked first with evidence a person can act on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerFactory, run_steth
from synthetic import SECOND, START_NS, Fault, write_recording

from stethoscope.model.timeutil import format_ns

FAULT_AT_S = 10 * 60
WINDOW = ("--since", format_ns(START_NS + FAULT_AT_S * SECOND))
UNTIL = ("--until", format_ns(START_NS + 15 * 60 * SECOND))
BASELINE = (
    "--baseline",
    f"{format_ns(START_NS + 60 * SECOND)}..{format_ns(START_NS + FAULT_AT_S * SECOND)}",
)


def imported(tmp_path: Path, fault: Fault | None) -> Path:
    """A data directory holding the recording, imported with the real CLI."""
    recording = tmp_path / "recording.jsonl"
    write_recording(recording, fault=fault)
    data = tmp_path / "data"
    code, _, err = run_steth("import", str(recording), "--data", str(data))
    assert code == 0, err
    return data


def why(data: Path, *extra: str) -> dict[str, Any]:
    code, out, err = run_steth("why", "--json", "--data", str(data), *WINDOW, *UNTIL, *extra)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize(
    ("fault", "cause", "reason", "shown"),
    [
        pytest.param(
            Fault("network", "cache", FAULT_AT_S), "cache", "edge-latency", "x)", id="net-leaf"
        ),
        pytest.param(Fault("network", "db", FAULT_AT_S), "db", "edge-latency", "x)", id="net-db"),
        pytest.param(Fault("cpu", "api", FAULT_AT_S), "api", "latency", "x)", id="cpu-middle"),
        pytest.param(Fault("cpu", "db", FAULT_AT_S), "db", "latency", "x)", id="cpu-leaf"),
        pytest.param(
            Fault("errors", "db", FAULT_AT_S), "db", "errors", "(was 0%)", id="errors-up-to-root"
        ),
        pytest.param(
            Fault("swallowed", "cache", FAULT_AT_S),
            "cache",
            "swallowed-errors",
            "reported success upstream",
            id="swallowed",
        ),
        pytest.param(
            Fault("skip", "cache", FAULT_AT_S),
            "api",
            "missing-calls",
            "no longer calls as before: cache (1.00 ->",
            id="silently-skipped-call",
        ),
    ],
)
def test_the_true_cause_ranks_first_not_its_callers(
    tmp_path: Path, fault: Fault, cause: str, reason: str, shown: str
) -> None:
    report = why(imported(tmp_path, fault), *BASELINE)

    top = report["suspects"][0]
    assert top["service"] == cause, report["suspects"]
    assert reason in top["reasons"]
    # Callers see the same symptoms end to end; none of them may outrank the cause.
    assert all(suspect["score"] < top["score"] for suspect in report["suspects"][1:])
    onset_s = (top["onset_ns"] - START_NS) / SECOND
    assert FAULT_AT_S <= onset_s <= FAULT_AT_S + 60
    assert shown in " ".join(item["summary"] for item in top["evidence"])  # before and after


def test_one_slow_replica_is_named_among_its_healthy_peers(tmp_path: Path) -> None:
    recording = tmp_path / "recording.jsonl"
    fault = Fault("cpu", "api", FAULT_AT_S, instance="api-1")
    write_recording(recording, fault=fault, api_replicas=2)
    data = tmp_path / "data"
    assert run_steth("import", str(recording), "--data", str(data))[0] == 0
    top = why(data, *BASELINE)["suspects"][0]
    assert (top["service"], top["instance"]) == ("api", "api-1")
    assert "on api-1" in top["evidence"][0]["summary"]


@pytest.mark.parametrize(
    ("fault", "shown"),
    [
        pytest.param(Fault("network", "cache", FAULT_AT_S), "slower", id="slow"),
        pytest.param(Fault("errors", "cache", FAULT_AT_S), "fail", id="failing"),
    ],
)
def test_a_peer_without_spans_is_blamed_by_its_listening_port(
    tmp_path: Path, fault: Fault, shown: str
) -> None:
    recording = tmp_path / "recording.jsonl"
    write_recording(recording, fault=fault, uninstrumented=("cache",))
    data = tmp_path / "data"
    assert run_steth("import", str(recording), "--data", str(data))[0] == 0
    top = why(data, *BASELINE)["suspects"][0]
    assert top["service"] == "cache"
    assert f"calls api -> cache {shown}" in top["evidence"][0]["summary"]


def test_a_replica_that_stopped_sending_is_named(tmp_path: Path) -> None:
    recording = tmp_path / "recording.jsonl"
    write_recording(
        recording, fault=Fault("stop", "api", FAULT_AT_S, instance="api-1"), api_replicas=2
    )
    data = tmp_path / "data"
    assert run_steth("import", str(recording), "--data", str(data))[0] == 0
    top = why(data, *BASELINE)["suspects"][0]
    assert (top["service"], top["instance"], top["reasons"]) == ("api", "api-1", ["throughput"])
    assert "api-1 stopped sending spans" in top["evidence"][0]["summary"]


def test_a_chosen_baseline_leaves_out_an_earlier_incident(tmp_path: Path) -> None:
    recording = tmp_path / "recording.jsonl"
    minute = 60
    earlier = Fault("errors", "db", 5 * minute, until_s=9 * minute)
    write_recording(
        recording, minutes=25, fault=Fault("errors", "db", 20 * minute), earlier=(earlier,)
    )
    data = tmp_path / "data"
    assert run_steth("import", str(recording), "--data", str(data))[0] == 0
    since = format_ns(START_NS + 20 * minute * SECOND)
    until = format_ns(START_NS + 25 * minute * SECOND)
    code, out, err = run_steth(
        "why", "--json", "--data", str(data), "--since", since, "--until", until
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["baseline"]["start"] >= format_ns(START_NS + 9 * minute * SECOND)
    assert report["baseline"]["end"] == since
    top = report["suspects"][0]
    assert top["service"] == "db"
    assert "(was 0%)" in top["evidence"][0]["summary"]


@pytest.mark.parametrize(
    ("since_m", "until_m"),
    [pytest.param(14, 20, id="data-ends-inside"), pytest.param(16, 20, id="no-data-yet")],
)
def test_a_window_past_the_data_is_not_a_traffic_drop(
    tmp_path: Path, since_m: int, until_m: int
) -> None:
    data = imported(tmp_path, None)  # fifteen healthy minutes
    window = [format_ns(START_NS + m * 60 * SECOND) for m in (since_m, until_m)]
    code, out, err = run_steth(
        "why", "--json", "--data", str(data), "--since", window[0], "--until", window[1]
    )
    assert code == 0, err
    assert [f for f in json.loads(out)["findings"] if f["kind"] == "throughput"] == []


def test_a_healthy_window_has_no_suspects(tmp_path: Path) -> None:
    report = why(imported(tmp_path, None), *BASELINE)
    assert report["suspects"] == []
    assert report["findings"] == []


def test_the_default_baseline_is_the_period_before_the_window(tmp_path: Path) -> None:
    data = imported(tmp_path, Fault("network", "cache", FAULT_AT_S))
    report = why(data)
    assert report["suspects"][0]["service"] == "cache"
    assert report["baseline"]["end"] == report["window"]["start"]


def test_json_follows_the_design_contract(tmp_path: Path) -> None:
    report = why(imported(tmp_path, Fault("cpu", "api", FAULT_AT_S)), *BASELINE)
    assert set(report) >= {"window", "suspects", "findings"}
    assert set(report["window"]) == {"start", "end"}
    for suspect in report["suspects"]:
        assert set(suspect) >= {"service", "instance", "score", "onset", "reasons", "evidence"}
        assert all({"kind", "summary"} <= set(item) for item in suspect["evidence"])
    for finding in report["findings"]:
        assert set(finding) >= {"kind", "service", "severity", "start", "summary"}
        assert finding["severity"] in ("info", "warning", "critical")


def test_service_focus_keeps_only_what_it_depends_on(tmp_path: Path) -> None:
    data = imported(tmp_path, Fault("network", "cache", FAULT_AT_S))
    assert why(data, *BASELINE, "--service", "api")["suspects"][0]["service"] == "cache"
    assert why(data, *BASELINE, "--service", "db")["suspects"] == []


def test_the_terminal_report_names_the_cause_and_its_evidence(tmp_path: Path) -> None:
    data = imported(tmp_path, Fault("network", "cache", FAULT_AT_S))
    code, out, err = run_steth("why", "--data", str(data), *WINDOW, *UNTIL, *BASELINE)
    assert code == 0, err
    assert "Suspects" in out
    first_row = next(line for line in out.splitlines() if line.strip().startswith("1 "))
    assert "cache" in first_row
    assert "calls api -> cache" in out


def test_a_running_server_answers_through_its_api(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    server = start_server()
    recording = tmp_path / "recording.jsonl"
    write_recording(recording, fault=Fault("cpu", "db", FAULT_AT_S))
    code, _, err = server.steth("import", str(recording))  # the server takes it in
    assert code == 0, err
    report = server.steth_json("why", *WINDOW, *UNTIL, *BASELINE)
    assert report["suspects"][0]["service"] == "db"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--baseline", "yesterday"), "START..END", id="baseline-without-range"),
        pytest.param(("--baseline", "2h..3h"), "end after it starts", id="baseline-reversed"),
        pytest.param(("--since", "5m", "--until", "10m"), "before --until", id="window-reversed"),
        pytest.param(("--since", "tuesday"), "tuesday", id="unreadable-time"),
    ],
)
def test_bad_arguments_are_usage_errors(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    code, _, err = run_steth("why", "--data", str(tmp_path / "empty"), *args)
    assert code == 2
    assert message in err
