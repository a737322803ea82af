"""Per-trace clock correction: which instances of one trace are moved, and by how much."""

from __future__ import annotations

from typing import Any

import pytest

from stethoscope.store.duckdb.clock import TRACE_SKEW_NS, trace_clock_offsets

MS = 1_000_000
SECOND = 1_000_000_000


def span(
    span_id: str, parent: str, instance: str, kind: str, start_ms: float, dur_ms: float
) -> dict[str, Any]:
    return {"span_id": span_id, "parent_span_id": parent, "service": instance.split("-")[0],
            "instance": instance, "kind": kind, "start_ns": int(start_ms * MS),
            "duration_ns": int(dur_ms * MS)}  # fmt: skip


def call(
    callee: str, kind: str, start_ms: float, dur_ms: float, *, caller_kind: str = "client"
) -> list[dict[str, Any]]:
    """A root in web-1 calling `callee` from 10 ms to 90 ms; the callee's span as given."""
    return [
        span("r", "", "web-1", "server", 0, 100),
        span("c", "r", "web-1", caller_kind, 10, 80),
        span("s", "c", callee, kind, start_ms, dur_ms),
    ]


CASES = {
    "inside its caller": (call("api-1", "server", 12, 76), {}),
    "ahead by 42 s": (call("api-1", "server", 42_012, 76), {("api", "api-1"): -42 * SECOND}),
    "behind by 3 s": (call("api-1", "server", -2_988, 76), {("api", "api-1"): 3 * SECOND}),
    "out by less than the threshold": (
        call("api-1", "server", 12 + TRACE_SKEW_NS / MS / 2, 76),
        {},
    ),
    # The caller gave up after 80 ms, the callee went on: not a clock.
    "longer than its caller": (call("api-1", "server", 12, 5_000), {}),
    # Queued messages are consumed any time after they were produced.
    "consumed long after produced": (call("api-1", "consumer", 60_000, 10), {}),
    "consumed before produced": (
        call("api-1", "consumer", -5_000, 10, caller_kind="producer"),
        {("api", "api-1"): 5_010 * MS},
    ),
    # No client span: the child is moved just inside its parent.
    "under a server span of another instance": (
        call("api-1", "server", 2_000, 10, caller_kind="server"),
        {("api", "api-1"): -1_920 * MS},
    ),
    "same instance, no clock to compare": (call("web-1", "server", 42_012, 76), {}),
}


@pytest.mark.parametrize(("spans", "expected"), CASES.values(), ids=CASES.keys())
def test_callee_offsets(spans: list[dict[str, Any]], expected: dict[Any, int]) -> None:
    assert trace_clock_offsets(spans) == expected


def test_callees_of_a_corrected_instance_are_judged_against_corrected_times() -> None:
    skew = 30_000  # ms: api-1 is 30 s ahead, db-1 is right
    spans = [
        *call("api-1", "server", 12 + skew, 76),
        span("q", "s", "api-1", "client", 20 + skew, 40),
        span("d", "q", "db-1", "server", 22, 36),
    ]
    assert trace_clock_offsets(spans) == {("api", "api-1"): -skew * MS}


def test_one_odd_call_among_many_is_not_a_clock() -> None:
    spans = [span("r", "", "web-1", "server", 0, 1000)]
    for i in range(5):
        spans.append(span(f"c{i}", "r", "web-1", "client", i * 100, 80))
        start = i * 100 + 2 + (5_000 if i == 0 else 0)
        spans.append(span(f"s{i}", f"c{i}", "api-1", "server", start, 76))
    assert trace_clock_offsets(spans) == {}
