"""Traffic that dropped or stopped: a service or instance gone quiet, an edge no longer called.

Counts are compared as rates over the time that holds data, and a drop needs both a ratio (at
least a quarter gone) and a count no baseline noise explains (Poisson). Less traffic flows
downstream: when a service's callers dropped as much, its drop is theirs, so it is reported
only where it starts; callers held up by a slow callee send less, so a drop is a symptom that
ranking lets its callees and callers explain. An instance that sent spans regularly and
stopped while its service goes on is reported on its own: a crashed or hung replica.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from stethoscope.analysis.compare import severity_for
from stethoscope.analysis.context import AnalysisContext, Profile
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register

__all__ = ["ThroughputDetector"]

Z_SIGNIFICANT = 3.0
MIN_EXPECTED = 10.0
# A drop this close to its callers' drop is theirs.
PASSED_ON = 0.5


def _totals(profile: Profile, *, per_instance: bool) -> dict[tuple[str, str | None], int]:
    """Span counts per service (or per (service, instance)) over all operations."""
    counts: dict[tuple[str, str | None], int] = defaultdict(int)
    for (service, instance, _), row in profile.total.items():
        if (instance is not None) == per_instance:
            counts[(service, instance)] += row["spans"]
    return counts


def _drop(count: int, expected: float) -> tuple[float, float]:
    """(log2 of expected over seen, Poisson z of the shortfall)."""
    return math.log2((expected + 1.0) / (count + 1.0)), (expected - count) / math.sqrt(expected + 1)


def _last_bucket(profile: Profile, service: str, instance: str | None) -> int:
    last = -1
    for key in profile.buckets:
        if key[0] == service and key[1] == instance:
            last = max([last, *(row["bucket"] for row in profile.buckets[key])])
    return last


@register
class ThroughputDetector:
    """Services and instances whose span traffic dropped or stopped."""

    name = "throughput"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        if not context.spans.active:
            return []  # nothing in the window at all: no data yet (a live window), not a drop
        scale = context.active_seconds(window=True) / context.active_seconds(window=False)
        now = _totals(context.spans, per_instance=False)
        before = _totals(context.spans_baseline, per_instance=False)
        drops: dict[str, float] = {}
        for (service, _), count in before.items():
            expected = count * scale
            ratio, z = _drop(now.get((service, None), 0), expected)
            if expected >= MIN_EXPECTED and z >= Z_SIGNIFICANT and ratio >= 2.0:
                drops[service] = ratio
        findings = [
            self._finding(context, service, None, now.get((service, None), 0), before, scale)
            for service, ratio in drops.items()
            if not any(
                drops.get(caller, 0.0) >= ratio * PASSED_ON
                for caller in context.callers.get(service, ())
            )
        ]
        findings += self._silent_instances(context, scale, drops)
        return findings

    def _silent_instances(
        self, context: AnalysisContext, scale: float, drops: dict[str, float]
    ) -> list[Finding]:
        """Instances that stopped while their service went on."""
        now = _totals(context.spans, per_instance=True)
        before = _totals(context.spans_baseline, per_instance=True)
        findings = []
        for (service, instance), count in before.items():
            expected = count * scale
            seen = now.get((service, instance), 0)
            if service in drops or expected < MIN_EXPECTED or seen > expected / 8:
                continue
            findings.append(self._finding(context, service, instance, seen, before, scale))
        return findings

    def _finding(
        self,
        context: AnalysisContext,
        service: str,
        instance: str | None,
        seen: int,
        before: dict[tuple[str, Any], int],
        scale: float,
    ) -> Finding:
        expected = before[(service, instance)] * scale
        ratio, _ = _drop(seen, expected)
        last = _last_bucket(context.spans, service, instance)
        # Stopped while others still sent: data merely not written yet stops everyone at once.
        stopped = last < max(context.spans.active) - 1
        who = instance or service
        what = "stopped sending spans" if stopped else f"traffic fell to {seen} spans"
        score = min(ratio, 4.0) + (1.0 if stopped else 0.0)
        return Finding(
            kind=self.name,
            service=service,
            instance=instance,
            severity=severity_for(score),
            start_ns=context.scope.bucket_start_ns(last + 1) if stopped else context.scope.since_ns,
            summary=f"{who} {what} (about {expected:.0f} expected)",
            score=score,
            # Callers waiting on a slow or failing callee send less: a drop can be its callees';
            # one replica silent among busy peers is its own.
            symptom=instance is None,
            evidence=(
                Evidence(
                    kind="span-count",
                    summary=f"{seen} spans in the window where the baseline rate gives "
                    f"{expected:.0f}",
                    data={"seen": seen, "expected": round(expected)},
                ),
            ),
        )
