"""What analysis reports: findings (anomalies) with their evidence, ranked into suspects.

The JSON shapes are the `steth why --json` contract of shared/DESIGN.md: times appear both as
ISO-8601 text (for people and the contract) and as `_ns` integers (for scripts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stethoscope.model.timeutil import format_ns

__all__ = ["Evidence", "Finding", "Report", "Suspect"]


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """One fact behind a finding: a number that changed, an example trace, a log line."""

    kind: str
    summary: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The evidence as the JSON contract shows it."""
        return {"kind": self.kind, "summary": self.summary, **self.data}


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One anomaly of one component. `score` orders findings: about log2 of the change."""

    kind: str  # the detector's name, e.g. "latency", "edge-latency", "errors"
    service: str
    instance: str | None
    severity: str
    start_ns: int | None  # onset: the first bucket where the change shows
    summary: str
    score: float
    evidence: tuple[Evidence, ...] = ()
    peer: str | None = None  # for an edge finding: the service on the other side
    blame: str | None = None  # the service this finding counts against when ranking
    symptom: bool = False  # something a failing callee could cause (ranking caps it)

    @property
    def suspect(self) -> str:
        """The service this finding points at."""
        return self.blame or self.service

    def to_json(self) -> dict[str, Any]:
        """The finding as the JSON contract shows it."""
        found: dict[str, Any] = {
            "kind": self.kind,
            "service": self.service,
            "instance": self.instance,
            "severity": self.severity,
            "start": format_ns(self.start_ns) if self.start_ns is not None else None,
            "start_ns": self.start_ns,
            "summary": self.summary,
            "score": round(self.score, 3),
            "evidence": [item.to_json() for item in self.evidence],
        }
        if self.peer is not None:
            found["peer"] = self.peer
        return found


@dataclass(frozen=True, kw_only=True)
class Suspect:
    """A component ranked as a possible root cause, with every finding that put it there."""

    service: str
    instance: str | None
    score: float
    onset_ns: int | None
    reasons: tuple[str, ...]
    findings: tuple[Finding, ...]

    def to_json(self) -> dict[str, Any]:
        """The suspect as the JSON contract shows it."""
        return {
            "service": self.service,
            "instance": self.instance,
            "score": round(self.score, 3),
            "onset": format_ns(self.onset_ns) if self.onset_ns is not None else None,
            "onset_ns": self.onset_ns,
            "reasons": list(self.reasons),
            "evidence": [
                {
                    "kind": finding.kind,
                    "summary": finding.summary,
                    "service": finding.service,
                    "start": format_ns(finding.start_ns) if finding.start_ns is not None else None,
                    "details": [item.to_json() for item in finding.evidence],
                }
                for finding in self.findings
            ],
        }


@dataclass(frozen=True, kw_only=True)
class Report:
    """The answer to "what broke": the window looked at, suspects best first, all findings."""

    since_ns: int
    until_ns: int
    baseline: tuple[int, int] | None
    suspects: tuple[Suspect, ...]
    findings: tuple[Finding, ...]

    def to_json(self) -> dict[str, Any]:
        """The report in the `steth why --json` shape."""
        baseline = None
        if self.baseline is not None:
            start, end = self.baseline
            baseline = {"start": format_ns(start), "end": format_ns(end)}
        return {
            "window": {"start": format_ns(self.since_ns), "end": format_ns(self.until_ns)},
            "baseline": baseline,
            "suspects": [suspect.to_json() for suspect in self.suspects],
            "findings": [finding.to_json() for finding in self.findings],
        }
