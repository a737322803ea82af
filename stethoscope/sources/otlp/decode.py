"""OTLP trace and log export requests into SignalBatches, once, straight into columns.

A record with an invalid id or absurd nesting is rejected alone and counted, so that the
receiver can answer with an exact `partial_success`; everything else in the request is kept.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from stethoscope.logs.masking import MASKED_COLUMN, masked_lines
from stethoscope.model.batch import SignalBatch
from stethoscope.model.schema import EVENT, LINK, LOGS, SPANS
from stethoscope.sources.otlp.columns import (
    checked_ids,
    encode_values,
    enum_codes,
    id_halves,
    id_values,
    nanos,
    nested_offsets,
    owners,
)
from stethoscope.sources.otlp.decode_metrics import decode_metrics
from stethoscope.sources.otlp.origins import Origins
from stethoscope.sources.otlp.rawattrs import RawAttributes, as_raw

__all__ = ["decode_logs", "decode_metrics", "decode_traces"]

NESTING = "an attribute value nested too deeply"
INVALID = "an attribute that cannot be parsed (malformed, nested too deeply, or not UTF-8)"
EVENT_NAME_KEY = "event.name"


class Rejections:
    """The records of a request that cannot be kept, with a reason per kind of problem."""

    def __init__(self, noun: str) -> None:
        self.noun = noun
        self.records: set[int] = set()
        self.reasons: list[str] = []

    def add(self, indexes: set[int], reason: str) -> None:
        """Reject these records for this reason (no-op when empty)."""
        if indexes:
            self.records |= indexes
            self.reasons.append(f"{len(indexes)} {self.noun}: {reason}")

    def finish(self, batch: SignalBatch, name: str, table: pa.Table) -> SignalBatch:
        """Put the table, without the rejected rows, in the batch with the counts."""
        if self.records:
            mask = np.ones(table.num_rows, dtype=bool)
            mask[list(self.records)] = False
            table = table.filter(pa.array(mask))
        batch.tables[name] = table
        batch.accepted = table.num_rows
        batch.rejected = len(self.records)
        batch.reasons = self.reasons
        return batch


def _imported(n: int, imported: bool) -> pa.Array:
    return pa.array(np.full(n, imported, dtype=bool))


def _list_column(offsets: list[int], children: list[pa.Array], struct: pa.DataType) -> pa.Array:
    values = pa.StructArray.from_arrays(children, fields=list(struct))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def _events(spans: list[Any], rejections: Rejections) -> pa.Array:
    lists = [span.events for span in spans]
    offsets = nested_offsets(lists)
    events = [event for events in lists for event in events]
    attributes = RawAttributes([event.attributes for event in events])
    rejections.add(owners(offsets, attributes.bad_records), f"{NESTING} in an event")
    rejections.add(owners(offsets, attributes.invalid_records), f"{INVALID} in an event")
    children = [
        pa.array(nanos([event.time_unix_nano for event in events]), pa.int64()),
        pa.array([event.name for event in events], pa.string()),
        attributes.to_arrow(),
        pa.array([event.dropped_attributes_count for event in events], pa.uint32()),
    ]
    return _list_column(offsets, children, EVENT)


def _links(spans: list[Any], rejections: Rejections) -> pa.Array:
    lists = [span.links for span in spans]
    offsets = nested_offsets(lists)
    links = [link for links in lists for link in links]
    trace_ids, bad_traces = checked_ids([link.trace_id for link in links], 16, required=True)
    span_ids, bad_spans = checked_ids([link.span_id for link in links], 8, required=True)
    attributes = RawAttributes([link.attributes for link in links])
    rejections.add(owners(offsets, bad_traces | bad_spans), "a link with an invalid id")
    rejections.add(owners(offsets, attributes.bad_records), f"{NESTING} in a link")
    rejections.add(owners(offsets, attributes.invalid_records), f"{INVALID} in a link")
    hi, lo = id_halves(trace_ids)
    children = [
        pa.array(hi, pa.uint64()),
        pa.array(lo, pa.uint64()),
        pa.array(id_values(span_ids), pa.uint64()),
        pa.array([link.trace_state for link in links], pa.string()),
        attributes.to_arrow(),
        pa.array([link.dropped_attributes_count for link in links], pa.uint32()),
        pa.array([link.flags for link in links], pa.uint32()),
    ]
    return _list_column(offsets, children, LINK)


def decode_traces(request: ExportTraceServiceRequest, *, imported: bool = False) -> SignalBatch:
    """Spans of an export request as the spans, resources and scopes tables."""
    request = as_raw("traces", request)
    origins = Origins()
    found = origins.gather(request.resource_spans, "scope_spans", "spans")
    spans = found.items
    rejections = Rejections("spans")
    trace_ids, bad = checked_ids([span.trace_id for span in spans], 16, required=True)
    rejections.add(bad, "invalid trace id (need 16 bytes, not all zero)")
    span_ids, bad = checked_ids([span.span_id for span in spans], 8, required=True)
    rejections.add(bad, "invalid span id (need 8 bytes, not all zero)")
    parent_ids, bad = checked_ids([span.parent_span_id for span in spans], 8, required=False)
    rejections.add(bad, "invalid parent span id (need 8 bytes or none)")
    attributes = RawAttributes([span.attributes for span in spans])
    rejections.add(attributes.bad_records, NESTING)
    rejections.add(attributes.invalid_records, INVALID)
    starts = nanos([span.start_time_unix_nano for span in spans])
    ends = nanos([span.end_time_unix_nano for span in spans])
    statuses = [span.status for span in spans]
    hi, lo = id_halves(trace_ids)
    columns = [
        pa.array(found.resource_ids, pa.uint64()),
        pa.array(found.scope_ids, pa.uint64()),
        pa.array(found.services, pa.string()),
        pa.array(hi, pa.uint64()),
        pa.array(lo, pa.uint64()),
        pa.array(id_values(span_ids), pa.uint64()),
        pa.array(id_values(parent_ids), pa.uint64()),
        pa.array([span.trace_state for span in spans], pa.string()),
        pa.array([span.flags for span in spans], pa.uint32()),
        pa.array([span.name for span in spans], pa.string()),
        pa.array(enum_codes([span.kind for span in spans]), pa.uint8()),
        pa.array(starts, pa.int64()),
        pa.array(np.maximum(ends - starts, 0), pa.int64()),
        pa.array(enum_codes([status.code for status in statuses]), pa.uint8()),
        pa.array([status.message for status in statuses], pa.string()),
        attributes.to_arrow(),
        _events(spans, rejections),
        _links(spans, rejections),
        pa.array([span.dropped_attributes_count for span in spans], pa.uint32()),
        pa.array([span.dropped_events_count for span in spans], pa.uint32()),
        pa.array([span.dropped_links_count for span in spans], pa.uint32()),
        _imported(len(spans), imported),
    ]
    batch = SignalBatch("traces", tables=origins.tables())
    return rejections.finish(batch, "spans", pa.Table.from_arrays(columns, schema=SPANS))


def _event_names(records: list[Any], attributes: RawAttributes) -> list[str]:
    """Each record's event name: its `event_name` field, else its `event.name` attribute.

    Many SDKs send an event only as the attribute (the older OTel event convention).
    """
    names = [record.event_name for record in records]
    for owner, name in attributes.strings_named(EVENT_NAME_KEY).items():
        names[owner] = names[owner] or name
    return names


def decode_logs(request: ExportLogsServiceRequest, *, imported: bool = False) -> SignalBatch:
    """Log records of an export request as the logs, resources and scopes tables."""
    request = as_raw("logs", request)
    origins = Origins()
    found = origins.gather(request.resource_logs, "scope_logs", "log_records")
    records = found.items
    rejections = Rejections("log records")
    trace_ids, bad = checked_ids([record.trace_id for record in records], 16, required=False)
    rejections.add(bad, "invalid trace id (need 16 bytes or none)")
    span_ids, bad = checked_ids([record.span_id for record in records], 8, required=False)
    rejections.add(bad, "invalid span id (need 8 bytes or none)")
    attributes = RawAttributes([record.attributes for record in records])
    rejections.add(attributes.bad_records, NESTING)
    rejections.add(attributes.invalid_records, INVALID)
    body_types, body_texts, bad = encode_values([record.body for record in records])
    rejections.add(bad, "a body nested too deeply")
    observed = nanos([record.observed_time_unix_nano for record in records])
    if not imported:
        # A collector sets the observed time when the sender did not (OTLP logs data model).
        observed = np.where(observed == 0, time.time_ns(), observed)
    times = nanos([record.time_unix_nano for record in records])
    # The spec lets time be 0 (unknown); the observed time is the best we have then.
    times = np.where(times == 0, observed, times)
    hi, lo = id_halves(trace_ids)
    columns = [
        pa.array(found.resource_ids, pa.uint64()),
        pa.array(found.scope_ids, pa.uint64()),
        pa.array(found.services, pa.string()),
        pa.array(times, pa.int64()),
        pa.array(observed, pa.int64()),
        pa.array(enum_codes([record.severity_number for record in records]), pa.uint8()),
        pa.array([record.severity_text for record in records], pa.string()),
        pa.array(body_types, pa.uint8()),
        pa.array(body_texts, pa.string()),
        attributes.to_arrow(),
        pa.array([record.dropped_attributes_count for record in records], pa.uint32()),
        pa.array([record.flags for record in records], pa.uint32()),
        pa.array(hi, pa.uint64()),
        pa.array(lo, pa.uint64()),
        pa.array(id_values(span_ids), pa.uint64()),
        pa.array(_event_names(records, attributes), pa.string()),
        _imported(len(records), imported),
        pa.nulls(len(records), pa.uint64()),  # template_id: the writer mines it
        pa.nulls(len(records), pa.list_(pa.string())),  # template_params
    ]
    table = pa.Table.from_arrays(columns, schema=LOGS)
    # Masking is the stateless part of template mining: done here, in the decode workers, it
    # is off the writer's path. The writer drops the column before the store sees the records.
    masked = pa.array(masked_lines(body_types, body_texts), pa.string())
    table = table.append_column(MASKED_COLUMN, masked)
    batch = SignalBatch("logs", tables=origins.tables())
    return rejections.finish(batch, "logs", table)
