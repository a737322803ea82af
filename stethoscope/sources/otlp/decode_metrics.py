"""OTLP metric export requests into SignalBatches: one row per data point, every kind kept.

Points are few next to spans and log records, so rows are built one point at a time; the
attribute columns still go through the same flat builders as spans.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from stethoscope.model.batch import SignalBatch
from stethoscope.model.codes import MetricType
from stethoscope.model.schema import METRIC_POINTS
from stethoscope.sources.otlp.columns import (
    INT64_MAX,
    BadRecord,
    FlatAttributes,
    any_to_python,
    enum_codes,
)
from stethoscope.sources.otlp.origins import Origins

__all__ = ["decode_metrics"]

_POINT_COLUMNS = [
    field.name
    for field in METRIC_POINTS
    if field.name not in ("attributes", "metadata", "imported")
]


class _PointRows:
    """Metric data points as one dict of column lists."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in _POINT_COLUMNS}
        self.attributes: list[Any] = []
        self.metadata: list[Any] = []
        self.bad: dict[int, str] = {}

    def add(self, common: dict[str, Any], point: Any, values: dict[str, Any], meta: Any) -> None:
        index = len(self.attributes)
        exemplars = getattr(point, "exemplars", None)
        try:
            exemplars_text = _exemplars_json(exemplars) if exemplars else None
        except BadRecord as error:
            self.bad[index] = str(error)
            exemplars_text = None
        self.attributes.append(point.attributes)
        self.metadata.append(meta)
        row = {**common, **values}
        row["start_ns"] = min(getattr(point, "start_time_unix_nano", 0), INT64_MAX)
        row["time_ns"] = min(point.time_unix_nano, INT64_MAX)
        row["flags"] = point.flags
        row["exemplars"] = exemplars_text
        for name, column in self.columns.items():
            column.append(row.get(name))

    def table(self, imported: bool) -> pa.Table:
        attributes = FlatAttributes(self.attributes)
        metadata = FlatAttributes(self.metadata)
        for index in attributes.bad_records | metadata.bad_records:
            self.bad[index] = "an attribute value nested too deeply"
        arrays = []
        for field in METRIC_POINTS:
            if field.name == "attributes":
                arrays.append(attributes.to_arrow())
            elif field.name == "metadata":
                arrays.append(metadata.to_arrow())
            elif field.name == "imported":
                arrays.append(pa.array(np.full(len(self.attributes), imported, dtype=bool)))
            else:
                arrays.append(pa.array(self.columns[field.name], field.type))
        table = pa.Table.from_arrays(arrays, schema=METRIC_POINTS)
        if self.bad:
            mask = np.ones(table.num_rows, dtype=bool)
            mask[list(self.bad)] = False
            table = table.filter(pa.array(mask))
        return table


def _exemplars_json(exemplars: Any) -> str:
    items = []
    for exemplar in exemplars:
        kind = exemplar.WhichOneof("value")
        items.append(
            {
                "time_ns": exemplar.time_unix_nano,
                "value": getattr(exemplar, kind) if kind else None,
                "trace_id": exemplar.trace_id.hex(),
                "span_id": exemplar.span_id.hex(),
                "attributes": {
                    kv.key: any_to_python(kv.value) for kv in exemplar.filtered_attributes
                },
            }
        )
    return json.dumps(items, separators=(",", ":"))


def _number_values(point: Any) -> dict[str, Any]:
    if point.WhichOneof("value") == "as_int":
        return {"value": float(point.as_int), "value_int": point.as_int}
    return {"value": point.as_double}


def _histogram_values(point: Any) -> dict[str, Any]:
    return {
        "count": point.count,
        "sum": point.sum if point.HasField("sum") else None,
        "min": point.min if point.HasField("min") else None,
        "max": point.max if point.HasField("max") else None,
        "bucket_counts": list(point.bucket_counts),
        "explicit_bounds": list(point.explicit_bounds),
    }


def _exponential_values(point: Any) -> dict[str, Any]:
    return {
        "count": point.count,
        "sum": point.sum if point.HasField("sum") else None,
        "min": point.min if point.HasField("min") else None,
        "max": point.max if point.HasField("max") else None,
        "scale": point.scale,
        "zero_count": point.zero_count,
        "zero_threshold": point.zero_threshold,
        "positive_offset": point.positive.offset,
        "positive_counts": list(point.positive.bucket_counts),
        "negative_offset": point.negative.offset,
        "negative_counts": list(point.negative.bucket_counts),
    }


def _summary_values(point: Any) -> dict[str, Any]:
    return {
        "count": point.count,
        "sum": point.sum,
        "quantiles": [{"quantile": q.quantile, "value": q.value} for q in point.quantile_values],
    }


_KINDS = {
    "gauge": (MetricType.GAUGE, _number_values),
    "sum": (MetricType.SUM, _number_values),
    "histogram": (MetricType.HISTOGRAM, _histogram_values),
    "exponential_histogram": (MetricType.EXPONENTIAL_HISTOGRAM, _exponential_values),
    "summary": (MetricType.SUMMARY, _summary_values),
}


def decode_metrics(request: ExportMetricsServiceRequest, *, imported: bool = False) -> SignalBatch:
    """Data points of an export request as the metric_points, resources and scopes tables."""
    origins = Origins()
    found = origins.gather(request.resource_metrics, "scope_metrics", "metrics")
    rows = _PointRows()
    reasons: list[str] = []
    for metric, resource_id, scope_id, service in zip(
        found.items, found.resource_ids, found.scope_ids, found.services, strict=True
    ):
        kind = metric.WhichOneof("data")
        if kind is None:
            reasons.append(f"metric {metric.name!r} has no data")
            continue
        _add_points(rows, metric, kind, resource_id, scope_id, service)
    table = rows.table(imported)
    batch = SignalBatch("metrics", tables=origins.tables())
    batch.tables["metric_points"] = table
    batch.accepted = table.num_rows
    batch.rejected = len(rows.bad) + len(reasons)
    batch.reasons = (reasons + sorted(set(rows.bad.values())))[:5]
    return batch


def _add_points(
    rows: _PointRows, metric: Any, kind: str, resource_id: int, scope_id: int, service: str
) -> None:
    metric_type, values_of = _KINDS[kind]
    data = getattr(metric, kind)
    common = {
        "resource_id": resource_id,
        "scope_id": scope_id,
        "service": service,
        "name": metric.name,
        "description": metric.description,
        "unit": metric.unit,
        "type": int(metric_type),
        "temporality": int(enum_codes([getattr(data, "aggregation_temporality", 0)])[0]),
        "monotonic": getattr(data, "is_monotonic", None),
    }
    for point in data.data_points:
        rows.add(common, point, values_of(point), metric.metadata)
