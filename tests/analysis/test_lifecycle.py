"""Lifecycle findings: crashes, crash loops, probes and scrape targets down, capture overflow.

Each case replays the events `steth run` / `steth scrape` send (built by their own code, see
process_recording.py), imports them with the real `steth import`, and asks `steth why --json`
about the window after minute 10, as an operator would. One case runs a real `steth run`
against a real `steth up`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerFactory, cli_env
from process_recording import Process, why_over
from synthetic import SECOND, START_NS

from stethoscope.model.timeutil import format_ns

STETH = [sys.executable, "-m", "stethoscope.cli.main"]
FAULT_AT_S = 600
LIFECYCLE_KINDS = ("crash", "probe-down", "scrape-down", "capture-overflow")
ARGV = ["sh", "serve.sh", "--port", "8001"]
WINDOW = (
    "--since",
    format_ns(START_NS + FAULT_AT_S * SECOND),
    "--until",
    format_ns(START_NS + 900 * SECOND),
    "--baseline",
    f"{format_ns(START_NS + 60 * SECOND)}..{format_ns(START_NS + FAULT_AT_S * SECOND)}",
)


def why(tmp_path: Path, processes: list[Process]) -> dict[str, Any]:
    return why_over(tmp_path, processes, WINDOW)


def started(service: str, instance: str | None = None) -> Process:
    """An instance that has been running since the recording began."""
    return Process(service, instance or f"{service}-0").start(5, ARGV)


def crash(process: Process, at: float, returncode: int, count: int) -> Process:
    """A failed exit, the supervisor's restart and the new start."""
    stderr = ["Traceback (most recent call last):", "OSError: [Errno 28] No space left"]
    process.exit(at, returncode, stderr).restart(at + 0.1, count)
    return process.start(at + 1, ARGV, restarts=count)


def crash_loop(process: Process, first: float, every: float = 5, times: int = 5) -> Process:
    for index in range(times):
        crash(process, first + index * every, 1, index + 1)
    return process.crash_loop(first + (times - 1) * every + 0.2, times)


def probe(process: Process, down_at: float, event: str = "probe.state") -> Process:
    key = "probe.state" if event == "probe.state" else "scrape.state"
    url = "http://127.0.0.1:8001/healthz"
    return process.state(10, event, key, True, url).state(down_at, event, key, False, url)


@pytest.mark.parametrize(
    ("processes", "kind", "shown"),
    [
        pytest.param(
            [crash(started("db"), 630, 70, 1), started("api")],
            "crash",
            ["exit code 70", "No space left", "1 restarts"],
            id="crash-with-exit-code-and-stderr",
        ),
        pytest.param(
            [crash(started("db"), 630, -9, 1), started("api")],
            "crash",
            ["killed by SIGKILL"],
            id="killed-by-sigkill",
        ),
        pytest.param(
            [crash_loop(started("db"), 620), started("api")],
            "crash",
            ["crash loop", "5 restarts within 300"],
            id="crash-loop",
        ),
        pytest.param(
            [probe(started("db"), 640), started("api")],
            "probe-down",
            ["http://127.0.0.1:8001/healthz", "timed out"],
            id="probe-down",
        ),
        pytest.param(
            [probe(started("db"), 700, "scrape.target"), started("api")],
            "scrape-down",
            ["scrape target", "timed out"],
            id="scrape-target-down",
        ),
    ],
)
def test_the_failing_instance_ranks_first_with_its_event(
    tmp_path: Path, processes: list[Process], kind: str, shown: list[str]
) -> None:
    report = why(tmp_path, processes)

    top = report["suspects"][0]
    assert (top["service"], top["instance"]) == ("db", "db-0"), report["suspects"]
    assert kind in top["reasons"]
    finding = next(f for f in report["findings"] if f["kind"] == kind)
    text = finding["summary"] + " ".join(item["summary"] for item in finding["evidence"])
    assert all(words in text for words in shown), text
    onset_s = (top["onset_ns"] - START_NS) / SECOND
    assert FAULT_AT_S <= onset_s <= 720
    assert finding["severity"] in ("warning", "critical")


def test_a_crash_loop_outranks_a_crash_which_outranks_a_probe_down(tmp_path: Path) -> None:
    report = why(
        tmp_path,
        [
            crash_loop(started("api"), 620),
            crash(started("db"), 630, 1, 1),
            probe(started("cache"), 640),
        ],
    )
    assert [suspect["service"] for suspect in report["suspects"]] == ["api", "db", "cache"]


