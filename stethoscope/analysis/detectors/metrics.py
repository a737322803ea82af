"""Metric change points: a series whose level left its baseline, CPU running hot, memory leaking.

Each series (service, instance, metric, attribute set) is compared bucket by bucket with its
baseline, robustly: the baseline's median and MAD (scaled to a standard deviation, and never
below 5% of the median, so a flat baseline does not turn a tiny step into a huge one). The onset
is the first bucket at least Z_SHIFT deviations away after which most buckets stay away (a spike
is not a shift). The score is the smaller of two views of the change, so that both must be
large: its size in deviations, log2(1 + z / Z_SHIFT), and its ratio, log2 of after / before.
Counters are compared as rates (the store gives per-second rates), never as levels. CPU ratios
have an absolute floor too: an idle process going from 2% to 4% has not changed anything.

A level shift is a symptom (load moves every resource metric of every service on the path);
CPU that rose and memory that grows steadily are causes at the instance. Growth is a positive
Theil-Sen slope over the window's buckets, steady (most pairs of buckets rise), at a pace that
would double the baseline level within the window, and faster than the baseline grew (a counter
exported as a gauge grows all the time and is no leak).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from stethoscope.analysis.compare import log_ratio, severity_for
from stethoscope.analysis.context import AnalysisContext
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register
from stethoscope.model.timeutil import format_duration_ns

__all__ = ["CpuDetector", "MemoryGrowthDetector", "MetricShiftDetector", "theil_sen"]

Key = tuple[Any, ...]

# Fewer baseline buckets than this say nothing about a series' normal spread.
MIN_BASELINE_BUCKETS = 6
MIN_WINDOW_BUCKETS = 3
MAD_TO_SIGMA = 1.4826
REL_FLOOR = 0.05
Z_SHIFT = 4.0
# Of the buckets from the onset on, at least this share must stay beyond the threshold.
SUSTAINED = 0.6
THRESHOLD = 1.0
SHIFT_CAP = 2.0
CPU_CAP = 3.0
# CPU below a twentieth (of a core, or of the machine) is idle: changes under it are noise.
CPU_FLOOR = 0.05
SATURATED = 0.9  # of a core, or of the whole machine for a utilization in 0..1
SATURATION_BONUS = 0.5
GROWTH_CAP = 4.0
STEADY = 0.75  # share of rising bucket pairs
BASELINE_GROWTH_SHARE = 0.25
EXAMPLES = 3


def theil_sen(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """The median of pairwise slopes, and the share of pairs that rise (steadiness)."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    keep = dx != 0
    if not keep.any():
        return 0.0, 0.0
    slopes = (y[j] - y[i])[keep] / dx[keep]
    return float(np.median(slopes)), float(np.mean(slopes > 0))


@dataclass(frozen=True)
class Change:
    """One series' departure from its baseline."""

    key: Key
    unit: str
    before: float
    after: float
    z: float
    score: float
    onset_bucket: int

    @property
    def up(self) -> bool:
        """Whether the level rose."""
        return self.after > self.before

    def describe(self) -> str:
        """'process.cpu.utilization 0.02 -> 0.51 (25x, 60 deviations)'."""
        ratio = (abs(self.after) + 1e-12) / (abs(self.before) + 1e-12)
        times = f"{ratio:.1f}x" if ratio >= 1 else f"{1 / ratio:.1f}x lower"
        rate = "/s" if self.key[4] == "rate" else ""
        before, after = _number(self.before, self.unit), _number(self.after, self.unit)
        return (
            f"{_name(self.key)} {before}{rate} -> {after}{rate} ({times}, {self.z:.0f} deviations)"
        )


def _name(key: Key) -> str:
    return f"{key[2]}{{{key[3]}}}" if key[3] else str(key[2])


def _number(value: float, unit: str = "") -> str:
    """A value for people: bytes in KiB/MiB/GiB, other numbers to 3 or 4 digits, with the unit."""
    if unit == "By":
        for scale, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.1f} {name}"
        return f"{value:.0f} B"
    text = f"{value:.3g}" if abs(value) < 1e4 else f"{value:.4g}"
    return f"{text} {unit}" if unit and unit not in ("1", "s") else text


