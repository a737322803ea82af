"""OTLP export requests (protobuf messages) into SignalBatches, once, straight into columns.

A record with an invalid id or absurd nesting is rejected alone and counted, so that the
receiver can answer with an exact `partial_success`; everything else in the request is kept.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from stethoscope.model.batch import SignalBatch
from stethoscope.model.schema import (
    EVENT,
    LINK,
    LOGS,
    METRIC_POINTS,
    RESOURCES,
    SCOPES,
    SPANS,
    MetricType,
)
from stethoscope.sources.otlp.columns import (
    AttributeColumn,
    BadRecord,
    any_to_python,
    attributes_digest,
    check_span_id,
    check_trace_id,
    clamp_ns,
    encode_value,
    span_ids,
    trace_id_halves,
)

MAX_REASONS = 5
UNKNOWN_SERVICE = "unknown_service"


class _Origins:
    """The resources and scopes of one request, each kept once, with their ids."""

    def __init__(self) -> None:
        self.resource_rows: dict[int, tuple[str, str, str, int]] = {}
        self.resource_attrs = AttributeColumn()
        self.scope_rows: dict[int, tuple[str, str, str, int]] = {}
        self.scope_attrs = AttributeColumn()

    def resource(self, resource: Any, schema_url: str) -> tuple[int, str]:
        """Register a Resource; returns its id and service name."""
        attrs = self.resource_attrs
        start = len(attrs.keys)
        attrs.add(resource.attributes)
        resource_id = attributes_digest(schema_url, attrs, start)
        service, instance = UNKNOWN_SERVICE, ""
        for i in range(start, len(attrs.keys)):
            if attrs.keys[i] == "service.name":
                service = attrs.values[i]
            elif attrs.keys[i] == "service.instance.id":
                instance = attrs.values[i]
        if resource_id in self.resource_rows:
            attrs.truncate(len(self.resource_rows))
        else:
            self.resource_rows[resource_id] = (
                service,
                instance,
                schema_url,
                resource.dropped_attributes_count,
            )
        return resource_id, service

    def scope(self, scope: Any, schema_url: str) -> int:
        """Register an InstrumentationScope; returns its id."""
        attrs = self.scope_attrs
        start = len(attrs.keys)
        attrs.add(scope.attributes)
        identity = f"{schema_url}\x1d{scope.name}\x1d{scope.version}"
        scope_id = attributes_digest(identity, attrs, start)
        if scope_id in self.scope_rows:
            attrs.truncate(len(self.scope_rows))
        else:
            self.scope_rows[scope_id] = (
                scope.name,
                scope.version,
                schema_url,
                scope.dropped_attributes_count,
            )
        return scope_id

    def tables(self) -> dict[str, pa.Table]:
        """The resources and scopes tables of the request."""
        resources = list(self.resource_rows.items())
        scopes = list(self.scope_rows.items())
        return {
            "resources": pa.Table.from_arrays(
                [
                    pa.array([rid for rid, _ in resources], pa.uint64()),
                    pa.array([row[0] for _, row in resources], pa.string()),
                    pa.array([row[1] for _, row in resources], pa.string()),
                    pa.array([row[2] for _, row in resources], pa.string()),
                    self.resource_attrs.to_arrow(),
                    pa.array([row[3] for _, row in resources], pa.uint32()),
                ],
                schema=RESOURCES,
            ),
            "scopes": pa.Table.from_arrays(
                [
                    pa.array([sid for sid, _ in scopes], pa.uint64()),
                    pa.array([row[0] for _, row in scopes], pa.string()),
                    pa.array([row[1] for _, row in scopes], pa.string()),
                    pa.array([row[2] for _, row in scopes], pa.string()),
                    self.scope_attrs.to_arrow(),
                    pa.array([row[3] for _, row in scopes], pa.uint32()),
                ],
                schema=SCOPES,
            ),
        }


def _note(batch: SignalBatch, error: BadRecord) -> None:
    batch.rejected += 1
    if len(batch.reasons) < MAX_REASONS:
        batch.reasons.append(str(error))


def _flags(n: int, imported: bool) -> pa.Array:
    return pa.array(np.full(n, imported, dtype=bool))


class _EventColumn:
    """The events of each span: List<Struct<time_ns, name, attributes, dropped>>."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self.names: list[str] = []
        self.attrs = AttributeColumn()
        self.dropped: list[int] = []
        self.offsets: list[int] = [0]

    def add(self, events: Any) -> None:
        for event in events:
            self.times.append(clamp_ns(event.time_unix_nano))
            self.names.append(event.name)
            self.attrs.add(event.attributes)
            self.dropped.append(event.dropped_attributes_count)
        self.offsets.append(len(self.times))

    def truncate(self, records: int) -> None:
        del self.offsets[records + 1 :]
        end = self.offsets[-1]
        del self.times[end:], self.names[end:], self.dropped[end:]
        self.attrs.truncate(end)

    def to_arrow(self) -> pa.Array:
        children = pa.StructArray.from_arrays(
            [
                pa.array(self.times, pa.int64()),
                pa.array(self.names, pa.string()),
                self.attrs.to_arrow(),
                pa.array(self.dropped, pa.uint32()),
            ],
            fields=list(EVENT),
        )
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), children)


