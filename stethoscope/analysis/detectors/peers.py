"""Calls that no callee span answered: slower or failing calls to uninstrumented peers.

A service in another language, a database or a hung callee leaves only the caller's client
span. Its duration and status are the peer's behaviour as the caller saw it, so a change is
blamed on the peer — named as a service when the address book knows who listens on its port,
otherwise on the caller, whose dependency it is ("calls from checkout to 10.0.0.7:5432").
"""

from __future__ import annotations

from typing import Any

from stethoscope.analysis.compare import confidence, log_ratio, severity_for
from stethoscope.analysis.context import AnalysisContext
from stethoscope.analysis.detectors.errors import RATE_FLOOR
from stethoscope.analysis.detectors.latency import FLOOR_NS, THRESHOLD, Shift
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register

__all__ = ["PeerErrorDetector", "PeerLatencyDetector"]


def _pairs(
    context: AnalysisContext,
) -> list[tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]]:
    """(key, window row, baseline row) of every service-wide caller -> peer pair in both."""
    pairs = []
    for key, row in context.peers.total.items():
        if key[1] is not None:
            continue
        before = context.peers_baseline.total.get(key)
        if before is not None and row["calls"] and before["calls"]:
            pairs.append((key, row, before))
    return pairs


def _target(context: AnalysisContext, caller: str, row: dict[str, Any]) -> tuple[str, str]:
    """(service to blame, how to name the peer)."""
    callee = context.listeners.get(row.get("port") or "")
    if callee and callee != caller:
        return callee, callee
    return caller, str(row["peer"])


def _latency_onset(context: AnalysisContext, key: tuple[Any, ...], base_p50: float) -> int:
    for row in context.peers.buckets.get(key, []):
        if log_ratio(row["duration_p50"], base_p50, floor=FLOOR_NS) >= THRESHOLD:
            return context.scope.bucket_start_ns(row["bucket"])
    return context.scope.since_ns


def _error_onset(context: AnalysisContext, key: tuple[Any, ...], base_rate: float) -> int:
    for row in context.peers.buckets.get(key, []):
        rate = row["errors"] / row["calls"] if row["calls"] else 0.0
        if log_ratio(rate, base_rate, floor=RATE_FLOOR) >= THRESHOLD:
            return context.scope.bucket_start_ns(row["bucket"])
    return context.scope.since_ns


@register
class PeerLatencyDetector:
    """Calls to a peer without spans of its own that take longer than in the baseline."""

    name = "peer-latency"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        findings = []
        for key, row, before in _pairs(context):
            shift = Shift(
                key,
                max(
                    log_ratio(row["duration_p50"], before["duration_p50"], floor=FLOOR_NS),
                    0.5 * log_ratio(row["duration_p95"], before["duration_p95"], floor=FLOOR_NS),
                )
                * confidence(row["calls"], before["calls"]),
                row["duration_p50"],
                before["duration_p50"],
                row["duration_p95"],
                before["duration_p95"],
                row["calls"],
                before["calls"],
            )
            if shift.score < THRESHOLD:
                continue
            caller = key[0]
            blamed, named = _target(context, caller, row)
            findings.append(
                Finding(
                    kind=self.name,
                    service=blamed,
                    instance=None,
                    peer=caller,
                    severity=severity_for(shift.score),
                    start_ns=_latency_onset(context, key, shift.base_p50),
                    summary=f"calls {caller} -> {named} slower: {shift.headline()}",
                    score=shift.score,
                    evidence=(
                        Evidence(
                            kind="peer-call",
                            summary=f"{caller} -> {row['peer']} (no spans of its own): "
                            + shift.describe("call duration"),
                            data={"caller": caller, "peer": row["peer"]},
                        ),
                    ),
                )
            )
        return findings


@register
class PeerErrorDetector:
    """Calls to a peer without spans of its own that fail more often than in the baseline."""

    name = "peer-errors"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        findings = []
        for key, row, before in _pairs(context):
            now_rate = row["errors"] / row["calls"]
            base_rate = before["errors"] / before["calls"]
            score = log_ratio(now_rate, base_rate, floor=RATE_FLOOR)
            score *= confidence(row["calls"], before["calls"])
            if score < THRESHOLD:
                continue
            caller = key[0]
            blamed, named = _target(context, caller, row)
            findings.append(
                Finding(
                    kind=self.name,
                    service=blamed,
                    instance=None,
                    peer=caller,
                    severity=severity_for(score),
                    start_ns=_error_onset(context, key, base_rate),
                    summary=f"calls {caller} -> {named} fail {now_rate:.0%} of the time "
                    f"(was {base_rate:.0%})",
                    score=score,
                    evidence=(
                        Evidence(
                            kind="peer-call",
                            summary=f"{row['errors']} of {row['calls']} calls from {caller} to "
                            f"{row['peer']} failed",
                            data={"caller": caller, "peer": row["peer"], "errors": row["errors"]},
                        ),
                    ),
                )
            )
        return findings