def _baseline(rows: list[dict[str, Any]]) -> tuple[float, float] | None:
    """(median, deviation scale) of the baseline buckets; None when too few."""
    if len(rows) < MIN_BASELINE_BUCKETS:
        return None
    values = np.asarray([row["avg"] for row in rows], dtype=float)
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * MAD_TO_SIGMA
    return median, max(mad, REL_FLOOR * abs(median), 1e-12)


def _onset(zs: list[float]) -> int | None:
    """Index of the first bucket beyond Z_SHIFT (one direction) that the later ones sustain."""
    for start, z in enumerate(zs):
        if abs(z) < Z_SHIFT:
            continue
        later = zs[start:]
        same = [value for value in later if abs(value) >= Z_SHIFT and value * z > 0]
        if len(same) >= MIN_WINDOW_BUCKETS - 1 and len(same) >= SUSTAINED * len(later):
            return start
    return None


def _change(key: Key, now: list[dict[str, Any]], base: list[dict[str, Any]]) -> Change | None:
    found = _baseline(base)
    if found is None or len(now) < MIN_WINDOW_BUCKETS:
        return None
    median, scale = found
    zs = [(row["avg"] - median) / scale for row in now]
    start = _onset(zs)
    if start is None:
        return None
    after = float(np.median([row["avg"] for row in now[start:]]))
    z = abs(after - median) / scale
    floor = max(scale, CPU_FLOOR if _is_cpu(key) else 0.0)
    score = min(math.log2(1 + z / Z_SHIFT), abs(log_ratio(after, median, floor=floor)))
    if score < THRESHOLD:
        return None
    unit = str(now[0].get("unit") or "")
    return Change(key, unit, median, after, z, score, now[start]["bucket"])


def changes(context: AnalysisContext) -> list[Change]:
    """Every series of the window whose level departs from its baseline."""
    found = []
    for key, rows in context.metrics.buckets.items():
        change = _change(key, rows, context.metrics_baseline.buckets.get(key, []))
        if change is not None:
            found.append(change)
    return found


def _is_cpu(key: Key) -> bool:
    return "cpu" in str(key[2]).lower()


def _is_memory(key: Key) -> bool:
    return "memory" in str(key[2]).lower() and key[4] == "level"


def _instance(key: Key) -> str | None:
    return key[1] or None


def _grouped(items: list[Any]) -> dict[tuple[str, str | None], list[Any]]:
    grouped: dict[tuple[str, str | None], list[Any]] = defaultdict(list)
    for item in items:
        grouped[(item.key[0], _instance(item.key))].append(item)
    for found in grouped.values():
        found.sort(key=lambda item: item.score, reverse=True)
    return grouped


def _evidence(kind: str, items: list[Change]) -> tuple[Evidence, ...]:
    return tuple(
        Evidence(
            kind=kind,
            summary=item.describe(),
            data={
                "metric": item.key[2],
                "series": item.key[3],
                "before": item.before,
                "after": item.after,
                "score": round(item.score, 3),
            },
        )
        for item in items[:EXAMPLES]
    )


@register
class MetricShiftDetector:
    """Series whose level (or counter rate) left the baseline's range and stayed out."""

    name = "metric-shift"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        leaking = {growth.key for growth in growths(context)}
        shifted = [
            change
            for change in changes(context)
            if not (_is_cpu(change.key) and change.up) and change.key not in leaking
        ]
        findings = []
        for (service, instance), items in _grouped(shifted).items():
            top = items[0]
            score = min(SHIFT_CAP, top.score)
            more = f" (+{len(items) - 1} more series)" if len(items) > 1 else ""
            findings.append(
                Finding(
                    kind=self.name,
                    service=service,
                    instance=instance,
                    severity=severity_for(score),
                    start_ns=context.scope.bucket_start_ns(min(i.onset_bucket for i in items)),
                    summary=f"{top.describe()}{more}",
                    score=score,
                    symptom=True,
                    evidence=_evidence("metric-shift", items),
                )
            )
        return findings


