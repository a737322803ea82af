"""Spans walked on the wire decode exactly as spans read from their protobuf messages.

`decode_traces` reads spans as raw bytes with numpy (`wire.py`) and leaves anything unusual to
protobuf. The reference here is the message decoder it falls back to, fed with a full parse of
the same body, so that any difference (a value, a rejection, a reason, a refused body) shows.
Requests are written byte by byte, to reach encodings no SDK writes: fields out of order or
repeated, unknown fields and groups, padded and oversized varints, truncated or bad UTF-8 data.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from stethoscope.errors import Rejected
from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp import decode
from stethoscope.sources.otlp.codec import decode_request
from stethoscope.sources.otlp.rawattrs import full_request

PROTOBUF = "application/x-protobuf"
VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


def reference(body: bytes) -> SignalBatch:
    """What decoding every span from its message gives (Rejected as the full parse fails)."""
    try:
        request = full_request(body)
    except (DecodeError, RecursionError) as error:
        raise Rejected(f"body is not a valid ExportTraceServiceRequest: {error}") from None
    return decode._decode_span_messages(request, False)


def outcome(decoder: Any, body: bytes) -> tuple[Any, ...]:
    try:
        batch = decoder(body)
    except Rejected as error:
        return ("rejected", str(error), error.status)
    tables = {name: (table.schema, table.to_pydict()) for name, table in batch.tables.items()}
    assert all(isinstance(table, pa.Table) for table in batch.tables.values())
    return ("kept", tables, batch.accepted, batch.rejected, batch.reasons)


def assert_same(body: bytes) -> None:
    walked = outcome(lambda data: decode_request("traces", data, PROTOBUF), body)
    assert walked == outcome(reference, body)


# -- writing protobuf by hand ------------------------------------------------------------------


def varint(value: int, padding: int = 0) -> bytes:
    """`value` (mod 2**64) as a varint, with `padding` redundant continuation bytes."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    if padding:
        out[-1] |= 0x80
        out.extend([0x80] * (padding - 1) + [0x00])
    return bytes(out)


def field(number: int, wire_type: int, payload: bytes, tag_padding: int = 0) -> bytes:
    return varint((number << 3) | wire_type, tag_padding) + payload


def delimited(number: int, data: bytes, length_padding: int = 0) -> bytes:
    return field(number, LEN, varint(len(data), length_padding) + data)


VALUES = [
    KeyValue(key="http.route", value=AnyValue(string_value="/api/{id}")),
    KeyValue(key="n", value=AnyValue(int_value=-5)),
    KeyValue(key="ok", value=AnyValue(bool_value=True)),
    KeyValue(key="x", value=AnyValue(double_value=0.25)),
    KeyValue(key="long", value=AnyValue(string_value="é" * 100)),
    KeyValue(key="list", value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)]))),
    KeyValue(key="empty"),
]


def deep_value(depth: int) -> KeyValue:
    value = AnyValue(string_value="bottom")
    for _ in range(depth):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    return KeyValue(key="deep", value=value)


attribute = st.tuples(
    st.integers(0, 99),
    st.sampled_from([value.SerializeToString() for value in VALUES]),
    st.sampled_from([deep_value(40).SerializeToString(), b"", b"\x0a", b"\x0a\x01\xff"]),
).map(lambda drawn: drawn[2] if drawn[0] in (7, 57) else drawn[1])  # rarely not one


def ids(width: int) -> Any:
    """Mostly good ids of `width` bytes; sometimes missing, all zero or the wrong length."""
    odd = st.sampled_from([b"", bytes(width), b"\x01" * (width - 1), b"\x01" * (width + 1)])
    good = st.binary(min_size=width, max_size=width)
    return st.tuples(st.integers(0, 99), good, odd).map(
        lambda drawn: drawn[2] if drawn[0] in (7, 57) else drawn[1]
    )


texts = st.tuples(
    st.integers(0, 99),
    st.binary(max_size=4),  # now and then (one time in a hundred) not UTF-8
    st.sampled_from(["", "GET /", "zürich ☃", "x" * 130]),
).map(lambda drawn: drawn[1] if drawn[0] == 57 else drawn[2].encode())
numbers = st.one_of(
    st.integers(0, 300),
    st.sampled_from([255, 256, 2**31 - 1, 2**31, 2**32 - 1, 2**32 + 7, 2**63, 2**64 - 1]),
    st.integers(-(2**63), 2**64 - 1),
)
padding = st.tuples(st.integers(0, 99), st.sampled_from([1, 3, 9, 10])).map(
    lambda drawn: drawn[1] if drawn[0] in (7, 57) else 0
)