class _LinkColumn:
    """The links of each span: List<Struct<trace, span, state, attributes, dropped, flags>>."""

    def __init__(self) -> None:
        self.trace_ids: list[bytes] = []
        self.span_ids: list[bytes] = []
        self.states: list[str] = []
        self.attrs = AttributeColumn()
        self.dropped: list[int] = []
        self.flags: list[int] = []
        self.offsets: list[int] = [0]

    def add(self, links: Any) -> None:
        for link in links:
            self.trace_ids.append(check_trace_id(link.trace_id, required=True))
            self.span_ids.append(check_span_id(link.span_id, required=True))
            self.states.append(link.trace_state)
            self.attrs.add(link.attributes)
            self.dropped.append(link.dropped_attributes_count)
            self.flags.append(link.flags)
        self.offsets.append(len(self.states))

    def truncate(self, records: int) -> None:
        del self.offsets[records + 1 :]
        end = self.offsets[-1]
        del self.trace_ids[end:], self.span_ids[end:], self.states[end:]
        del self.dropped[end:], self.flags[end:]
        self.attrs.truncate(end)

    def to_arrow(self) -> pa.Array:
        hi, lo = trace_id_halves(self.trace_ids)
        children = pa.StructArray.from_arrays(
            [
                pa.array(hi, pa.uint64()),
                pa.array(lo, pa.uint64()),
                pa.array(span_ids(self.span_ids), pa.uint64()),
                pa.array(self.states, pa.string()),
                self.attrs.to_arrow(),
                pa.array(self.dropped, pa.uint32()),
                pa.array(self.flags, pa.uint32()),
            ],
            fields=list(LINK),
        )
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), children)


