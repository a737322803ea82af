"""Clock skew: an instance whose own timestamps jumped away from the others'.

Two kinds of evidence. Every instance's log records arrive a steady interval after they were
stamped (capture delay, or a time zone its lines leave out); the baseline learns that interval
per instance, so only a change counts. And every call puts the callee's server span inside the
caller's client span: the NTP estimate of callee-minus-caller clock per call edge sits near zero
while both clocks are right, and moves by the skew when one of them jumps. An edge only says
that one of its two ends moved; the instance whose jump explains most of its edges is the one
named. A skewed clock misorders an incident's timeline and breaks time-window joins, so it is
reported as a cause of its own, with the size of the jump, once per instance whatever the
evidence.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from stethoscope.analysis.context import AnalysisContext, Row
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register
from stethoscope.model.timeutil import format_duration_ns

__all__ = ["ClockSkewDetector"]

# Capture and scheduling jitter stay well below this; a clock set wrong does not.
MIN_SKEW_NS = 5_000_000_000
MIN_RECORDS = 10
MIN_CALLS = 10
# Edges shown in a span finding's evidence.
SHOWN_EDGES = 3

Instance = tuple[str, str]
EdgeKey = tuple[str, str, str, str]


@dataclass
class _Sighting:
    """What one kind of evidence says about one instance's clock."""

    skew_ns: float
    onset_ns: int
    evidence: Evidence


@dataclass
class _Edge:
    """One call edge between two instances: how far its clock estimate moved (still to explain)."""

    key: EdgeKey
    caller: Instance
    callee: Instance
    jump: float
    calls: int
    before: float
    after: float
    residual: float = field(init=False)

    def __post_init__(self) -> None:
        self.residual = self.jump

    def off(self, instance: Instance, skew: float) -> bool:
        """Whether the edge would still be out if `instance`'s clock were moved back by skew."""
        residual = self.residual - skew if instance == self.callee else self.residual + skew
        return abs(residual) >= MIN_SKEW_NS


@register
class ClockSkewDetector:
    """Instances whose timestamps moved against their arrival times or their peers' spans."""

    name = "clock-skew"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        from_logs = _from_logs(context)
        from_spans = _from_spans(context, corroborated=from_logs.keys())
        findings = []
        for key in sorted(from_logs.keys() | from_spans.keys()):
            sightings = [s for s in (from_logs.get(key), from_spans.get(key)) if s is not None]
            findings.append(self._finding(key, sightings, spans=key in from_spans))
        return findings

    def _finding(self, key: Instance, sightings: list[_Sighting], *, spans: bool) -> Finding:
        service, instance = key
        # Logs compare with our own clock, spans with a peer's: the first says it more directly.
        jump = sightings[0].skew_ns
        direction = "ahead" if jump > 0 else "behind"
        size = format_duration_ns(int(abs(jump)))
        how = "its records are stamped that far from when they arrived"
        if spans:
            how = "its spans sit that far from its callers' and callees'"
            if len(sightings) > 1:
                how = (
                    "its records are stamped that far from when they arrived, and its spans "
                    "sit that far from its peers'"
                )
        return Finding(
            kind=self.name,
            service=service,
            instance=instance or None,
            severity="warning",
            start_ns=min(s.onset_ns for s in sightings),
            summary=f"clock of {instance or service} is {size} {direction}: {how}",
            score=1.0 + math.log2(max(abs(s.skew_ns) for s in sightings) / MIN_SKEW_NS) / 2,
            evidence=tuple(s.evidence for s in sightings),
        )


def _from_logs(context: AnalysisContext) -> dict[Instance, _Sighting]:
    """Instances whose median stamp-minus-arrival moved by a clock's worth."""
    found = {}
    for key, row in context.clock.total.items():
        before = context.clock_baseline.total.get(key)
        if before is None or min(row["records"], before["records"]) < MIN_RECORDS:
            continue
        jump = row["offset_p50"] - before["offset_p50"]
        # A steady jump moves the median but not the spread; noise moves both.
        spread = max(row["offset_iqr"], before["offset_iqr"], 1.0)
        if abs(jump) < MIN_SKEW_NS or abs(jump) < 4 * spread:
            continue
        evidence = Evidence(
            kind="clock-offset",
            summary=f"median stamp-minus-arrival {_signed(before['offset_p50'])}"
            f" in the baseline, {_signed(row['offset_p50'])} in the window, "
            f"over {row['records']} records",
            data={"skew_ns": int(jump), "records": row["records"]},
        )
        onset = _onset(context, context.clock.buckets.get(key, []), before["offset_p50"])
        found[(key[0], key[1])] = _Sighting(jump, onset, evidence)
    return found


def _onset(context: AnalysisContext, buckets: Iterable[Row], base_offset: float) -> int:
    """The start of the first bucket whose median offset is a clock's worth from the baseline."""
    for row in buckets:
        if abs(row["offset_p50"] - base_offset) >= MIN_SKEW_NS:
            return context.scope.bucket_start_ns(row["bucket"])
    return context.scope.since_ns


