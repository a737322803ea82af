"""`steth why`: run every detector over the incident window and rank what they found."""

from __future__ import annotations

from dataclasses import replace

from stethoscope.analysis.baseline import healthy_stretch
from stethoscope.analysis.context import AnalysisContext, ProfileSource, Scope
from stethoscope.analysis.findings import Finding, Report
from stethoscope.analysis.rank import rank
from stethoscope.analysis.registry import detectors

__all__ = ["DEFAULT_BUCKETS", "MIN_BUCKET_NS", "default_baseline", "explain", "scope_for"]

# Onsets are found to a twentieth of the window, never finer than five seconds.
DEFAULT_BUCKETS = 20
MIN_BUCKET_NS = 5_000_000_000
MIN_BASELINE_NS = 15 * 60 * 1_000_000_000


def default_baseline(since_ns: int, until_ns: int) -> tuple[int, int]:
    """The period just before the window: as long as the window, and at least 15 minutes."""
    length = max(until_ns - since_ns, MIN_BASELINE_NS)
    return since_ns - length, since_ns


def scope_for(
    since_ns: int,
    until_ns: int,
    *,
    baseline: tuple[int, int] | None = None,
    service: str | None = None,
) -> Scope:
    """The analysis scope with the default baseline and onset resolution filled in."""
    bucket = max((until_ns - since_ns) // DEFAULT_BUCKETS, MIN_BUCKET_NS)
    scope = Scope(
        since_ns=since_ns,
        until_ns=until_ns,
        baseline=baseline or default_baseline(since_ns, until_ns),
        bucket_ns=bucket,
        service=service,
        baseline_chosen=baseline is None,
    )
    scope.validate()
    return scope


def explain(source: ProfileSource, scope: Scope) -> Report:
    """Every finding in the window, and the suspects ranked best first."""
    context = AnalysisContext(source, scope)
    if scope.baseline_chosen:
        stretch = healthy_stretch(context)
        if stretch is not None:
            scope = replace(scope, baseline=stretch)
            context = AnalysisContext(source, scope)
    findings: list[Finding] = []
    for detector in detectors():
        findings.extend(detector.detect(context))
    if scope.service is not None:
        findings = _concerning(findings, scope.service, context)
    findings.sort(key=lambda finding: finding.score, reverse=True)
    return Report(
        since_ns=scope.since_ns,
        until_ns=scope.until_ns,
        baseline=scope.baseline,
        suspects=tuple(rank(findings, context)),
        findings=tuple(findings),
    )


def _concerning(findings: list[Finding], service: str, context: AnalysisContext) -> list[Finding]:
    """Findings about `service` or anything it depends on, directly or not."""
    reach = {service}
    frontier = [service]
    while frontier:
        caller = frontier.pop()
        for callee, callers in context.callers.items():
            if caller in callers and callee not in reach:
                reach.add(callee)
                frontier.append(callee)
    return [f for f in findings if f.service in reach or f.suspect in reach]