@st.composite
def scalar(draw: Any, number: int, wire_type: int) -> bytes:
    if wire_type == VARINT:
        return field(number, VARINT, varint(draw(numbers), draw(padding)))
    if wire_type == FIXED64:
        return field(number, FIXED64, draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little"))
    return field(number, FIXED32, draw(st.integers(0, 2**32 - 1)).to_bytes(4, "little"))


@st.composite
def oddity(draw: Any, numbers_taken: range) -> bytes:
    """A field that is unknown, of the wrong wire type, a group, or not protobuf at all."""
    kind = draw(st.sampled_from(["unknown", "wrong type", "group", "garbage", "big number"]))
    if kind == "unknown":
        number = draw(st.integers(numbers_taken.stop, 40))
        wire_type = draw(st.sampled_from([VARINT, FIXED64, LEN, FIXED32]))
        if wire_type == LEN:
            return delimited(number, draw(st.binary(max_size=5)))
        return draw(scalar(number, wire_type))
    if kind == "wrong type":
        number = draw(st.integers(numbers_taken.start, numbers_taken.stop - 1))
        return draw(scalar(number, draw(st.sampled_from([VARINT, FIXED64, FIXED32]))))
    if kind == "group":
        return field(50, START_GROUP, field(1, VARINT, b"\x01") + field(50, END_GROUP, b""))
    if kind == "big number":
        return draw(scalar(draw(st.sampled_from([1000, 2047, 2048, 536870911])), VARINT))
    return draw(st.binary(min_size=1, max_size=3))


@st.composite
def message(draw: Any, fields: dict[int, Any], top: int) -> bytes:
    """A message from some of `fields` (number -> strategy of encoded fields), maybe oddly."""
    chosen = [draw(strategy) for strategy in fields.values() if draw(st.integers(0, 3))]
    if draw(st.integers(0, 39)) == 0:
        chosen.append(draw(oddity(range(1, top + 1))))
    if draw(st.integers(0, 19)) == 0:
        chosen.append(draw(st.sampled_from(list(fields.values())).flatmap(lambda s: s)))
    if draw(st.integers(0, 5)) == 0:
        chosen = draw(st.permutations(chosen))
    data = b"".join(chosen)
    if data and draw(st.integers(0, 99)) == 0:
        data = data[: draw(st.integers(0, len(data) - 1))]  # truncated
    return data


def text_field(number: int) -> Any:
    return texts.map(lambda text: delimited(number, text))


def repeated(number: int, items: Any, most: int) -> Any:
    return st.lists(items, max_size=most).map(lambda xs: b"".join(delimited(number, x) for x in xs))


STATUS = {2: text_field(2), 3: scalar(3, VARINT)}
EVENT = {
    1: scalar(1, FIXED64),
    2: text_field(2),
    3: repeated(3, attribute, 3),
    4: scalar(4, VARINT),
}
LINK = {
    1: ids(16).map(lambda raw: delimited(1, raw)),
    2: ids(8).map(lambda raw: delimited(2, raw)),
    3: text_field(3),
    4: repeated(4, attribute, 3),
    5: scalar(5, VARINT),
    6: scalar(6, FIXED32),
}
SPAN = {
    1: ids(16).map(lambda raw: delimited(1, raw)),
    2: ids(8).map(lambda raw: delimited(2, raw)),
    3: text_field(3),
    4: ids(8).map(lambda raw: delimited(4, raw)),
    5: st.tuples(texts, padding).map(lambda pair: delimited(5, pair[0], pair[1] % 4)),
    6: scalar(6, VARINT),
    7: scalar(7, FIXED64),
    8: scalar(8, FIXED64),
    9: repeated(9, attribute, 4),
    10: scalar(10, VARINT),
    11: repeated(11, message(EVENT, 4), 2),
    12: scalar(12, VARINT),
    13: repeated(13, message(LINK, 6), 2),
    14: scalar(14, VARINT),
    15: message(STATUS, 3).map(lambda data: delimited(15, data)),
    16: scalar(16, FIXED32),
}
RESOURCES = [
    Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=name))])
    for name in ("cart", "checkout")
]