@register
class CpuDetector:
    """Instances whose CPU use rose well beyond the baseline, saturated or not."""

    name = "cpu"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        hot = [change for change in changes(context) if _is_cpu(change.key) and change.up]
        findings = []
        for (service, instance), items in _grouped(hot).items():
            top = items[0]
            saturated = top.after >= SATURATED and top.unit in ("1", "", "s")
            score = min(CPU_CAP, top.score + (SATURATION_BONUS if saturated else 0.0))
            findings.append(
                Finding(
                    kind=self.name,
                    service=service,
                    instance=instance,
                    severity=severity_for(score),
                    start_ns=context.scope.bucket_start_ns(top.onset_bucket),
                    summary=("CPU saturated: " if saturated else "CPU use rose: ") + top.describe(),
                    score=score,
                    evidence=_evidence("cpu", items),
                )
            )
        return findings


@dataclass(frozen=True)
class Growth:
    """A series that grows steadily through the window."""

    key: Key
    unit: str
    base: float
    first: float
    last: float
    growth: float  # projected over the whole window
    steady: float
    score: float
    onset_bucket: int


def _growth(
    context: AnalysisContext, key: Key, now: list[dict[str, Any]], base: list[dict[str, Any]]
) -> Growth | None:
    if len(now) < MIN_WINDOW_BUCKETS:
        return None
    buckets = [float(row["bucket"]) for row in now]
    slope, steady = theil_sen(buckets, [row["avg"] for row in now])
    span = (context.scope.until_ns - context.scope.since_ns) / context.scope.bucket_ns
    growth = slope * span
    level = _baseline(base)
    median = level[0] if level else float(now[0]["avg"])
    if slope <= 0 or steady < STEADY or median <= 0 or growth < median:
        return None
    if len(base) >= MIN_WINDOW_BUCKETS:
        base_slope, _ = theil_sen([float(row["bucket"]) for row in base], [r["avg"] for r in base])
        if base_slope * span > BASELINE_GROWTH_SHARE * growth:
            return None  # it grew like this before: a counter, not a leak
    scale = level[1] if level else REL_FLOOR * median
    onset = next((row["bucket"] for row in now if row["avg"] > median + Z_SHIFT * scale), 0)
    score = min(GROWTH_CAP, math.log2(1 + growth / median))
    unit = str(now[0].get("unit") or "")
    return Growth(key, unit, median, now[0]["avg"], now[-1]["avg"], growth, steady, score, onset)


def growths(context: AnalysisContext) -> list[Growth]:
    """Memory series that grow steadily and fast in the window."""
    found = []
    for key, rows in context.metrics.buckets.items():
        if _is_memory(key):
            growth = _growth(context, key, rows, context.metrics_baseline.buckets.get(key, []))
            if growth is not None:
                found.append(growth)
    return found


@register
class MemoryGrowthDetector:
    """Memory that keeps growing: a leak, blamed on the instance that holds it."""

    name = "memory-growth"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        findings = []
        for (service, instance), items in _grouped(growths(context)).items():
            top = items[0]
            window = context.scope.until_ns - context.scope.since_ns
            findings.append(
                Finding(
                    kind=self.name,
                    service=service,
                    instance=instance,
                    severity=severity_for(top.score),
                    start_ns=context.scope.bucket_start_ns(top.onset_bucket),
                    summary=f"{_name(top.key)} grows steadily: {_number(top.first, top.unit)} "
                    f"-> {_number(top.last, top.unit)} in the window (baseline "
                    f"{_number(top.base, top.unit)}), +{_number(top.growth, top.unit)} per "
                    f"{format_duration_ns(window)}",
                    score=top.score,
                    evidence=tuple(
                        Evidence(
                            kind="growth",
                            summary=f"{_name(item.key)}: Theil-Sen slope projects "
                            f"+{_number(item.growth, item.unit)} over the window "
                            f"({item.growth / item.base:.1f}x the baseline), "
                            f"{item.steady:.0%} of bucket pairs rising",
                            data={
                                "metric": item.key[2],
                                "baseline": item.base,
                                "growth": item.growth,
                                "steady": round(item.steady, 3),
                            },
                        )
                        for item in items[:EXAMPLES]
                    ),
                )
            )
        return findings
