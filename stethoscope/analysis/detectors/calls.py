"""Requests that no longer make the calls they used to: a code path that silently skips work.

A handler that stops calling a dependency (a feature switched off, an exception caught too
early, a cache answering what it should not) raises no error and gets faster; the only trace is
a missing child in its traces. Each operation's calls per request are compared with the
baseline. A callee that is down or hung does not count here: its caller still makes the call
(an error or an unanswered client span, which other detectors report); only calls that are
no longer attempted make the caller's own behaviour the finding. Nor does an operation that
fails more often than before: one that gives up early because something failed skips its
later calls too, and the failure is what other detectors follow to its cause.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stethoscope.analysis.compare import confidence, severity_for
from stethoscope.analysis.context import AnalysisContext
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register

__all__ = ["MissingCallsDetector"]

MIN_REQUESTS = 20
# A callee called at least this often per request in the baseline is part of the operation's shape.
USUAL_RATE = 0.5
# Its rate must fall below this share of the baseline's, and by this many calls per request.
KEPT_SHARE = 0.6
MIN_DROP = 0.3
# How many standard deviations below the expected number of calls (Poisson) the window must be.
MIN_Z = 4.0
# The operation's calls in all must fall by at least this share of the lost callee's: calls
# that are still made but no longer answered (a callee down) are not missing.
ATTEMPTS_SHARE = 0.5
# An operation whose error rate rose this much is failing, not skipping.
ERROR_RISE = 0.02


@dataclass(frozen=True)
class Lost:
    """A callee an operation calls much less: calls per request before and now, and how sure."""

    callee: str
    was: float
    now: float
    z: float


@register
class MissingCallsDetector:
    """Operations whose requests no longer make calls they used to make."""

    name = "missing-calls"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        findings = []
        for key, row in context.calls.total.items():
            service, operation, callee = key
            before = context.calls_baseline.total.get(key)
            if callee is not None or before is None:
                continue  # the operation's totals; its callees are looked at below
            if min(row["requests"], before["requests"]) < MIN_REQUESTS:
                continue
            lost = _lost_callees(context, service, operation, row, before)
            if not lost or _fails_more(context, service, operation):
                continue
            findings.append(self._finding(context, service, operation, lost, row, before))
        return findings

    def _finding(
        self,
        context: AnalysisContext,
        service: str,
        operation: str,
        lost: list[Lost],
        row: dict[str, Any],
        before: dict[str, Any],
    ) -> Finding:
        worst = lost[0]
        score = 1.0 + math.log2(worst.was / max(worst.now, worst.was / 8))
        score *= confidence(row["requests"], before["requests"])
        named = ", ".join(f"{item.callee} ({item.was:.2f} -> {item.now:.2f})" for item in lost)
        return Finding(
            kind=self.name,
            service=service,
            instance=None,
            peer=worst.callee if len(lost) == 1 else None,
            severity=severity_for(score),
            start_ns=_onset(context, service, operation, worst),
            summary=f"{operation} no longer calls as before: {named} calls per request, "
            "and fails no more often",
            score=score,
            evidence=(
                Evidence(
                    kind="calls-per-request",
                    summary=f"{row['calls']} calls over {row['requests']} requests of {operation} "
                    f"in the window, {before['calls']} over {before['requests']} in the "
                    f"baseline; {worst.callee}: {worst.z:.0f} standard deviations fewer than "
                    "expected",
                    data={
                        "operation": operation,
                        "calls_per_request": round(row["calls"] / row["requests"], 3),
                        "baseline_calls_per_request": round(
                            before["calls"] / before["requests"], 3
                        ),
                        "callees": [
                            {
                                "service": item.callee,
                                "baseline": round(item.was, 3),
                                "now": round(item.now, 3),
                            }
                            for item in lost
                        ],  # fmt: skip
                    },
                ),
            ),
        )


def _fails_more(context: AnalysisContext, service: str, operation: str) -> bool:
    """Whether the operation's requests fail noticeably more often than in the baseline."""
    now = context.spans.total.get((service, None, operation))
    before = context.spans_baseline.total.get((service, None, operation))
    if now is None or not now["spans"]:
        return False
    base_rate = before["errors"] / before["spans"] if before and before["spans"] else 0.0
    return bool(now["errors"] / now["spans"] > base_rate + ERROR_RISE)


def _lost_callees(
    context: AnalysisContext,
    service: str,
    operation: str,
    row: dict[str, Any],
    before: dict[str, Any],
) -> list[Lost]:
    """The callees the operation calls much less, the biggest loss first."""
    attempts_drop = before["calls"] / before["requests"] - row["calls"] / row["requests"]
    lost = []
    for key, base in context.calls_baseline.total.items():
        if key[:2] != (service, operation) or not key[2]:
            continue  # other operations, the totals, and calls nobody answered
        was = base["calls"] / before["requests"]
        found = context.calls.total.get(key)
        calls = found["calls"] if found else 0
        now = calls / row["requests"]
        if was < USUAL_RATE or now > KEPT_SHARE * was or was - now < MIN_DROP:
            continue
        if attempts_drop < ATTEMPTS_SHARE * (was - now):
            continue
        expected = was * row["requests"]
        z = (expected - calls) / math.sqrt(expected)
        if z >= MIN_Z:
            lost.append(Lost(key[2], was, now, z))
    return sorted(lost, key=lambda item: item.now - item.was)


def _onset(context: AnalysisContext, service: str, operation: str, worst: Lost) -> int:
    """The first bucket whose requests made clearly fewer calls than the baseline's."""
    threshold = worst.was - (worst.was - worst.now) / 2
    totals = context.calls.buckets.get((service, operation, None), [])
    rows = context.calls.buckets.get((service, operation, worst.callee), [])
    calls = {row["bucket"]: row["calls"] for row in rows}
    for row in totals:
        callee_calls = calls.get(row["bucket"], 0)
        if row["requests"] and callee_calls / row["requests"] <= threshold:
            return context.scope.bucket_start_ns(row["bucket"])
    return context.scope.since_ns
