"""`steth watch` as a user runs it: a real `steth up`, traces flowing in live, a fault partway.

A feeder thread sends a two-service system's traces (frontend -> api) to the server's OTLP/HTTP
receiver as they happen, stamped "now", after back-filling the last 90 s of healthy history so
the baseline exists from the first tick. Partway through, the api starts failing for a few
seconds. `steth watch --json --webhook` runs as a child process; it must report the new finding
once, then its recovery once, and the webhook receiver must get the same events. Without a
server, it reads the store itself (read-only, one tick at a time).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningServer, cli_env, run_steth
from hook_receiver import receiver

from stethoscope.analysis.watch import WatchEvent
from stethoscope.cli.watch import format_event

MS = 1_000_000
SECOND = 1_000_000_000
RATE = 4  # traces per second
HISTORY_S = 90
WINDOW = "30s"
FAULT_S = 6
API_ERRORS = ("errors", "api", None, None)


def trace(start_ns: int, seq: int, *, failing: bool) -> dict[str, list[dict[str, Any]]]:
    """One request's spans by service: frontend server -> frontend client -> api server."""
    trace_id = f"{seq:032x}"
    root, call, served = f"{3 * seq + 1:016x}", f"{3 * seq + 2:016x}", f"{3 * seq + 3:016x}"
    status = {"code": 2, "message": "boom"} if failing else {}

    def span(span_id: str, parent: str, name: str, kind: int, offset_ms: int, dur_ms: int) -> Any:
        begin = start_ns + offset_ms * MS
        return {
            "traceId": trace_id,
            "spanId": span_id,
            "parentSpanId": parent,
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(begin),
            "endTimeUnixNano": str(begin + dur_ms * MS),
            "status": status,
        }

    return {
        "frontend": [span(root, "", "GET /shop", 2, 0, 20), span(call, root, "GET", 3, 4, 12)],
        "api": [span(served, call, "GET /items", 2, 5, 10)],
    }