def _edges(context: AnalysisContext) -> list[_Edge]:
    """Call edges with enough calls, and how far their clock estimate moved from the baseline."""
    edges = []
    for key, row in context.span_clock.total.items():
        if row["pairs"] < MIN_CALLS:
            continue
        before = context.span_clock_baseline.total.get(key)
        # An edge new in the window is judged against zero: right clocks put a callee inside
        # its caller, near the middle.
        base, base_spread = 0.0, 0.0
        if before is not None and before["pairs"] >= MIN_CALLS:
            base, base_spread = before["offset_p50"], before["offset_iqr"]
        jump = row["offset_p50"] - base
        if abs(jump) >= MIN_SKEW_NS and abs(jump) < 4 * max(row["offset_iqr"], base_spread, 1.0):
            jump = 0.0  # the estimate is all over the place: network, not a clock
        caller, caller_instance, callee, callee_instance = key
        edges.append(
            _Edge(
                key=(caller, caller_instance, callee, callee_instance),
                caller=(caller, caller_instance),
                callee=(callee, callee_instance),
                jump=jump,
                calls=row["pairs"],
                before=base,
                after=row["offset_p50"],
            )
        )
    return edges


def _from_spans(
    context: AnalysisContext, *, corroborated: Collection[Instance]
) -> dict[Instance, _Sighting]:
    """Instances whose clock jump explains the moved call edges, picked greedily: the instance
    that puts the most of its edges right (and leaves most of them right) first. Between two
    that explain the same (the two ends of a lone edge), one whose logs also moved wins."""
    touching: dict[Instance, list[_Edge]] = {}
    for edge in _edges(context):
        touching.setdefault(edge.caller, []).append(edge)
        touching.setdefault(edge.callee, []).append(edge)
    found: dict[Instance, _Sighting] = {}
    while True:
        best: tuple[tuple[int, int, bool], Instance] | None = None
        for instance in sorted(touching.keys() - found.keys()):
            gain = _candidate(instance, touching[instance])
            if gain is not None:
                rank = (*gain, instance in corroborated)
                if best is None or rank > best[0]:
                    best = (rank, instance)
        if best is None:
            return found
        instance = best[1]
        mine = touching[instance]
        skew = _proposed(instance, mine)
        fixed = [e for e in mine if e.off(instance, 0.0) and not e.off(instance, skew)]
        for edge in mine:
            edge.residual += -skew if instance == edge.callee else skew
        found[instance] = _span_sighting(context, instance, skew, fixed)


def _proposed(instance: Instance, edges: list[_Edge]) -> float:
    """The skew this instance's moved edges point to (the median of what each says)."""
    said = [
        e.residual if instance == e.callee else -e.residual for e in edges if e.off(instance, 0)
    ]
    return statistics.median(said) if said else 0.0


def _candidate(instance: Instance, edges: list[_Edge]) -> tuple[int, int] | None:
    """(edges put right, calls on them) if moving this instance's clock puts more of its edges
    right than wrong and leaves most of them right; None otherwise."""
    skew = _proposed(instance, edges)
    if abs(skew) < MIN_SKEW_NS:
        return None
    fixed = [e for e in edges if e.off(instance, 0.0) and not e.off(instance, skew)]
    broken = [e for e in edges if not e.off(instance, 0.0) and e.off(instance, skew)]
    right_after = sum(1 for e in edges if not e.off(instance, skew))
    if len(fixed) <= len(broken) or 2 * right_after <= len(edges):
        return None
    return len(fixed) - len(broken), sum(e.calls for e in fixed)


def _span_sighting(
    context: AnalysisContext, instance: Instance, skew: float, moved: list[_Edge]
) -> _Sighting:
    """The evidence of the edges that moved with this instance's clock, and when they did."""
    moved.sort(key=lambda e: -e.calls)
    parts = []
    for edge in moved[:SHOWN_EDGES]:
        peer = edge.caller if instance == edge.callee else edge.callee
        role = "caller" if instance == edge.callee else "callee"
        parts.append(
            f"against {role} {_name(peer)}: {_signed(edge.before)} in the baseline, "
            f"{_signed(edge.after)} in the window over {edge.calls} calls"
        )
    if len(moved) > SHOWN_EDGES:
        parts.append(f"and {len(moved) - SHOWN_EDGES} more edges")
    evidence = Evidence(
        kind="span-clock-offset",
        summary="median callee-minus-caller clock estimate " + "; ".join(parts),
        data={
            "skew_ns": int(skew),
            "calls": sum(e.calls for e in moved),
            "peers": sorted({_name(e.caller if instance == e.callee else e.callee) for e in moved}),
        },
    )
    onsets = [
        _onset(context, context.span_clock.buckets.get(edge.key, []), edge.before) for edge in moved
    ]
    return _Sighting(skew, min(onsets, default=context.scope.since_ns), evidence)


def _name(instance: Instance) -> str:
    return instance[1] or instance[0]


def _signed(ns: float) -> str:
    return ("-" if ns < 0 else "+") + format_duration_ns(int(abs(ns)))