@st.composite
def requests(draw: Any) -> bytes:
    """An ExportTraceServiceRequest body, of spans written byte by byte."""
    groups = []
    for _ in range(draw(st.integers(0, 2))):
        scopes = []
        for _ in range(draw(st.integers(0, 2))):
            spans = draw(st.lists(message(SPAN, 16), max_size=5))
            scope = InstrumentationScope(name=draw(st.sampled_from(["a", "b"])))
            scopes.append(
                delimited(1, scope.SerializeToString())
                + b"".join(delimited(2, span) for span in spans)
            )
        resource = draw(st.sampled_from(RESOURCES)).SerializeToString()
        groups.append(delimited(1, resource) + b"".join(delimited(2, s) for s in scopes))
    return b"".join(delimited(1, group) for group in groups)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(requests())
def test_walked_spans_decode_as_span_messages(body: bytes) -> None:
    assert_same(body)


# -- named cases -------------------------------------------------------------------------------

GOOD = Span(
    trace_id=b"\x01" * 16,
    span_id=b"\x02" * 8,
    name="GET /",
    kind=Span.SPAN_KIND_SERVER,
    start_time_unix_nano=10,
    end_time_unix_nano=25,
    attributes=VALUES,
    events=[Span.Event(time_unix_nano=12, name="retry", attributes=VALUES[:2])],
    links=[Span.Link(trace_id=b"\x03" * 16, span_id=b"\x04" * 8, flags=0x301)],
    status=Status(code=Status.STATUS_CODE_ERROR, message="upstream failed"),
    flags=0x100,
)


def body_of(*spans: bytes) -> bytes:
    scope = b"".join(delimited(2, span) for span in spans)
    group = delimited(1, RESOURCES[0].SerializeToString()) + delimited(2, scope)
    return delimited(1, group)


CASES = {
    "ordinary span": GOOD.SerializeToString(),
    "empty span": b"",
    "fields in reverse order": b"".join(
        reversed([delimited(1, b"\x01" * 16), delimited(2, b"\x02" * 8), delimited(5, b"n")])
    ),
    "trace id repeated (last wins)": GOOD.SerializeToString() + delimited(1, b"\x05" * 16),
    "status twice (merged)": GOOD.SerializeToString() + delimited(15, field(3, VARINT, b"\x01")),
    "unknown field": GOOD.SerializeToString() + delimited(99, b"future"),
    "kind as a ten-byte varint": GOOD.SerializeToString() + field(6, VARINT, varint(2**64 - 1)),
    "padded length": delimited(1, b"\x01" * 16, 3) + delimited(2, b"\x02" * 8),
    "name not UTF-8": GOOD.SerializeToString() + delimited(5, b"\xff"),
    "truncated": GOOD.SerializeToString()[:-3],
    "group": GOOD.SerializeToString() + field(7, START_GROUP, b"") + field(7, END_GROUP, b""),
    "all-zero trace id": Span(trace_id=bytes(16), span_id=b"\x02" * 8).SerializeToString(),
    "attribute nested too deeply": delimited(1, b"\x01" * 16)
    + delimited(2, b"\x02" * 8)
    + delimited(9, deep_value(40).SerializeToString()),
}


@pytest.mark.parametrize("span", CASES.values(), ids=CASES.keys())
def test_odd_spans_decode_as_span_messages(span: bytes) -> None:
    assert_same(body_of(GOOD.SerializeToString(), span, GOOD.SerializeToString()))


def test_a_body_malformed_outside_its_spans_fails_as_a_full_parse_does() -> None:
    bad_utf8 = delimited(5, b"\xff")  # a span error first, then a corrupt resource
    body = body_of(bad_utf8) + delimited(1, delimited(1, b"\x0a\x05ab"))
    with pytest.raises(Rejected, match="bad UTF-8"):
        decode_request("traces", body, PROTOBUF)
    assert_same(body)


def test_messages_built_in_python_decode_as_their_bytes() -> None:
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=RESOURCES[1], scope_spans=[ScopeSpans(spans=[GOOD] * 3)])
        ]
    )
    walked = decode.decode_traces(request)
    expected = reference(request.SerializeToString())
    assert walked.tables["spans"].equals(expected.tables["spans"])
    assert walked.tables["spans"].num_rows == 3
