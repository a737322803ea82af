"""Prometheus metric families into OTLP metrics, mapped as the OTel Collector's prometheus
receiver maps them.

counter -> monotonic cumulative Sum; gauge, unknown, untyped, info, stateset -> Gauge;
histogram -> cumulative Histogram (cumulative `le` buckets become per-bucket counts);
summary -> Summary; gaugehistogram -> Gauge series as exposed (OTLP has no gauge histogram).
Cumulative series need a start time: `_created` when the target exposes it, else the time this
scraper first saw the series (moved forward when the value drops, i.e. the target restarted).
Exemplars and native histograms are not carried.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
    Summary,
    SummaryDataPoint,
)
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.samples import Sample

from stethoscope.sources.records import key_values

__all__ = ["Conversion", "SeriesStarts", "convert_families", "unit_of"]

CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
NS_PER_S = 1_000_000_000
# What OTLP's fixed64 fields can hold, with room: later times and counts are malformed input.
MAX_SECONDS = 2**63 / NS_PER_S
MAX_COUNT = float(2**63)
# Prometheus base units as they end metric names (the naming guide), used when no `# UNIT` is
# given; the unit is kept in Prometheus' words, as `# UNIT` would carry it.
NAME_UNITS = frozenset(
    {
        "seconds",
        "milliseconds",
        "microseconds",
        "nanoseconds",
        "bytes",
        "bits",
        "meters",
        "volts",
        "amperes",
        "joules",
        "grams",
        "celsius",
        "kelvin",
        "hertz",
        "watts",
        "ratio",
        "percent",
    }
)
_TYPE_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created", "_info")
# Families whose `<name>_created` gauge (text format, as prometheus_client writes it) carries
# the start times of their series rather than a series of its own.
_CUMULATIVE_TYPES = ("counter", "histogram", "summary")

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class SeriesStarts:
    """Start times of one target's cumulative series, across scrapes.

    Only the series of the latest scrape are kept, so the table never outgrows one scrape
    (itself bounded by the scraper's sample limit); a series that vanishes and returns starts anew.
    """

    def __init__(self) -> None:
        self._known: dict[SeriesKey, tuple[int, float]] = {}
        self._current: dict[SeriesKey, tuple[int, float]] = {}

    def start_ns(
        self, key: SeriesKey, *, value: float, time_ns: int, created_ns: int | None
    ) -> int:
        """The start time of a cumulative series whose latest total is `value`."""
        if created_ns is not None:
            start = created_ns
        else:
            start, last = self._known.get(key, (time_ns, value))
            if value < last:  # a reset: the target restarted since the previous scrape
                start = time_ns - 1_000_000  # 1 ms back: the start stays before the point
        self._current[key] = (start, value)
        return start

    def finish_scrape(self) -> None:
        """Forget the series this scrape did not contain."""
        self._known, self._current = self._current, {}

    def tracked(self) -> int:
        """How many series have a start time now."""
        return len(self._known)


@dataclass
class Conversion:
    """One scrape's OTLP metrics, and what could not be converted."""

    metrics: list[Metric] = field(default_factory=list)
    samples: int = 0
    refused: int = 0  # malformed histogram/summary groups and duplicate series, not sent
    reasons: list[str] = field(default_factory=list)  # the first few refusal reasons

    def refuse(self, count: int, reason: str) -> None:
        self.refused += count
        if len(self.reasons) < 5:
            self.reasons.append(reason)


def unit_of(family: Family) -> str:
    """The family's `# UNIT`, else a Prometheus base unit its name ends with, else ''."""
    if family.unit:
        return str(family.unit)
    name = str(family.name)
    for suffix in _TYPE_SUFFIXES:
        name = name.removesuffix(suffix)
    last = name.rsplit("_", 1)[-1]
    return last if last in NAME_UNITS else ""


def convert_families(
    families: Iterable[Family], *, time_ns: int, starts: SeriesStarts
) -> Conversion:
    """Convert parsed families to OTLP metrics stamped `time_ns` (unless a sample has its own)."""
    families = list(families)
    created = _created_families(families)
    out = Conversion()
    seen: set[SeriesKey] = set()
    for family in families:
        out.samples += len(family.samples)
        if family.type == "gauge" and family.name in created.consumed:
            continue
        samples = _unique(family, seen, out)
        converter = _CONVERTERS.get(family.type, _gauges)
        extra = created.by_family.get(family.name, {})
        out.metrics.extend(converter(family, samples, _Context(time_ns, starts, extra, out)))
    starts.finish_scrape()
    out.metrics = _merged(out.metrics)
    return out


def _merged(metrics: list[Metric]) -> list[Metric]:
    """One metric per name and kind: the text parser yields each untyped sample on its own."""
    kept: dict[tuple[str, str | None], Metric] = {}
    for metric in metrics:
        kind = metric.WhichOneof("data")
        first = kept.setdefault((metric.name, kind), metric)
        if first is not metric and kind is not None:
            getattr(first, kind).data_points.extend(getattr(metric, kind).data_points)
    return list(kept.values())


@dataclass
class _Context:
    time_ns: int
    starts: SeriesStarts
    created: Mapping[tuple[tuple[str, str], ...], int]  # text-format `_created` by label set
    out: Conversion

    def point_time(self, sample: Sample) -> int:
        """The sample's own timestamp when the exposition gives one, else the scrape's."""
        own = _timestamp_ns(sample.timestamp) if sample.timestamp is not None else None
        return own if own is not None else self.time_ns


@dataclass
class _CreatedFamilies:
    by_family: dict[str, dict[tuple[tuple[str, str], ...], int]] = field(default_factory=dict)
    consumed: set[str] = field(default_factory=set)


def _created_families(families: list[Family]) -> _CreatedFamilies:
    """Text-format `<name>_created` gauges of counters, histograms and summaries."""
    bases = {family.name for family in families if family.type in _CUMULATIVE_TYPES}
    found = _CreatedFamilies()
    for family in families:
        base = family.name.removesuffix("_created")
        if family.type != "gauge" or base == family.name or base not in bases:
            continue
        found.consumed.add(family.name)
        found.by_family[base] = {
            _labels(sample.labels): start
            for sample in family.samples
            if (start := _seconds_ns(sample.value)) is not None
        }
    return found


def _unique(family: Family, seen: set[SeriesKey], out: Conversion) -> list[Sample]:
    """The family's samples without repeats of a series already seen in this scrape."""
    kept = []
    for sample in family.samples:
        key = (sample.name, _labels(sample.labels))
        if key in seen:
            out.refuse(1, f"duplicate series {sample.name}{dict(sample.labels)}")
            continue
        seen.add(key)
        kept.append(sample)
    return kept


def _labels(labels: Mapping[str, str], drop: str = "") -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != drop))


