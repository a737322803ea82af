"""Clock skew: an instance whose own timestamps jumped away from when its records arrived.

Every instance's records arrive a steady interval after they were stamped (capture delay, or a
time zone its lines leave out); the baseline learns that interval per instance, so only a
change counts. A skewed clock misorders an incident's timeline and breaks time-window joins,
so it is reported as a cause of its own, with the size of the jump.
"""

from __future__ import annotations

import math

from stethoscope.analysis.context import AnalysisContext
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register
from stethoscope.model.timeutil import format_duration_ns

__all__ = ["ClockSkewDetector"]

# Capture and scheduling jitter stay well below this; a clock set wrong does not.
MIN_SKEW_NS = 5_000_000_000
MIN_RECORDS = 10


@register
class ClockSkewDetector:
    """Instances whose record timestamps moved against their arrival times."""

    name = "clock-skew"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        findings = []
        for key, row in context.clock.total.items():
            service, instance = key
            before = context.clock_baseline.total.get(key)
            if before is None or min(row["records"], before["records"]) < MIN_RECORDS:
                continue
            jump = row["offset_p50"] - before["offset_p50"]
            # A steady jump moves the median but not the spread; noise moves both.
            spread = max(row["offset_iqr"], before["offset_iqr"], 1.0)
            if abs(jump) < MIN_SKEW_NS or abs(jump) < 4 * spread:
                continue
            direction = "ahead" if jump > 0 else "behind"
            size = format_duration_ns(int(abs(jump)))
            findings.append(
                Finding(
                    kind=self.name,
                    service=service,
                    instance=instance or None,
                    severity="warning",
                    start_ns=self._onset(context, key, before["offset_p50"]),
                    summary=f"clock of {instance or service} is {size} {direction}: its records "
                    "are stamped that far from when they arrived",
                    score=1.0 + math.log2(abs(jump) / MIN_SKEW_NS) / 2,
                    evidence=(
                        Evidence(
                            kind="clock-offset",
                            summary=f"median stamp-minus-arrival {_signed(before['offset_p50'])}"
                            f" in the baseline, {_signed(row['offset_p50'])} in the window, "
                            f"over {row['records']} records",
                            data={"skew_ns": int(jump), "records": row["records"]},
                        ),
                    ),
                )
            )
        return findings

    @staticmethod
    def _onset(context: AnalysisContext, key: tuple[str, str], base_offset: float) -> int:
        for row in context.clock.buckets.get(key, []):
            if abs(row["offset_p50"] - base_offset) >= MIN_SKEW_NS:
                return context.scope.bucket_start_ns(row["bucket"])
        return context.scope.since_ns


def _signed(ns: float) -> str:
    return ("-" if ns < 0 else "+") + format_duration_ns(int(abs(ns)))