def export(traces: list[dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """An OTLP/JSON traces request, one resource per service."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": service}},
                        {"key": "service.instance.id", "value": {"stringValue": f"{service}-0"}},
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "steth.tests"},
                        "spans": [s for t in traces for s in t[service]],
                    }
                ],
            }
            for service in ("frontend", "api")
        ]
    }


class Feeder:
    """Sends healthy traffic (failing while `fault` is set) until stopped."""

    def __init__(self, server: RunningServer) -> None:
        self.client = httpx.Client(base_url=server.otlp_url, timeout=10)
        self.fault = threading.Event()
        self.stopped = threading.Event()
        self.seq = 0
        self.thread = threading.Thread(target=self._live, daemon=True)

    def _post(self, starts: list[int], *, failing: bool) -> None:
        traces = []
        for start in starts:
            self.seq += 1
            traces.append(trace(start, self.seq, failing=failing))
        response = self.client.post("/v1/traces", json=export(traces))
        assert response.status_code == 200, response.text

    def backfill(self) -> None:
        now = time.time_ns()
        starts = [now - HISTORY_S * SECOND + i * SECOND // RATE for i in range(HISTORY_S * RATE)]
        for chunk in range(0, len(starts), 60):
            self._post(starts[chunk : chunk + 60], failing=False)

    def _live(self) -> None:
        while not self.stopped.wait(1 / RATE):
            self._post([time.time_ns() - 30 * MS], failing=self.fault.is_set())

    @contextmanager
    def running(self) -> Iterator[Feeder]:
        self.backfill()
        self.thread.start()
        try:
            yield self
        finally:
            self.stopped.set()
            self.thread.join(10)
            self.client.close()


class Watcher:
    """`steth watch --json` as a child process, its stdout read line by line."""

    def __init__(self, data: Path, log: Path, *args: str) -> None:
        command = [sys.executable, "-m", "stethoscope.cli.main", "watch", "--json"]
        self.log = log
        self.process = subprocess.Popen(
            [*command, "--data", str(data), *args],
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            stdin=subprocess.DEVNULL,
            text=True,
            env=cli_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def _drain(self, timeout: float) -> None:
        try:
            self.events.append(json.loads(self.lines.get(timeout=timeout)))
        except queue.Empty:
            return
        while not self.lines.empty():
            self.events.append(json.loads(self.lines.get()))

    def wait_for(self, event: str, key: tuple[Any, ...], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for found in self.events:
                if found["event"] == event and identity(found) == key:
                    return found
            assert self.process.poll() is None, self.log.read_text()
            self._drain(0.5)
        pytest.fail(f"no {event} {key} within {timeout}s: {self.events}\n{self.log.read_text()}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.reader.join(10)
        self._drain(0)
        return code


def identity(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event.get("kind"), event["service"], event.get("instance"), event.get("peer"))


def test_a_live_fault_is_reported_once_and_so_is_its_recovery(
    server: RunningServer, tmp_path: Path
) -> None:
    with receiver([204]) as (url, received), Feeder(server).running() as feeder:
        watcher = Watcher(
            server.data,
            tmp_path / "watch.log",
            *("--every", "2s", "--window", WINDOW, "--baseline-length", "60s", "--webhook", url),
        )
        try:
            time.sleep(5)  # a couple of ticks over healthy traffic
            watcher._drain(0)
            assert watcher.events == [], f"findings on healthy traffic: {watcher.events}"
            feeder.fault.set()
            time.sleep(FAULT_S)
            feeder.fault.clear()
            found = watcher.wait_for("finding", API_ERRORS, timeout=20)
            recovered = watcher.wait_for("recovered", API_ERRORS, timeout=60)
        finally:
            code = watcher.stop()
    assert code == 0, watcher.log.read_text()
    assert found["severity"] in ("warning", "critical") and "fails" in found["summary"]
    assert recovered["duration_s"] > 0 and recovered["time_ns"] > found["time_ns"]
    findings = [identity(e) for e in watcher.events if e["event"] == "finding"]
    recoveries = [identity(e) for e in watcher.events if e["event"] == "recovered"]
    assert sorted(findings) == sorted(set(findings)), "a finding was reported twice"
    assert recoveries.count(API_ERRORS) == 1
    assert any(e["event"] == "suspect" for e in watcher.events)
    assert received == watcher.events


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--every", "0s"), "--every must be longer than zero", id="every-zero"),
        pytest.param(("--window", "soon"), "not a duration", id="window-not-a-duration"),
        pytest.param(("--baseline-length", "0m"), "--baseline-length", id="baseline-zero"),
        pytest.param(("--webhook", "ftp://example"), "http:// or https://", id="webhook-scheme"),
        pytest.param(("--webhook", "http://"), "http:// or https://", id="webhook-no-host"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = run_steth("watch", "--data", str(tmp_path), *args)
    assert code == 2 and message in err


def test_without_a_store_it_keeps_trying_and_stops_cleanly(tmp_path: Path) -> None:
    watcher = Watcher(tmp_path / "none", tmp_path / "watch.log", "--every", "1s")
    deadline = time.monotonic() + 30
    while watcher.log.read_text().count("no store at") < 2 and time.monotonic() < deadline:
        assert watcher.process.poll() is None, watcher.log.read_text()
        time.sleep(0.2)
    assert watcher.log.read_text().count("no store at") >= 2
    assert watcher.stop() == 0 and watcher.events == []


@pytest.mark.parametrize(
    ("event", "shown"),
    [
        pytest.param(
            WatchEvent(
                event="finding",
                at_ns=1_800_000_000 * SECOND,
                data={"service": "db", "peer": "api", "severity": "critical", "summary": "slow"},
            ),
            "2027-01-15T08:00:00.000Z  critical  api -> db  slow",
            id="finding",
        ),
        pytest.param(
            WatchEvent(
                event="recovered",
                at_ns=1_800_000_000 * SECOND,
                data={"service": "db", "kind": "errors", "summary": "fails 5%"},
                started_ns=1_800_000_000 * SECOND - 150 * SECOND,
                last_seen_ns=1_800_000_000 * SECOND - 10 * SECOND,
            ),
            "2027-01-15T08:00:00.000Z  ok        db  "
            "recovered after 2m20s: errors (last: fails 5%)",
            id="recovered",
        ),
        pytest.param(
            WatchEvent(
                event="suspect",
                at_ns=1_800_000_000 * SECOND,
                data={"service": "db", "reasons": ["errors", "latency"]},
                previous="api",
            ),
            "2027-01-15T08:00:00.000Z  suspect   db  "
            "now the top suspect (was api): errors, latency",
            id="suspect",
        ),
    ],
)
def test_terminal_lines(event: WatchEvent, shown: str) -> None:
    assert format_event(event) == shown


def test_without_a_server_it_reads_the_store_itself(tmp_path: Path) -> None:
    now = time.time_ns()
    recording = tmp_path / "recording.jsonl"
    with recording.open("w") as out:
        for second in range(-HISTORY_S, 0):
            starts = [now + second * SECOND + i * SECOND // RATE for i in range(RATE)]
            failing = second >= -10  # the api fails for the last 10 s
            out.write(json.dumps(export([trace(t, t, failing=failing) for t in starts])) + "\n")
    data = tmp_path / "data"
    code, _, err = run_steth("import", str(recording), "--data", str(data))
    assert code == 0, err
    watcher = Watcher(data, tmp_path / "watch.log", "--every", "1s", "--window", WINDOW)
    try:
        found = watcher.wait_for("finding", API_ERRORS, timeout=30)
    finally:
        assert watcher.stop() == 0, watcher.log.read_text()
    assert "fails" in found["summary"]
    assert [identity(e) for e in watcher.events].count(API_ERRORS) == 1
