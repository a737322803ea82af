"""OTLP trace and log export requests into SignalBatches, once, straight into columns.

A record with an invalid id or absurd nesting is rejected alone and counted, so that the
receiver can answer with an exact `partial_success`; everything else in the request is kept.

Spans and log records arrive as raw bytes (`rawattrs.as_raw`) and are read on the wire for the
whole request at once (`wire.Walk`), attributes and log bodies in place: that is about half the
cost of reading their message objects field by field. A request the walk does not read as
protobuf would (an unusual encoding, text that is not UTF-8, a malformed body) is parsed in full
and decoded from its messages, the reference the walk must match.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from stethoscope.errors import Rejected
from stethoscope.logs.masking import MASKED_COLUMN, masked_lines, masked_texts
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
from stethoscope.sources.otlp.origins import Origins, Records
from stethoscope.sources.otlp.rawattrs import (
    RawAttributes,
    RawValues,
    as_raw,
    full_request,
    parsed_bodies,
)
from stethoscope.sources.otlp.wire import (
    FIXED32,
    FIXED64,
    LEN,
    PAD,
    VARINT,
    Field,
    Layout,
    Walk,
    utf8_strings,
)

__all__ = ["decode_logs", "decode_metrics", "decode_traces"]

NESTING = "an attribute value nested too deeply"
INVALID = "an attribute that cannot be parsed (malformed, nested too deeply, or not UTF-8)"
BODY_NESTING = "a body nested too deeply"
EVENT_NAME_KEY = "event.name"
_REQUEST_NAMES = {
    "traces": ExportTraceServiceRequest.__name__,
    "logs": ExportLogsServiceRequest.__name__,
}
INT64_MAX = (1 << 63) - 1
UINT32 = 0xFFFF_FFFF

# The fields of spans and what they hold (opentelemetry/proto/trace/v1/trace.proto).
_SPAN = Layout(
    *(Field(number, LEN) for number in (1, 2, 3, 4, 5)),  # ids, trace_state, name
    Field(6, VARINT),  # kind
    Field(7, FIXED64),  # start_time_unix_nano
    Field(8, FIXED64),  # end_time_unix_nano
    Field(9, LEN, repeated=True),  # attributes
    Field(10, VARINT),  # dropped_attributes_count
    Field(11, LEN, repeated=True),  # events
    Field(12, VARINT),  # dropped_events_count
    Field(13, LEN, repeated=True),  # links
    Field(14, VARINT),  # dropped_links_count
    Field(15, LEN),  # status
    Field(16, FIXED32),  # flags
)
# The fields of log records (opentelemetry/proto/logs/v1/logs.proto; 4 is reserved).
_LOG = Layout(
    Field(1, FIXED64),  # time_unix_nano
    Field(2, VARINT),  # severity_number
    Field(3, LEN),  # severity_text
    Field(5, LEN),  # body
    Field(6, LEN, repeated=True),  # attributes
    Field(7, VARINT),  # dropped_attributes_count
    Field(8, FIXED32),  # flags
    Field(9, LEN),  # trace_id
    Field(10, LEN),  # span_id
    Field(11, FIXED64),  # observed_time_unix_nano
    Field(12, LEN),  # event_name
)
_STATUS = Layout(Field(2, LEN), Field(3, VARINT))  # message, code
_EVENT = Layout(Field(1, FIXED64), Field(2, LEN), Field(3, LEN, repeated=True), Field(4, VARINT))
_LINK = Layout(
    *(Field(number, LEN) for number in (1, 2, 3)),  # ids, trace_state
    Field(4, LEN, repeated=True),  # attributes
    Field(5, VARINT),  # dropped_attributes_count
    Field(6, FIXED32),  # flags
)


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


def _list_column(
    offsets: list[int] | np.ndarray, children: list[pa.Array], struct: pa.DataType
) -> pa.Array:
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


def _walk(raw: list[bytes], layout: Layout) -> Walk | None:
    """The fields of records given as their serialized bytes; None when any is unusual (its
    fields may point anywhere, so nothing of the request is read this way)."""
    lengths = np.fromiter(map(len, raw), np.int64, len(raw))
    ends = np.cumsum(lengths)
    walk = Walk(np.frombuffer(b"".join([*raw, PAD]), np.uint8), ends - lengths, ends, layout)
    return None if walk.unusual.any() else walk


def _walked_spans(raw: list[bytes], rejections: Rejections) -> list[pa.Array] | None:
    """Span columns (trace id to dropped_links_count) read on the wire; None if unusual."""
    spans = _walk(raw, _SPAN)
    if spans is None:
        return None
    buffer = spans.buffer
    with_status = np.flatnonzero(spans.at(15) >= 0)
    status = _inner(spans, 15, with_status, _STATUS)
    event_owners, event_at, event_size = spans.items(11)
    events = Walk(buffer, event_at, event_at + event_size, _EVENT)
    link_owners, link_at, link_size = spans.items(13)
    links = Walk(buffer, link_at, link_at + link_size, _LINK)
    if any(walk.unusual.any() for walk in (status, events, links)):
        return None
    message_at, message_size = np.zeros((2, len(raw)), np.int64)
    message_at[with_status], message_size[with_status] = status.at(2), status.size(2)
    texts = [
        spans.text(3),
        spans.text(5),
        utf8_strings(buffer, message_at, message_size),
        events.text(2),
        links.text(3),
    ]
    if any(text is None for text in texts):  # not UTF-8: protobuf rejects the whole request
        return None
    trace_state, name, message, event_names, link_states = texts
    (hi, lo), bad = spans.ids(1, 16, required=True)
    rejections.add(bad, "invalid trace id (need 16 bytes, not all zero)")
    (span_ids,), bad = spans.ids(2, 8, required=True)
    rejections.add(bad, "invalid span id (need 8 bytes, not all zero)")
    (parent_ids,), bad = spans.ids(4, 8, required=False)
    rejections.add(bad, "invalid parent span id (need 8 bytes or none)")
    attributes = _located_attributes(spans, 9)
    rejections.add(attributes.bad_records, NESTING)
    rejections.add(attributes.invalid_records, INVALID)
    starts, ends = _nanos(spans.fixed(7, 8)), _nanos(spans.fixed(8, 8))
    codes = np.zeros(len(raw), np.uint8)
    codes[with_status] = _codes(status.varint(3))
    return [
        pa.array(hi, pa.uint64()),
        pa.array(lo, pa.uint64()),
        pa.array(span_ids, pa.uint64()),
        pa.array(parent_ids, pa.uint64()),
        trace_state,
        pa.array(spans.fixed(16, 4).astype(np.uint32), pa.uint32()),
        name,
        pa.array(_codes(spans.varint(6)), pa.uint8()),
        pa.array(starts, pa.int64()),
        pa.array(np.maximum(ends - starts, 0), pa.int64()),
        pa.array(codes, pa.uint8()),
        message,
        attributes.to_arrow(),
        _walked_events(events, event_owners, event_names, len(raw), rejections),
        _walked_links(links, link_owners, link_states, len(raw), rejections),
        *(pa.array(_uint32(spans.varint(number)), pa.uint32()) for number in (10, 12, 14)),
    ]


def _inner(outer: Walk, number: int, which: np.ndarray, layout: Layout) -> Walk:
    """The walk of the singular message field `number` of the records `which`."""
    at = outer.at(number)[which]
    return Walk(outer.buffer, at, at + outer.size(number)[which], layout)


def _located_attributes(walk: Walk, number: int) -> RawAttributes:
    owners, at, size = walk.items(number)
    return RawAttributes.located(walk.buffer, _offsets(owners, len(walk.unusual)), at, size)


def _offsets(owners: np.ndarray, count: int) -> np.ndarray:
    """List offsets of `count` records from the (sorted) owner of each item."""
    offsets = np.zeros(count + 1, np.int64)
    np.cumsum(np.bincount(owners, minlength=count), out=offsets[1:])
    return offsets


def _owners_of(owners: np.ndarray, items: set[int]) -> set[int]:
    return set(owners[sorted(items)].tolist()) if items else set()


def _walked_events(
    events: Walk, owners: np.ndarray, names: pa.Array, count: int, rejections: Rejections
) -> pa.Array:
    attributes = _located_attributes(events, 3)
    rejections.add(_owners_of(owners, attributes.bad_records), f"{NESTING} in an event")
    rejections.add(_owners_of(owners, attributes.invalid_records), f"{INVALID} in an event")
    children = [
        pa.array(_nanos(events.fixed(1, 8)), pa.int64()),
        names,
        attributes.to_arrow(),
        pa.array(_uint32(events.varint(4)), pa.uint32()),
    ]
    return _list_column(_offsets(owners, count), children, EVENT)


def _walked_links(
    links: Walk, owners: np.ndarray, states: pa.Array, count: int, rejections: Rejections
) -> pa.Array:
    (hi, lo), bad_traces = links.ids(1, 16, required=True)
    (span_ids,), bad_spans = links.ids(2, 8, required=True)
    attributes = _located_attributes(links, 4)
    rejections.add(_owners_of(owners, bad_traces | bad_spans), "a link with an invalid id")
    rejections.add(_owners_of(owners, attributes.bad_records), f"{NESTING} in a link")
    rejections.add(_owners_of(owners, attributes.invalid_records), f"{INVALID} in a link")
    children = [
        pa.array(hi, pa.uint64()),
        pa.array(lo, pa.uint64()),
        pa.array(span_ids, pa.uint64()),
        states,
        attributes.to_arrow(),
        pa.array(_uint32(links.varint(5)), pa.uint32()),
        pa.array(links.fixed(6, 4).astype(np.uint32), pa.uint32()),
    ]
    return _list_column(_offsets(owners, count), children, LINK)


def _codes(values: np.ndarray) -> np.ndarray:
    """Varint enum values as `enum_codes` reads them (int32, outside 0-255 is 0)."""
    low = values & np.uint64(UINT32)
    return np.where(low <= 255, low, 0).astype(np.uint8)


def _uint32(values: np.ndarray) -> np.ndarray:
    """Varints of uint32 fields as protobuf reads them (the low 32 bits)."""
    return (values & np.uint64(UINT32)).astype(np.uint32)


def _nanos(values: np.ndarray) -> np.ndarray:
    return np.minimum(values, np.uint64(INT64_MAX)).astype(np.int64)


def decode_traces(request: ExportTraceServiceRequest, *, imported: bool = False) -> SignalBatch:
    """Spans of an export request as the spans, resources and scopes tables."""
    request = as_raw("traces", request)
    origins = Origins()
    found = origins.gather(request.resource_spans, "scope_spans", "spans")
    rejections = Rejections("spans")
    walked = _walked_spans(found.items, rejections) if found.items else None
    if walked is None:  # something only protobuf reads as it should: decode messages
        return _decode_span_messages(_parsed(request, "traces"), imported)
    columns = [
        *found.columns(),
        *walked,
        _imported(len(found.items), imported),
    ]
    batch = SignalBatch("traces", tables=origins.tables())
    return rejections.finish(batch, "spans", pa.Table.from_arrays(columns, schema=SPANS))


def _parsed(request: Any, signal: str) -> Any:
    """The request with its records parsed; Rejected, as its body would be, when malformed."""
    try:
        return full_request(request.SerializeToString(), signal)
    except (DecodeError, RecursionError) as error:
        raise Rejected(f"body is not a valid {_REQUEST_NAMES[signal]}: {error}") from None


def _decode_span_messages(request: Any, imported: bool) -> SignalBatch:
    """Spans read field by field from their messages: the reference the walk must match."""
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
        *found.columns(),
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


def decode_logs(request: ExportLogsServiceRequest, *, imported: bool = False) -> SignalBatch:
    """Log records of an export request as the logs, resources and scopes tables."""
    request = as_raw("logs", request)
    origins = Origins()
    found = origins.gather(request.resource_logs, "scope_logs", "log_records")
    rejections = Rejections("log records")
    walked = _walked_logs(found.items, imported, rejections) if found.items else None
    if walked is None:  # something only protobuf reads as it should: decode messages
        return _decode_log_messages(_parsed(request, "logs"), imported)
    columns, bodies = walked
    return _logs_batch(origins, found, columns, (bodies.types, bodies.texts), rejections, imported)


def _walked_logs(
    raw: list[bytes], imported: bool, rejections: Rejections
) -> tuple[list[pa.Array], RawValues] | None:
    """Log columns (time to event name) and bodies read on the wire; None if unusual."""
    logs = _walk(raw, _LOG)
    if logs is None:
        return None
    severity_text = logs.text(3)
    event_names = logs.text(12)
    bodies = RawValues.located(logs.buffer, logs.at(5), logs.size(5), parsed_bodies)
    if severity_text is None or event_names is None or bodies is None:
        return None  # not UTF-8, or a malformed body: protobuf rejects the whole request
    (hi, lo), bad = logs.ids(9, 16, required=False)
    rejections.add(bad, "invalid trace id (need 16 bytes or none)")
    (span_ids,), bad = logs.ids(10, 8, required=False)
    rejections.add(bad, "invalid span id (need 8 bytes or none)")
    attributes = _located_attributes(logs, 6)
    rejections.add(attributes.bad_records, NESTING)
    rejections.add(attributes.invalid_records, INVALID)
    rejections.add(bodies.nested, BODY_NESTING)
    times, observed = _log_times(
        _nanos(logs.fixed(1, 8)), _nanos(logs.fixed(11, 8)), imported=imported
    )
    columns = [
        pa.array(times, pa.int64()),
        pa.array(observed, pa.int64()),
        pa.array(_codes(logs.varint(2)), pa.uint8()),
        severity_text,
        pa.array(bodies.types, pa.uint8()),
        bodies.texts,
        attributes.to_arrow(),
        pa.array(_uint32(logs.varint(7)), pa.uint32()),
        pa.array(logs.fixed(8, 4).astype(np.uint32), pa.uint32()),
        pa.array(hi, pa.uint64()),
        pa.array(lo, pa.uint64()),
        pa.array(span_ids, pa.uint64()),
        _with_event_names(event_names, attributes),
    ]
    return columns, bodies


def _log_times(
    times: np.ndarray, observed: np.ndarray, *, imported: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(time, observed time) of records, with the defaults the OTLP logs data model gives."""
    if not imported:
        # A collector sets the observed time when the sender did not (OTLP logs data model).
        observed = np.where(observed == 0, time.time_ns(), observed)
    # The spec lets time be 0 (unknown); the observed time is the best we have then.
    return np.where(times == 0, observed, times), observed