def _seconds_ns(seconds: float) -> int | None:
    """Epoch seconds as nanoseconds; None when OTLP cannot carry them (NaN, negative, too far).

    Rounded to the microsecond: a float holds no more near today's epoch, and the text format's
    millisecond timestamps come out exact.
    """
    if not 0 <= seconds < MAX_SECONDS:  # also False for NaN
        return None
    return int(round(seconds * 1_000_000)) * 1000


def _timestamp_ns(timestamp: Any) -> int | None:
    """A sample timestamp (float seconds, or prometheus_client's Timestamp) in nanoseconds."""
    if hasattr(timestamp, "sec"):
        if _seconds_ns(float(timestamp.sec)) is None:
            return None
        return int(timestamp.sec) * NS_PER_S + int(timestamp.nsec)
    return _seconds_ns(float(timestamp))


def _metric(family: Family, name: str) -> Metric:
    return Metric(name=name, description=family.documentation, unit=unit_of(family))


def _gauges(family: Family, samples: list[Sample], ctx: _Context) -> list[Metric]:
    """Every sample as a gauge point, one metric per sample name (as exposed)."""
    metrics: dict[str, Metric] = {}
    for sample in samples:
        metric = metrics.get(sample.name)
        if metric is None:
            metric = metrics[sample.name] = _metric(family, sample.name)
            metric.gauge.CopyFrom(Gauge())
        metric.gauge.data_points.append(
            NumberDataPoint(
                attributes=key_values(sample.labels),
                time_unix_nano=ctx.point_time(sample),
                as_double=float(sample.value),
            )
        )
    return list(metrics.values())


def _counters(family: Family, samples: list[Sample], ctx: _Context) -> list[Metric]:
    """`_total` samples as a monotonic cumulative Sum; `_created` gives their start."""
    created = dict(ctx.created)
    for sample in samples:
        start = _seconds_ns(sample.value) if sample.name.endswith("_created") else None
        if start is not None:
            created[_labels(sample.labels)] = start
    totals = [s for s in samples if not s.name.endswith("_created")]
    if not totals:
        return []
    metric = _metric(family, totals[0].name)
    metric.sum.CopyFrom(Sum(aggregation_temporality=CUMULATIVE, is_monotonic=True))
    for sample in totals:
        labels = _labels(sample.labels)
        time_ns = ctx.point_time(sample)
        start = ctx.starts.start_ns(
            (metric.name, labels),
            value=sample.value,
            time_ns=time_ns,
            created_ns=created.get(labels),
        )
        metric.sum.data_points.append(
            NumberDataPoint(
                attributes=key_values(sample.labels),
                start_time_unix_nano=start,
                time_unix_nano=time_ns,
                as_double=float(sample.value),
            )
        )
    return [metric]