def decode_traces(request: ExportTraceServiceRequest, *, imported: bool = False) -> SignalBatch:
    """Spans of an export request as the spans, resources and scopes tables."""
    batch = SignalBatch("traces")
    origins = _Origins()
    resource_ids: list[int] = []
    scope_ids: list[int] = []
    services: list[str] = []
    trace_ids: list[bytes] = []
    own_ids: list[bytes] = []
    parent_ids: list[bytes] = []
    states: list[str] = []
    flags: list[int] = []
    names: list[str] = []
    kinds: list[int] = []
    starts: list[int] = []
    durations: list[int] = []
    status_codes: list[int] = []
    status_messages: list[str] = []
    attrs = AttributeColumn()
    events = _EventColumn()
    links = _LinkColumn()
    dropped: tuple[list[int], list[int], list[int]] = ([], [], [])
    for resource_spans in request.resource_spans:
        resource_id, service = origins.resource(resource_spans.resource, resource_spans.schema_url)
        for scope_spans in resource_spans.scope_spans:
            scope_id = origins.scope(scope_spans.scope, scope_spans.schema_url)
            for span in scope_spans.spans:
                try:
                    trace_id = check_trace_id(span.trace_id, required=True)
                    own_id = check_span_id(span.span_id, required=True)
                    parent_id = check_span_id(span.parent_span_id, required=False)
                    attrs.add(span.attributes)
                    events.add(span.events)
                    links.add(span.links)
                except BadRecord as error:
                    kept = len(names)
                    attrs.truncate(kept)
                    events.truncate(kept)
                    links.truncate(kept)
                    _note(batch, error)
                    continue
                start = clamp_ns(span.start_time_unix_nano)
                resource_ids.append(resource_id)
                scope_ids.append(scope_id)
                services.append(service)
                trace_ids.append(trace_id)
                own_ids.append(own_id)
                parent_ids.append(parent_id)
                states.append(span.trace_state)
                flags.append(span.flags)
                names.append(span.name)
                kinds.append(span.kind)
                starts.append(start)
                durations.append(max(0, clamp_ns(span.end_time_unix_nano) - start))
                status_codes.append(span.status.code)
                status_messages.append(span.status.message)
                dropped[0].append(span.dropped_attributes_count)
                dropped[1].append(span.dropped_events_count)
                dropped[2].append(span.dropped_links_count)
    hi, lo = trace_id_halves(trace_ids)
    n = len(names)
    batch.tables = origins.tables()
    batch.tables["spans"] = pa.Table.from_arrays(
        [
            pa.array(resource_ids, pa.uint64()),
            pa.array(scope_ids, pa.uint64()),
            pa.array(services, pa.string()),
            pa.array(hi, pa.uint64()),
            pa.array(lo, pa.uint64()),
            pa.array(span_ids(own_ids), pa.uint64()),
            pa.array(span_ids(parent_ids), pa.uint64()),
            pa.array(states, pa.string()),
            pa.array(flags, pa.uint32()),
            pa.array(names, pa.string()),
            pa.array(kinds, pa.uint8()),
            pa.array(starts, pa.int64()),
            pa.array(durations, pa.int64()),
            pa.array(status_codes, pa.uint8()),
            pa.array(status_messages, pa.string()),
            attrs.to_arrow(),
            events.to_arrow(),
            links.to_arrow(),
            pa.array(dropped[0], pa.uint32()),
            pa.array(dropped[1], pa.uint32()),
            pa.array(dropped[2], pa.uint32()),
            _flags(n, imported),
        ],
        schema=SPANS,
    )
    batch.accepted = n
    return batch


def decode_logs(request: ExportLogsServiceRequest, *, imported: bool = False) -> SignalBatch:
    """Log records of an export request as the logs, resources and scopes tables."""
    batch = SignalBatch("logs")
    origins = _Origins()
    resource_ids: list[int] = []
    scope_ids: list[int] = []
    services: list[str] = []
    times: list[int] = []
    observed: list[int] = []
    severities: list[int] = []
    severity_texts: list[str] = []
    body_types: list[int] = []
    bodies: list[str] = []
    attrs = AttributeColumn()
    dropped: list[int] = []
    flags: list[int] = []
    trace_ids: list[bytes] = []
    own_ids: list[bytes] = []
    event_names: list[str] = []
    for resource_logs in request.resource_logs:
        resource_id, service = origins.resource(resource_logs.resource, resource_logs.schema_url)
        for scope_logs in resource_logs.scope_logs:
            scope_id = origins.scope(scope_logs.scope, scope_logs.schema_url)
            for record in scope_logs.log_records:
                try:
                    trace_id = check_trace_id(record.trace_id, required=False)
                    span_id = check_span_id(record.span_id, required=False)
                    body_type, body = encode_value(record.body)
                    attrs.add(record.attributes)
                except BadRecord as error:
                    attrs.truncate(len(times))
                    _note(batch, error)
                    continue
                seen = clamp_ns(record.observed_time_unix_nano)
                resource_ids.append(resource_id)
                scope_ids.append(scope_id)
                services.append(service)
                # The spec lets time be 0 (unknown); the observed time is the best we have.
                times.append(clamp_ns(record.time_unix_nano) or seen)
                observed.append(seen)
                severities.append(record.severity_number)
                severity_texts.append(record.severity_text)
                body_types.append(body_type)
                bodies.append(body)
                dropped.append(record.dropped_attributes_count)
                flags.append(record.flags)
                trace_ids.append(trace_id)
                own_ids.append(span_id)
                event_names.append(record.event_name)
    hi, lo = trace_id_halves(trace_ids)
    n = len(times)
    batch.tables = origins.tables()
    batch.tables["logs"] = pa.Table.from_arrays(
        [
            pa.array(resource_ids, pa.uint64()),
            pa.array(scope_ids, pa.uint64()),
            pa.array(services, pa.string()),
            pa.array(times, pa.int64()),
            pa.array(observed, pa.int64()),
            pa.array(severities, pa.uint8()),
            pa.array(severity_texts, pa.string()),
            pa.array(body_types, pa.uint8()),
            pa.array(bodies, pa.string()),
            attrs.to_arrow(),
            pa.array(dropped, pa.uint32()),
            pa.array(flags, pa.uint32()),
            pa.array(hi, pa.uint64()),
            pa.array(lo, pa.uint64()),
            pa.array(span_ids(own_ids), pa.uint64()),
            pa.array(event_names, pa.string()),
            _flags(n, imported),
        ],
        schema=LOGS,
    )
    batch.accepted = n
    return batch