def _with_event_names(names: pa.Array, attributes: RawAttributes) -> pa.Array:
    """Each record's event name: its `event_name` field, else its `event.name` attribute.

    Many SDKs send an event only as the attribute (the older OTel event convention).
    """
    named = attributes.strings_named(EVENT_NAME_KEY)
    if not named:
        return names
    listed = names.to_pylist()
    for owner, name in named.items():
        listed[owner] = listed[owner] or name
    return pa.array(listed, pa.string())


def _logs_batch(
    origins: Origins,
    found: Records,
    columns: list[pa.Array],
    bodies: tuple[np.ndarray, pa.Array],
    rejections: Rejections,
    imported: bool,
) -> SignalBatch:
    """The logs table from its columns (time to event name), masked lines added, in a batch."""
    count = len(found.items)
    table = pa.Table.from_arrays(
        [
            *found.columns(),
            *columns,
            _imported(count, imported),
            pa.nulls(count, pa.uint64()),  # template_id: the writer mines it
            pa.nulls(count, pa.list_(pa.string())),  # template_params
        ],
        schema=LOGS,
    )
    # Masking is the stateless part of template mining: done here, in the decode workers, it
    # is off the writer's path. The writer drops the column before the store sees the records.
    table = table.append_column(MASKED_COLUMN, _masked(*bodies))
    batch = SignalBatch("logs", tables=origins.tables())
    return rejections.finish(batch, "logs", table)


def _masked(body_types: np.ndarray, bodies: pa.Array) -> pa.Array:
    """The masked line of each record (`masked_lines`, kept as the array it is made as)."""
    try:
        return masked_texts(body_types, bodies)
    except pa.ArrowException:  # what `masked_lines` masks one by one
        return pa.array(masked_lines(body_types.tolist(), bodies.to_pylist()), pa.string())


def _decode_log_messages(request: Any, imported: bool) -> SignalBatch:
    """Log records read field by field from their messages: the reference the walk must match."""
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
    rejections.add(bad, BODY_NESTING)
    times, observed = _log_times(
        nanos([record.time_unix_nano for record in records]),
        nanos([record.observed_time_unix_nano for record in records]),
        imported=imported,
    )
    hi, lo = id_halves(trace_ids)
    event_names = pa.array([record.event_name for record in records], pa.string())
    columns = [
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
        _with_event_names(event_names, attributes),
    ]
    bodies = (np.asarray(body_types, np.int64), pa.array(body_texts, pa.string()))
    return _logs_batch(origins, found, columns, bodies, rejections, imported)