@dataclass
class _Group:
    """The samples of one histogram or summary series (one label set)."""

    labels: dict[str, str]
    time_ns: int
    parts: dict[str, float] = field(default_factory=dict)  # suffix -> value
    bounds: list[tuple[float, float]] = field(default_factory=list)  # (le or quantile, value)
    samples: int = 0


def _groups(family: Family, samples: list[Sample], ctx: _Context, key: str) -> list[_Group]:
    """Samples grouped by their labels without `key` (`le` or `quantile`)."""
    groups: dict[tuple[tuple[str, str], ...], _Group] = {}
    for sample in samples:
        labels = _labels(sample.labels, drop=key)
        group = groups.get(labels)
        if group is None:
            group = groups[labels] = _Group(dict(labels), ctx.point_time(sample))
        group.samples += 1
        suffix = sample.name[len(family.name) :]
        if key in sample.labels and suffix in ("", "_bucket"):
            group.bounds.append((_float(sample.labels[key]), float(sample.value)))
        else:
            group.parts[suffix] = float(sample.value)
    return list(groups.values())


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _created_of(group: _Group, ctx: _Context) -> int | None:
    if "_created" in group.parts:
        return _seconds_ns(group.parts["_created"])
    return ctx.created.get(_labels(group.labels))


def _histograms(family: Family, samples: list[Sample], ctx: _Context) -> list[Metric]:
    """Cumulative `le` buckets as explicit bounds with per-bucket counts, plus sum and count."""
    metric = _metric(family, family.name)
    metric.histogram.CopyFrom(Histogram(aggregation_temporality=CUMULATIVE))
    for group in _groups(family, samples, ctx, "le"):
        point = _histogram_point(group)
        if point is None:
            ctx.out.refuse(group.samples, f"malformed histogram {family.name}{group.labels}")
            continue
        key = (family.name, _labels(group.labels))
        point.start_time_unix_nano = ctx.starts.start_ns(
            key, value=point.count, time_ns=group.time_ns, created_ns=_created_of(group, ctx)
        )
        metric.histogram.data_points.append(point)
    return [metric] if metric.histogram.data_points else []


def _histogram_point(group: _Group) -> HistogramDataPoint | None:
    """None when the buckets are unparseable, not cumulative, or no count can be found."""
    buckets = sorted(group.bounds)
    if any(math.isnan(le) for le, _ in buckets):
        return None
    finite = [(le, value) for le, value in buckets if not math.isinf(le)]
    inf_bucket = [value for le, value in buckets if math.isinf(le) and le > 0]
    total = group.parts.get("_count", inf_bucket[0] if inf_bucket else math.nan)
    cumulative = [0.0] + [value for _, value in finite] + [total]
    if not all(0 <= v < MAX_COUNT for v in cumulative) or any(
        b < a for a, b in zip(cumulative, cumulative[1:], strict=False)
    ):
        return None
    point = HistogramDataPoint(
        attributes=key_values(group.labels),
        time_unix_nano=group.time_ns,
        count=int(total),
        explicit_bounds=[le for le, _ in finite],
        bucket_counts=[int(b - a) for a, b in zip(cumulative, cumulative[1:], strict=False)],
    )
    if "_sum" in group.parts:
        point.sum = group.parts["_sum"]
    return point


def _summaries(family: Family, samples: list[Sample], ctx: _Context) -> list[Metric]:
    """Quantile samples with `_sum` and `_count` as Summary points."""
    metric = _metric(family, family.name)
    metric.summary.CopyFrom(Summary())
    for group in _groups(family, samples, ctx, "quantile"):
        count = group.parts.get("_count", 0.0)
        if not 0 <= count < MAX_COUNT or any(math.isnan(q) for q, _ in group.bounds):
            ctx.out.refuse(group.samples, f"malformed summary {family.name}{group.labels}")
            continue
        point = SummaryDataPoint(
            attributes=key_values(group.labels),
            time_unix_nano=group.time_ns,
            count=int(count),
            sum=group.parts.get("_sum", 0.0),
            quantile_values=[
                SummaryDataPoint.ValueAtQuantile(quantile=q, value=v)
                for q, v in sorted(group.bounds)
            ],
        )
        point.start_time_unix_nano = ctx.starts.start_ns(
            (family.name, _labels(group.labels)),
            value=point.count,
            time_ns=group.time_ns,
            created_ns=_created_of(group, ctx),
        )
        metric.summary.data_points.append(point)
    return [metric] if metric.summary.data_points else []


_CONVERTERS = {
    "counter": _counters,
    "histogram": _histograms,
    "summary": _summaries,
}