_POINT_COLUMNS = [field.name for field in METRIC_POINTS]


class _PointRows:
    """Metric data points as one dict of column lists (points are few next to spans)."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in _POINT_COLUMNS}
        self.attrs = AttributeColumn()
        self.metadata = AttributeColumn()

    def add(self, common: dict[str, Any], point: Any, values: dict[str, Any], meta: Any) -> None:
        kept = len(self.columns["time_ns"])
        try:
            self.attrs.add(point.attributes)
            self.metadata.add(meta)
            exemplars = getattr(point, "exemplars", None)
            exemplars_text = _exemplars_json(exemplars) if exemplars else None
        except BadRecord:
            self.attrs.truncate(kept)
            self.metadata.truncate(kept)
            raise
        row = {**common, **values}
        row["start_ns"] = clamp_ns(getattr(point, "start_time_unix_nano", 0))
        row["time_ns"] = clamp_ns(point.time_unix_nano)
        row["flags"] = point.flags
        row["exemplars"] = exemplars_text
        for name, column in self.columns.items():
            if name not in ("attributes", "metadata"):
                column.append(row.get(name))

    def table(self, imported: bool) -> pa.Table:
        n = len(self.columns["time_ns"])
        arrays = []
        for field in METRIC_POINTS:
            if field.name == "attributes":
                arrays.append(self.attrs.to_arrow())
            elif field.name == "metadata":
                arrays.append(self.metadata.to_arrow())
            elif field.name == "imported":
                arrays.append(_flags(n, imported))
            else:
                arrays.append(pa.array(self.columns[field.name], field.type))
        return pa.Table.from_arrays(arrays, schema=METRIC_POINTS)


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
    batch = SignalBatch("metrics")
    origins = _Origins()
    rows = _PointRows()
    for resource_metrics in request.resource_metrics:
        resource_id, service = origins.resource(
            resource_metrics.resource, resource_metrics.schema_url
        )
        for scope_metrics in resource_metrics.scope_metrics:
            scope_id = origins.scope(scope_metrics.scope, scope_metrics.schema_url)
            for metric in scope_metrics.metrics:
                _decode_metric(batch, rows, metric, resource_id, scope_id, service)
    batch.tables = origins.tables()
    batch.tables["metric_points"] = rows.table(imported)
    batch.accepted = batch.tables["metric_points"].num_rows
    return batch


def _decode_metric(
    batch: SignalBatch, rows: _PointRows, metric: Any, resource_id: int, scope_id: int, service: str
) -> None:
    kind = metric.WhichOneof("data")
    if kind is None:
        _note(batch, BadRecord(f"metric {metric.name!r} has no data"))
        return
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
        "temporality": getattr(data, "aggregation_temporality", 0),
        "monotonic": getattr(data, "is_monotonic", None),
    }
    for point in data.data_points:
        try:
            rows.add(common, point, values_of(point), metric.metadata)
        except BadRecord as error:
            _note(batch, error)
