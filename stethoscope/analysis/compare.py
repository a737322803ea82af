"""How a number in the incident window is compared with the same number in the baseline.

Scores are log2 ratios: 1.0 means doubled. A floor keeps tiny baselines (a 0.1 ms span) from
turning noise into huge ratios, and a minimum count keeps a handful of samples from deciding.
"""

from __future__ import annotations

import math

__all__ = ["MIN_SAMPLES", "confidence", "log_ratio", "severity_for"]

MIN_SAMPLES = 3
# Counts at which a comparison is fully trusted; fewer samples scale the score down.
TRUSTED_SAMPLES = 30


def log_ratio(now: float, base: float, *, floor: float) -> float:
    """log2((now + floor) / (base + floor)): symmetric, finite, 0 when nothing changed."""
    return math.log2((max(now, 0.0) + floor) / (max(base, 0.0) + floor))


def confidence(now_count: int, base_count: int) -> float:
    """How much to trust a comparison of two samples of these sizes, 0..1."""
    smaller = min(now_count, base_count)
    if smaller < MIN_SAMPLES:
        return 0.0
    return min(1.0, math.sqrt(smaller / TRUSTED_SAMPLES))


def severity_for(score: float) -> str:
    """Severity of a finding by its score (log2 of the change)."""
    if score >= 3.0:
        return "critical"
    if score >= 1.5:
        return "warning"
    return "info"
