"""Ranking: from findings about many components to the few suspects that explain them.

A suspect's score adds its strongest finding of each kind, so independent kinds of evidence
(slower, erroring, gone quiet) reinforce each other while many findings of one kind do not pile
up. Then the call graph is respected: the symptoms of a caller (findings a failing callee can
cause, such as errors passed up) never outweigh a callee that changed at the same time or
earlier. The same holds for a service whose new or rising log messages name another service:
its log findings never outweigh the service named. Findings about a component's own work (self
time, its side of an edge) are causes, not symptoms, and are never capped.
"""

from __future__ import annotations

from collections import defaultdict

from stethoscope.analysis.context import AnalysisContext
from stethoscope.analysis.findings import Finding, Suspect

__all__ = ["rank"]

# A caller capped by its callee ends just below it.
CALLER_CAP = 0.95
MAX_CAP_ROUNDS = 20
# A service's log findings are explained by a service its logs name (detectors/mentions.py).
MENTION_KIND = "named-in-logs"
LOG_KINDS = frozenset({"new-logs", "quiet-logs", "log-errors"})
# Less traffic and fewer log messages can be a service's callers' doing (a stuck caller sends
# less downstream) as well as its callees'.
TRAFFIC_KINDS = frozenset({"throughput", "quiet-logs"})
# A symptom (errors, silence) says less about where the fault is than a change in a component's
# own work, since it also shows wherever the failure travels.
SYMPTOM_WEIGHT = 0.5


def rank(findings: list[Finding], context: AnalysisContext) -> list[Suspect]:
    """Suspects best first, each with the findings that put it there."""
    grouped: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        grouped[finding.suspect].append(finding)
    named_by = _named_by(findings)

    def explainers(service: str) -> set[str]:
        """Who can explain this service's symptoms: its callees, and whoever its logs name."""
        return (_callees(service, context) | named_by.get(service, set())) - {service}

    def explainable(service: str, finding: Finding) -> bool:
        return finding.symptom or (finding.kind in LOG_KINDS and service in named_by)

    def feeders(service: str) -> set[str]:
        """Who can explain this service's drop in traffic: its callers too (a slow or stuck
        caller sends less downstream)."""
        return explainers(service) | (context.callers.get(service, set()) - {service})

    whole = {service: _score(found) for service, found in grouped.items()}
    onsets = {service: _onset(found) for service, found in grouped.items()}
    capping: dict[str, tuple[float, set[str]]] = {}
    for service, found in grouped.items():
        traffic = [f for f in found if f.kind in TRAFFIC_KINDS and f.instance is None]
        explained = traffic + [f for f in found if explainable(service, f) and f not in traffic]
        capping[service] = (_score(explained), feeders(service) if traffic else explainers(service))
    # Caps only lower scores and callers and callees can cap each other, so they are applied
    # together until nothing moves: the result does not depend on the order services are seen.
    scores = dict(whole)
    for _ in range(MAX_CAP_ROUNDS):
        capped = {
            service: whole[service]
            - _excess(explained, service, who, scores, onsets, context.scope.bucket_ns)
            for service, (explained, who) in capping.items()
        }
        settled = all(abs(capped[name] - scores[name]) < 1e-9 for name in scores)
        scores = capped
        if settled:
            break
    suspects = [
        Suspect(
            service=service,
            instance=_common_instance(found),
            score=scores[service],
            onset_ns=onsets[service],
            reasons=tuple(sorted({finding.kind for finding in found})),
            findings=tuple(sorted(found, key=lambda finding: finding.score, reverse=True)),
        )
        for service, found in grouped.items()
    ]
    suspects.sort(key=lambda suspect: (-suspect.score, suspect.onset_ns or 0, suspect.service))
    return suspects


def _excess(
    explained: float,
    service: str,
    explainers: set[str],
    scores: dict[str, float],
    onsets: dict[str, int | None],
    slack_ns: int,
) -> float:
    """How much of `explained` goes beyond the best explainer that changed no later."""
    eligible = [
        scores[other]
        for other in explainers
        if other in scores and _started_no_later(onsets[other], onsets[service], slack_ns)
    ]
    if not explained or not eligible:
        return 0.0
    return explained - min(explained, max(eligible) * CALLER_CAP)


def _named_by(findings: list[Finding]) -> dict[str, set[str]]:
    """Writer -> the services its logs name (from the named-in-logs findings)."""
    named: dict[str, set[str]] = defaultdict(set)
    for finding in findings:
        if finding.kind == MENTION_KIND and finding.peer:
            named[finding.peer].add(finding.service)
    return named


def _score(findings: list[Finding]) -> float:
    strongest: dict[str, float] = {}
    for finding in findings:
        weight = SYMPTOM_WEIGHT if finding.symptom else 1.0
        strongest[finding.kind] = max(strongest.get(finding.kind, 0.0), weight * finding.score)
    return sum(strongest.values())


def _onset(findings: list[Finding]) -> int | None:
    starts = [finding.start_ns for finding in findings if finding.start_ns is not None]
    return min(starts) if starts else None


def _common_instance(findings: list[Finding]) -> str | None:
    """The one instance the findings name, if they name only one (service-wide ones name none)."""
    instances = {finding.instance for finding in findings if finding.instance}
    return instances.pop() if len(instances) == 1 else None


def _callees(service: str, context: AnalysisContext) -> set[str]:
    return {callee for callee, callers in context.callers.items() if service in callers}


def _started_no_later(callee: int | None, caller: int | None, slack_ns: int) -> bool:
    if callee is None or caller is None:
        return True
    return callee <= caller + slack_ns
