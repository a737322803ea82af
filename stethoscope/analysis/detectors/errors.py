"""Error rates that rose, and errors that callers hid behind a success.

Span errors are what the span status or an HTTP 5xx says. A rising error rate is a symptom that
travels up the call graph (a caller fails because its callee did), so ranking caps it below a
callee that started failing no later. An error swallowed on the way up (the callee's span
failed, the caller's did not) is the silent kind: it is reported against the callee, whose
failure nobody upstream will show.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from stethoscope.analysis.compare import confidence, log_ratio, severity_for
from stethoscope.analysis.context import AnalysisContext
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register

__all__ = ["ErrorRateDetector", "SwallowedErrorDetector"]

# Error rates are compared with a one-percent floor: 0.1% -> 0.3% is noise, 0% -> 20% is not.
RATE_FLOOR = 0.01
THRESHOLD = 1.0
EXAMPLES = 3


def _rate(row: dict[str, Any], errors: str, count: str) -> float:
    return row[errors] / row[count] if row[count] else 0.0


def _onset(
    context: AnalysisContext, rows: list[dict[str, Any]], base_rate: float, errors: str, count: str
) -> int:
    for row in rows:
        now = _rate(row, errors, count)
        if log_ratio(now, base_rate, floor=RATE_FLOOR) >= THRESHOLD:
            return context.scope.bucket_start_ns(row["bucket"])
    return context.scope.since_ns


@register
class ErrorRateDetector:
    """Operations failing more often than in the baseline, grouped by service."""

    name = "errors"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        rising: dict[str, list[tuple[float, tuple[Any, ...], float, float, int]]] = defaultdict(
            list
        )
        for key, row in context.spans.total.items():
            if key[1] is not None or not row["errors"]:
                continue
            before = context.spans_baseline.total.get(key)
            base_rate = _rate(before, "errors", "spans") if before else 0.0
            base_count = before["spans"] if before else row["spans"]
            now_rate = _rate(row, "errors", "spans")
            score = log_ratio(now_rate, base_rate, floor=RATE_FLOOR)
            score *= confidence(row["spans"], base_count)
            if score >= THRESHOLD:
                rising[key[0]].append((score, key, now_rate, base_rate, row["errors"]))
        findings = []
        for service, found in rising.items():
            found.sort(reverse=True)
            score, key, now_rate, base_rate, errors = found[0]
            rows = context.spans.buckets.get(key, [])
            findings.append(
                Finding(
                    kind=self.name,
                    service=service,
                    instance=None,
                    severity=severity_for(score),
                    start_ns=_onset(context, rows, base_rate, "errors", "spans"),
                    summary=f"{key[2]} fails {now_rate:.0%} of the time (was {base_rate:.0%})",
                    score=score,
                    symptom=True,
                    evidence=tuple(
                        Evidence(
                            kind="error-rate",
                            summary=f"{op_key[2]}: {count} errors, {rate:.1%} of spans "
                            f"(baseline {base:.1%})",
                            data={"operation": op_key[2], "errors": count},
                        )
                        for _, op_key, rate, base, count in found[:EXAMPLES]
                    ),
                )
            )
        return findings


@register
class SwallowedErrorDetector:
    """Calls whose callee failed while the caller's span reported success."""

    name = "swallowed-errors"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        findings = []
        for key, row in context.edges.total.items():
            if key[1] is not None or not row["swallowed"]:
                continue
            caller, callee = key[0], key[2]
            before = context.edges_baseline.total.get(key)
            base_rate = _rate(before, "swallowed", "calls") if before else 0.0
            now_rate = _rate(row, "swallowed", "calls")
            base_count = before["calls"] if before else row["calls"]
            score = log_ratio(now_rate, base_rate, floor=RATE_FLOOR)
            score *= confidence(row["calls"], base_count)
            if score < THRESHOLD:
                continue
            rows = context.edges.buckets.get(key, [])
            findings.append(
                Finding(
                    kind=self.name,
                    service=callee,
                    instance=None,
                    peer=caller,
                    severity=severity_for(score + 1.0),  # hidden failures rank a step higher
                    start_ns=_onset(context, rows, base_rate, "swallowed", "calls"),
                    summary=f"{row['swallowed']} failed calls {caller} -> {callee} reported "
                    f"success upstream ({now_rate:.0%} of calls, was {base_rate:.0%})",
                    score=score,
                    evidence=(
                        Evidence(
                            kind="swallowed",
                            summary=f"{callee} answered with an error on {row['swallowed']} of "
                            f"{row['calls']} calls from {caller}, whose own spans show no error",
                            data={"caller": caller, "callee": callee, "calls": row["calls"]},
                        ),
                    ),
                )
            )
        return findings