def test_a_capture_overflow_is_reported_as_a_hole_in_the_data(tmp_path: Path) -> None:
    from stethoscope.sources.records import log_record

    overflow = log_record(
        time_ns=0,
        body="capture spool full: 120 records were dropped while the collector was away",
        severity_number=13,
        severity_text="WARN",
        attributes={"steth.dropped_records": 120},
        event_name="capture.overflow",
    )
    report = why(tmp_path, [started("db").event(overflow, 650)])
    (finding,) = report["findings"]
    assert finding["kind"] == "capture-overflow"
    assert finding["severity"] == "info"
    assert "120 records" in finding["summary"]


def test_a_probe_down_since_the_baseline_is_ongoing(tmp_path: Path) -> None:
    report = why(tmp_path, [probe(started("db"), 200), started("api")])
    (finding,) = [f for f in report["findings"] if f["kind"] == "probe-down"]
    assert finding["instance"] == "db-0"
    assert "down since before the window" in finding["summary"]
    assert report["suspects"][0]["service"] == "db"


def test_a_crash_loop_from_the_baseline_is_ongoing_and_weighs_less(tmp_path: Path) -> None:
    fresh = why(tmp_path / "fresh", [crash_loop(started("db"), 620)])
    ongoing = why(tmp_path / "ongoing", [crash_loop(started("db"), 100, every=60, times=14)])
    (new,) = [finding for finding in fresh["findings"] if finding["kind"] == "crash"]
    (old,) = [finding for finding in ongoing["findings"] if finding["kind"] == "crash"]
    assert "ongoing" in old["summary"]
    assert "ongoing" not in new["summary"]
    assert 0 < old["score"] < new["score"]


@pytest.mark.parametrize(
    "process",
    [
        pytest.param(started("db").exit(700, 0), id="clean-exit"),
        pytest.param(started("db").exit(700, -15), id="stopped-by-sigterm"),
        pytest.param(started("db").exit(700, 0).start(720, ARGV), id="restarted-by-hand"),
        pytest.param(
            probe(started("db"), 200).state(
                300, "probe.state", "probe.state", True, "http://127.0.0.1:8001/healthz"
            ),
            id="probe-down-and-back-in-the-baseline",
        ),
        pytest.param(crash(started("db"), 300, 1, 1), id="crash-in-the-baseline-only"),
        pytest.param(probe(started("db"), 200).exit(210, 0), id="probe-down-then-stopped"),
    ],
)
def test_no_finding_without_a_failure_in_the_window(tmp_path: Path, process: Process) -> None:
    report = why(tmp_path, [process])
    # (The log detectors read an exit event at ERROR level as a log line of its own; only the
    # lifecycle detectors are asked here.)
    assert [f for f in report["findings"] if f["kind"] in LIFECYCLE_KINDS] == []


def test_a_real_crash_loop_under_steth_run(tmp_path: Path, start_server: ServerFactory) -> None:
    server = start_server()
    script = (
        "import pathlib, sys\n"
        "count = pathlib.Path('count')\n"
        "n = int(count.read_text()) + 1 if count.exists() else 1\n"
        "count.write_text(str(n))\n"
        "if n < 4:\n"
        "    sys.exit('fatal: PAYMENT_PROCESSOR_URL is not set')\n"
    )
    options = [
        *("--restart", "on-failure", "--restart-delay", "50ms", "--max-restart-delay", "100ms"),
        *("--crash-loop-restarts", "3", "--no-instrument", "--endpoint", server.otlp_url),
    ]
    for service, code in (("flaky", script), ("calm", "print('done')")):
        done = subprocess.run(
            [*STETH, "run", "--service", service, *options, "--", sys.executable, "-c", code],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if len(server.steth_json("events", "--name", "process.exit")["events"]) >= 5:
            break
        time.sleep(0.2)

    report = server.steth_json("why", "--since", "5m")

    top = report["suspects"][0]
    assert top["service"] == "flaky", report["suspects"]
    assert "crash" in top["reasons"]
    assert "PAYMENT_PROCESSOR_URL" in json.dumps(top["evidence"])
    assert "crash loop" in json.dumps(top["evidence"])
    assert all(suspect["service"] != "calm" for suspect in report["suspects"])
