"""A chosen baseline must be healthy: the stretch of it that was not itself an incident.

When the user gives no baseline, the period before the window is used; if that period held an
earlier incident, comparing with it would hide the new one. Buckets whose error rate stands out
from the baseline's own median are left out, and the longest run of ordinary buckets is kept.
"""

from __future__ import annotations

import statistics

from stethoscope.analysis.context import AnalysisContext

__all__ = ["healthy_stretch"]

MIN_BUCKETS = 4
MIN_ERRORS = 5
# A bucket is unusual from three times the median error rate, and five points above it.
RATE_FACTOR = 3.0
RATE_MARGIN = 0.05
# Narrowing below a quarter of the baseline would trade one bias for another.
MIN_KEPT = 0.25


def healthy_stretch(context: AnalysisContext) -> tuple[int, int] | None:
    """The longest run of the baseline's ordinary buckets, or None to keep it whole."""
    scope = context.scope
    sums = context.spans_baseline.bucket_sums(("spans", "errors"))
    rates = {b: t["errors"] / t["spans"] for b, t in sums.items() if t["spans"]}
    if len(rates) < MIN_BUCKETS:
        return None
    median = statistics.median(rates.values())
    unusual = {
        bucket
        for bucket, rate in rates.items()
        if rate > max(RATE_FACTOR * median, median + RATE_MARGIN)
        and sums[bucket]["errors"] >= MIN_ERRORS
    }
    if not unusual:
        return None
    start, end = scope.baseline
    count = -(-(end - start) // scope.bucket_ns)
    best, run_start = (0, 0), 0
    for bucket in range(count + 1):
        if bucket == count or bucket in unusual:
            if bucket - run_start > best[1] - best[0]:
                best = (run_start, bucket)
            run_start = bucket + 1
    if best[1] - best[0] < MIN_KEPT * count:
        return None
    return start + best[0] * scope.bucket_ns, min(start + best[1] * scope.bucket_ns, end)
