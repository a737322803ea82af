"""The `steth watch` state machine: which ticks give which events.

Each case is a sequence of ticks; a tick lists the findings present (by short name) and the
top suspect. The expected output is the events of each tick as short strings.
"""

from __future__ import annotations

from typing import Any

import pytest

from stethoscope.analysis.watch import WatchConfig, WatchState, finding_key
from stethoscope.errors import UsageError

SECOND = 1_000_000_000
T0 = 1_800_000_000 * SECOND

FINDINGS: dict[str, dict[str, Any]] = {
    "db-errors": {"kind": "errors", "service": "db", "instance": None, "severity": "critical"},
    "api-latency": {"kind": "latency", "service": "api", "instance": None, "severity": "warning"},
    "api-latency-1": {"kind": "latency", "service": "api", "instance": "api-1", "severity": "info"},
    "edge": {
        "kind": "edge-latency",
        "service": "db",
        "instance": None,
        "peer": "api",
        "severity": "warning",
    },
}


def report(tick: int, names: tuple[str, ...], top: str | None) -> dict[str, Any]:
    """A `steth why --json`-shaped report whose summaries change every tick, as real ones do."""
    findings = [
        {**FINDINGS[name], "summary": f"{name} at tick {tick}", "start_ns": T0, "score": 2.0}
        for name in names
    ]
    suspects = [{"service": top, "score": 3.0, "reasons": ["errors"]}] if top else []
    return {"findings": findings, "suspects": suspects}


def short(event: Any) -> str:
    data = event.data
    if event.event == "suspect":
        return f"suspect {data['service']}" + (f" was {event.previous}" if event.previous else "")
    name = next(n for n, f in FINDINGS.items() if finding_key(f) == finding_key(data))
    return f"{event.event} {name}"


def run(ticks: list[tuple[tuple[str, ...], str | None]], **config: int) -> list[list[str]]:
    state = WatchState(config=WatchConfig(**config))
    return [
        [short(e) for e in state.observe(report(i, names, top), at_ns=T0 + i * 10 * SECOND)]
        for i, (names, top) in enumerate(ticks)
    ]


DB = ("db-errors",)
CASES = [
    pytest.param([(DB, None)], [["finding db-errors"]], id="appears"),
    pytest.param([(DB, None)] * 4, [["finding db-errors"], [], [], []], id="persists"),
    pytest.param(
        [(DB, None), ((), None), (DB, None), ((), None), (DB, None)],
        [["finding db-errors"], [], [], [], []],
        id="flaps-within-hysteresis",
    ),
    pytest.param(
        [(DB, None), ((), None), ((), None), ((), None)],
        [["finding db-errors"], [], ["recovered db-errors"], []],
        id="recovers-once",
    ),
    pytest.param(
        [(DB, None), ((), None), ((), None), (DB, None)],
        [["finding db-errors"], [], ["recovered db-errors"], ["finding db-errors"]],
        id="reappears-after-recovery",
    ),
    pytest.param(
        [(("api-latency", "api-latency-1", "edge"), None), (("api-latency",), None)],
        [["finding api-latency", "finding api-latency-1", "finding edge"], []],
        id="instance-and-peer-are-separate-identities",
    ),
    pytest.param(
        [(DB, "db"), (DB, "db"), (DB, "api"), (DB, "api"), (DB, "api")],
        [["finding db-errors", "suspect db"], [], [], ["suspect api was db"], []],
        id="top-suspect-change-after-it-holds",
    ),
    pytest.param(
        [(DB, "db"), (DB, "api"), (DB, "db"), (DB, "api"), (DB, "db")],
        [["finding db-errors", "suspect db"], [], [], [], []],
        id="top-suspects-swapping-every-tick-stay-quiet",
    ),
    pytest.param(
        [(DB, "db"), ((), None), ((), None), (DB, "api")],
        [
            ["finding db-errors", "suspect db"],
            [],
            ["recovered db-errors"],
            ["finding db-errors", "suspect api"],
        ],
        id="first-suspect-of-a-new-incident-is-immediate",
    ),
]


@pytest.mark.parametrize(("ticks", "expected"), CASES)
def test_events_per_tick(ticks: list[Any], expected: list[list[str]]) -> None:
    assert run(ticks) == expected


def test_recovery_waits_for_the_configured_ticks() -> None:
    ticks: list[tuple[tuple[str, ...], str | None]] = [(DB, None)] + [((), None)] * 3
    assert run(ticks, recovery_ticks=3) == [["finding db-errors"], [], [], ["recovered db-errors"]]


def test_a_recovery_says_how_long_it_lasted_from_the_onset() -> None:
    state = WatchState()
    state.observe(report(0, DB, None), at_ns=T0 + 30 * SECOND)
    state.observe(report(1, DB, None), at_ns=T0 + 60 * SECOND)
    state.observe(report(2, (), None), at_ns=T0 + 90 * SECOND)
    (event,) = state.observe(report(3, (), None), at_ns=T0 + 120 * SECOND)
    body = event.to_json()
    assert body["event"] == "recovered" and body["duration_s"] == 60.0
    assert body["summary"] == "db-errors at tick 1" and body["kind"] == "errors"


def test_a_new_finding_carries_the_report_fields() -> None:
    (event,) = WatchState().observe(report(0, ("edge",), None), at_ns=T0)
    body = event.to_json()
    assert body["event"] == "finding" and body["peer"] == "api" and body["severity"] == "warning"
    assert body["time_ns"] == T0 and body["summary"] == "edge at tick 0"


def test_tracked_findings_are_bounded_and_evictions_counted() -> None:
    state = WatchState(config=WatchConfig(max_tracked=2))
    findings = [
        {"kind": "errors", "service": f"s{i}", "instance": None, "summary": "x"} for i in range(5)
    ]
    events = state.observe({"findings": findings, "suspects": []}, at_ns=T0)
    assert len(events) == 5 and state.tracked == 2 and state.evictions == 3


def test_the_baseline_is_held_while_an_incident_lasts() -> None:
    state = WatchState()
    length = 60 * SECOND

    def tick(i: int, names: tuple[str, ...]) -> tuple[int, int]:
        since = T0 + i * 10 * SECOND
        baseline = state.baseline_for(since, length)
        state.observe(report(i, names, None), at_ns=since + 30 * SECOND, baseline=baseline)
        return baseline

    assert tick(0, ()) == (T0 - length, T0)
    held = tick(1, DB)
    assert tick(2, DB) == held and tick(3, ()) == held and tick(4, ()) == held
    assert tick(5, ()) == (T0 + 50 * SECOND - length, T0 + 50 * SECOND)


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({"recovery_ticks": 0}, id="recovery-zero"),
        pytest.param({"suspect_ticks": 0}, id="suspect-zero"),
        pytest.param({"max_tracked": 0}, id="unbounded-zero"),
    ],
)
def test_bad_config_is_refused(config: dict[str, int]) -> None:
    with pytest.raises(UsageError, match="at least 1"):
        WatchState(config=WatchConfig(**config))
