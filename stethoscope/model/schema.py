"""The columnar shape of every signal, shared by decoders and stores.

Ids are integers (a trace id is two UInt64 halves, a span id one UInt64, 0 meaning absent),
times are int64 nanoseconds since the epoch, and attributes are a list of (key, type, value)
structs whose value is text: typed enough to restore the original, flat enough to filter fast.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "ATTRIBUTE",
    "ATTRIBUTES",
    "EVENT",
    "LINK",
    "LOGS",
    "METRIC_POINTS",
    "QUANTILE",
    "RESOURCES",
    "SCOPES",
    "SPANS",
    "TABLES",
]


ATTRIBUTE = pa.struct(
    [
        pa.field("key", pa.string()),
        pa.field("type", pa.uint8()),
        pa.field("value", pa.string()),
    ]
)
ATTRIBUTES = pa.list_(ATTRIBUTE)

RESOURCES = pa.schema(
    [
        pa.field("resource_id", pa.uint64()),
        pa.field("service", pa.string()),
        pa.field("instance", pa.string()),
        pa.field("schema_url", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("dropped_attributes_count", pa.uint32()),
    ]
)

SCOPES = pa.schema(
    [
        pa.field("scope_id", pa.uint64()),
        pa.field("name", pa.string()),
        pa.field("version", pa.string()),
        pa.field("schema_url", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("dropped_attributes_count", pa.uint32()),
    ]
)

EVENT = pa.struct(
    [
        pa.field("time_ns", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("dropped_attributes_count", pa.uint32()),
    ]
)

LINK = pa.struct(
    [
        pa.field("trace_hi", pa.uint64()),
        pa.field("trace_lo", pa.uint64()),
        pa.field("span_id", pa.uint64()),
        pa.field("trace_state", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("dropped_attributes_count", pa.uint32()),
        pa.field("flags", pa.uint32()),
    ]
)

SPANS = pa.schema(
    [
        pa.field("resource_id", pa.uint64()),
        pa.field("scope_id", pa.uint64()),
        pa.field("service", pa.string()),
        pa.field("trace_hi", pa.uint64()),
        pa.field("trace_lo", pa.uint64()),
        pa.field("span_id", pa.uint64()),
        pa.field("parent_span_id", pa.uint64()),
        pa.field("trace_state", pa.string()),
        pa.field("flags", pa.uint32()),
        pa.field("name", pa.string()),
        pa.field("kind", pa.uint8()),
        pa.field("start_ns", pa.int64()),
        pa.field("duration_ns", pa.int64()),
        pa.field("status_code", pa.uint8()),
        pa.field("status_message", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("events", pa.list_(EVENT)),
        pa.field("links", pa.list_(LINK)),
        pa.field("dropped_attributes_count", pa.uint32()),
        pa.field("dropped_events_count", pa.uint32()),
        pa.field("dropped_links_count", pa.uint32()),
        pa.field("imported", pa.bool_()),
    ]
)

LOGS = pa.schema(
    [
        pa.field("resource_id", pa.uint64()),
        pa.field("scope_id", pa.uint64()),
        pa.field("service", pa.string()),
        pa.field("time_ns", pa.int64()),
        pa.field("observed_ns", pa.int64()),
        pa.field("severity_number", pa.uint8()),
        pa.field("severity_text", pa.string()),
        pa.field("body_type", pa.uint8()),
        pa.field("body", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("dropped_attributes_count", pa.uint32()),
        pa.field("flags", pa.uint32()),
        pa.field("trace_hi", pa.uint64()),
        pa.field("trace_lo", pa.uint64()),
        pa.field("span_id", pa.uint64()),
        pa.field("event_name", pa.string()),
        pa.field("imported", pa.bool_()),
        # Filled by the writer's template miner (null when not mined); last, so that stores
        # migrated with ALTER TABLE ADD COLUMN keep the same column order as new ones.
        pa.field("template_id", pa.uint64()),
        # The variables, as stores written before 2026-11-26 kept them; null since then, when
        # reads work them out from the template (stethoscope.server.templating).
        pa.field("template_params", pa.list_(pa.string())),
    ]
)

QUANTILE = pa.struct([pa.field("quantile", pa.float64()), pa.field("value", pa.float64())])

METRIC_POINTS = pa.schema(
    [
        pa.field("resource_id", pa.uint64()),
        pa.field("scope_id", pa.uint64()),
        pa.field("service", pa.string()),
        pa.field("name", pa.string()),
        pa.field("description", pa.string()),
        pa.field("unit", pa.string()),
        pa.field("type", pa.uint8()),  # MetricType
        pa.field("temporality", pa.uint8()),  # OTLP AggregationTemporality
        pa.field("monotonic", pa.bool_()),
        pa.field("start_ns", pa.int64()),
        pa.field("time_ns", pa.int64()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("flags", pa.uint32()),
        pa.field("value", pa.float64()),  # gauge/sum value (as_int widened)
        pa.field("value_int", pa.int64()),  # exact as_int, null for doubles
        pa.field("count", pa.uint64()),
        pa.field("sum", pa.float64()),
        pa.field("min", pa.float64()),
        pa.field("max", pa.float64()),
        pa.field("bucket_counts", pa.list_(pa.uint64())),
        pa.field("explicit_bounds", pa.list_(pa.float64())),
        pa.field("scale", pa.int32()),
        pa.field("zero_count", pa.uint64()),
        pa.field("zero_threshold", pa.float64()),
        pa.field("positive_offset", pa.int32()),
        pa.field("positive_counts", pa.list_(pa.uint64())),
        pa.field("negative_offset", pa.int32()),
        pa.field("negative_counts", pa.list_(pa.uint64())),
        pa.field("quantiles", pa.list_(QUANTILE)),
        pa.field("exemplars", pa.string()),  # JSON, rare
        pa.field("metadata", ATTRIBUTES),
        pa.field("imported", pa.bool_()),
    ]
)


TABLES: dict[str, pa.Schema] = {
    "resources": RESOURCES,
    "scopes": SCOPES,
    "spans": SPANS,
    "logs": LOGS,
    "metric_points": METRIC_POINTS,
}
