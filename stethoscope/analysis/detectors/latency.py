"""Latency shifts, blamed where the time is spent.

A service's own work is its spans' self time (duration minus children), so a slow callee does
not make its callers look slow. Time between a caller's span and the callee's span under it
(network, queueing, the client's own overhead) belongs to the edge; an edge that slowed down is
blamed on the side with more witnesses: a callee whose calls from several callers slowed (its
network or its intake), or a caller whose calls to several callees slowed (its own CPU); with
no witness either way, the callee, unless the caller's own code slowed down as much.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from stethoscope.analysis.compare import confidence, log_ratio, severity_for
from stethoscope.analysis.context import AnalysisContext, Profile
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register
from stethoscope.model.timeutil import format_duration_ns

__all__ = ["EdgeLatencyDetector", "SelfLatencyDetector"]

# Changes smaller than this are below what anyone on call would act on.
FLOOR_NS = 1_000_000
# A component counts as slower from a doubling (score 1.0) on, scaled by confidence.
THRESHOLD = 1.0
EXAMPLES = 3


@dataclass(frozen=True)
class Shift:
    """One compared distribution: a span operation's self time or an edge's gap."""

    key: tuple[Any, ...]
    score: float
    now_p50: float
    base_p50: float
    now_p95: float
    base_p95: float
    count: int
    base_count: int

    def headline(self) -> str:
        """'p50 3.1ms -> 176ms (56x)', or the p95 when only the tail moved."""
        p50 = (self.now_p50 + FLOOR_NS) / (self.base_p50 + FLOOR_NS)
        p95 = (self.now_p95 + FLOOR_NS) / (self.base_p95 + FLOOR_NS)
        if p50 >= p95**0.5:
            before, after, ratio, name = self.base_p50, self.now_p50, p50, "p50"
        else:
            before, after, ratio, name = self.base_p95, self.now_p95, p95, "p95"
        return (
            f"{name} {format_duration_ns(int(before))} -> {format_duration_ns(int(after))} "
            f"({ratio:.1f}x)"
        )

    def describe(self, what: str) -> str:
        """'self time p50 3.1ms -> 176ms (56x), p95 ..., 566 in the window vs 224 ...'."""
        ratio = (self.now_p50 + FLOOR_NS) / (self.base_p50 + FLOOR_NS)
        return (
            f"{what} p50 {format_duration_ns(int(self.base_p50))} -> "
            f"{format_duration_ns(int(self.now_p50))} ({ratio:.1f}x), p95 "
            f"{format_duration_ns(int(self.base_p95))} -> {format_duration_ns(int(self.now_p95))}"
            f", {self.count} in the window vs {self.base_count} in the baseline"
        )


def _shift(
    key: tuple[Any, ...], now: dict[str, Any], base: dict[str, Any], column: str, count: str
) -> Shift:
    p50 = log_ratio(now[f"{column}_p50"], base[f"{column}_p50"], floor=FLOOR_NS)
    p95 = log_ratio(now[f"{column}_p95"], base[f"{column}_p95"], floor=FLOOR_NS)
    # The median moves with the bulk of requests; the tail alone is noisier, so it counts half.
    score = max(p50, 0.5 * p95) * confidence(now[count], base[count])
    return Shift(
        key,
        score,
        now[f"{column}_p50"],
        base[f"{column}_p50"],
        now[f"{column}_p95"],
        base[f"{column}_p95"],
        now[count],
        base[count],
    )


def _shifts(
    now: Profile, base: Profile, column: str, count: str, *, per_instance: bool = False
) -> list[Shift]:
    """Shifts of every component present in both windows.

    Service-wide rows by default; with `per_instance`, each instance's row against the
    service-wide baseline (an instance restarted since the baseline has no baseline of its own).
    """
    found = []
    for key, row in now.total.items():
        if (key[1] is not None) != per_instance:
            continue
        before = base.total.get((key[0], None, *key[2:]))
        if before is not None and row[count] and before[count]:
            found.append(_shift(key, row, before, column, count))
    return found


def instances_by_service(profile: Profile) -> dict[str, set[str]]:
    """The instances seen per service in a profile."""
    seen: dict[str, set[str]] = defaultdict(set)
    for key in profile.total:
        if key[1] is not None:
            seen[key[0]].add(key[1])
    return seen


def odd_instance(shifts: list[Shift], instances: set[str]) -> str | None:
    """The one instance behind a change, when only it changed among several."""
    changed = {shift.key[1] for shift in shifts}
    if len(instances) >= 2 and len(changed) == 1:
        return changed.pop()
    return None


def _onset(context: AnalysisContext, profile: Profile, shift: Shift, column: str) -> int:
    """Start of the first bucket where the component ran at least twice its baseline median."""
    for row in profile.buckets.get(shift.key, []):
        if log_ratio(row[f"{column}_p50"], shift.base_p50, floor=FLOOR_NS) >= THRESHOLD:
            return context.scope.bucket_start_ns(row["bucket"])
    return context.scope.since_ns


@register
class SelfLatencyDetector:
    """Operations whose own (exclusive) time grew, grouped by service."""

    name = "latency"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        by_service: dict[str, list[Shift]] = defaultdict(list)
        for shift in _shifts(context.spans, context.spans_baseline, "self", "local_spans"):
            if shift.score >= THRESHOLD:
                by_service[shift.key[0]].append(shift)
        by_instance: dict[str, list[Shift]] = defaultdict(list)
        for shift in _shifts(
            context.spans, context.spans_baseline, "self", "local_spans", per_instance=True
        ):
            if shift.score >= THRESHOLD:
                by_instance[shift.key[0]].append(shift)
        instances = instances_by_service(context.spans)
        findings = []
        for service in by_service.keys() | by_instance.keys():
            instance = odd_instance(by_instance[service], instances[service])
            # One replica of several changing is diluted in the service-wide numbers: use its own.
            shifts = by_instance[service] if instance else by_service[service]
            if shifts:
                findings.append(self._finding(context, service, instance, shifts))
        return findings

    def _finding(
        self, context: AnalysisContext, service: str, instance: str | None, shifts: list[Shift]
    ) -> Finding:
        shifts.sort(key=lambda shift: shift.score, reverse=True)
        top = shifts[0]
        where = f" on {instance}" if instance else ""
        return Finding(
            kind=self.name,
            service=service,
            instance=instance,
            severity=severity_for(top.score),
            start_ns=_onset(context, context.spans, top, "self"),
            summary=f"slower in its own code{where}: {top.key[2]} self time {top.headline()}",
            score=top.score,
            evidence=tuple(
                Evidence(
                    kind="self-time",
                    summary=f"{shift.key[2]}: {shift.describe('self time')}",
                    data={"operation": shift.key[2], "score": round(shift.score, 3)},
                )
                for shift in shifts[:EXAMPLES]
            ),
        )


@register
class EdgeLatencyDetector:
    """Calls between two services that take longer between the two sides."""

    name = "edge-latency"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        shifts = [
            shift
            for shift in _shifts(context.edges, context.edges_baseline, "gap", "calls")
            if shift.score >= THRESHOLD
        ]
        slow_self = {
            finding.service: finding.score for finding in SelfLatencyDetector().detect(context)
        }
        out_edges = _fan(context.edges_baseline, context.edges, side=0)
        in_edges = _fan(context.edges_baseline, context.edges, side=2)
        slow_out: dict[str, int] = defaultdict(int)
        slow_in: dict[str, int] = defaultdict(int)
        for shift in shifts:
            slow_out[shift.key[0]] += 1
            slow_in[shift.key[2]] += 1
        findings = []
        for shift in shifts:
            caller, callee = shift.key[0], shift.key[2]
            # Other slow edges are independent witnesses: out of the caller for the caller's own
            # slowness (its CPU), into the callee for the callee's (its network or intake).
            blame = _blame(
                caller,
                callee,
                caller_support=slow_out[caller] - 1,
                callee_support=slow_in[callee] - 1,
                caller_self=slow_self.get(caller, 0.0),
                edge_score=shift.score,
            )
            findings.append(
                Finding(
                    kind=self.name,
                    service=callee,
                    instance=None,
                    peer=caller,
                    blame=blame,
                    severity=severity_for(shift.score),
                    start_ns=_onset(context, context.edges, shift, "gap"),
                    summary=f"calls {caller} -> {callee} slower between the services: "
                    f"gap {shift.headline()}",
                    score=shift.score,
                    evidence=(
                        Evidence(
                            kind="edge-gap",
                            summary=shift.describe("gap (caller span minus callee span)")
                            + f"; blamed on {blame}: calls to {slow_out[caller]} of "
                            f"{out_edges[caller]} callees of {caller} and from {slow_in[callee]} "
                            f"of {in_edges[callee]} callers of {callee} slowed",
                            data={
                                "caller": caller,
                                "callee": callee,
                                "slow_edges_out_of_caller": slow_out[caller],
                                "edges_out_of_caller": out_edges[caller],
                                "slow_edges_into_callee": slow_in[callee],
                                "edges_into_callee": in_edges[callee],
                            },
                        ),
                    ),
                )
            )
        return findings


def _fan(*profiles: Profile, side: int) -> dict[str, int]:
    """How many distinct peers each service calls (side 0) or is called by (side 2)."""
    peers: dict[str, set[str]] = defaultdict(set)
    for profile in profiles:
        for key in profile.total:
            if key[1] is None:
                peers[key[side]].add(key[2 - side])
    return {service: len(found) for service, found in peers.items()}


def _blame(
    caller: str,
    callee: str,
    *,
    caller_support: int,
    callee_support: int,
    caller_self: float,
    edge_score: float,
) -> str:
    """The side of a slow edge that explains more of what slowed down; the callee by default.

    With no other witness on either side, the caller is blamed only when its own code slowed
    down by at least half as much as the edge did (a CPU-starved caller).
    """
    if caller_support != callee_support:
        return caller if caller_support > callee_support else callee
    return caller if caller_self >= 0.5 * edge_score else callee
