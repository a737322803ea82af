"""Log records walked on the wire decode exactly as log records read from their messages.

`decode_logs` reads records as raw bytes with numpy (`wire.py`), bodies and attributes in place
(`rawattrs.py`), and leaves anything unusual to protobuf. The reference is the message decoder
it falls back to, fed with a full parse of the same body, so that any difference (a value, a
rejection, a reason, a refused body) shows. Records are written byte by byte, as in
test_decode_spans.py, to reach encodings no SDK writes. Event names come from the `event_name`
field, else the `event.name` attribute.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest import mock

import pyarrow as pa
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from stethoscope.errors import Rejected
from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp import decode
from stethoscope.sources.otlp.codec import decode_request
from stethoscope.sources.otlp.decode import decode_logs
from stethoscope.sources.otlp.rawattrs import full_request
from stethoscope.sources.records import key_values
from tests.sources.test_decode_spans import (
    END_GROUP,
    FIXED32,
    FIXED64,
    RESOURCES,
    START_GROUP,
    VARINT,
    attribute,
    deep_value,
    delimited,
    field,
    ids,
    message,
    padding,
    scalar,
    texts,
    varint,
)

PROTOBUF = "application/x-protobuf"
NOW = 1_700_000_000_123_456_789  # what the clock says while decoding, for both decoders


def reference(body: bytes, imported: bool) -> SignalBatch:
    """What decoding every record from its message gives (Rejected as the full parse fails)."""
    try:
        request = full_request(body, "logs")
    except (DecodeError, RecursionError) as error:
        raise Rejected(f"body is not a valid ExportLogsServiceRequest: {error}") from None
    return decode._decode_log_messages(request, imported)


def outcome(decoder: Any, body: bytes) -> tuple[Any, ...]:
    # A record without an observed time gets the clock's time: the same for both decoders.
    with mock.patch.object(decode, "time", SimpleNamespace(time_ns=lambda: NOW)):
        try:
            batch = decoder(body)
        except Rejected as error:
            return ("rejected", str(error), error.status)
    tables = {name: (table.schema, table.to_pydict()) for name, table in batch.tables.items()}
    assert all(isinstance(table, pa.Table) for table in batch.tables.values())
    return ("kept", tables, batch.accepted, batch.rejected, batch.reasons)


def assert_same(body: bytes, imported: bool = False) -> None:
    walked = outcome(lambda data: decode_request("logs", data, PROTOBUF, imported=imported), body)
    assert walked == outcome(lambda data: reference(data, imported), body)


# -- bodies: every AnyValue kind, and the odd ones ----------------------------------------------


def string_value(data: bytes, length_padding: int = 0) -> bytes:
    return delimited(1, data, length_padding)


def nested_array(depth: int) -> bytes:
    value = string_value(b"bottom")
    for _ in range(depth):
        value = delimited(5, delimited(1, value))
    return value


def nested_kvlist(depth: int) -> bytes:
    value = string_value(b"bottom")
    for _ in range(depth):
        value = delimited(6, delimited(1, delimited(1, b"k") + delimited(2, value)))
    return value


# Array bodies are rejected alone past 32 levels, and with the whole request (protobuf's
# nesting limit, counted from the request) past 48; key-value lists already past 32.
DEEP = {
    f"{kind} nested {depth} deep": nest(depth)
    for kind, nest, depths in (
        ("array", nested_array, (32, 33, 48, 49)),
        ("kvlist", nested_kvlist, (32, 33)),
    )
    for depth in depths
}
BODIES = {
    "string": AnyValue(string_value="GET /api/cart 200 in 12 ms").SerializeToString(),
    "empty string": string_value(b""),
    "unicode string": AnyValue(string_value="zürich ☃ 東京").SerializeToString(),
    "two-line string": AnyValue(string_value="first line\n\tsecond").SerializeToString(),
    "127 bytes": string_value(b"x" * 127),
    "128 bytes": string_value(b"y" * 128),
    "16383 bytes": string_value(b"z" * 16_383),
    "16384 bytes (a three-byte length)": string_value(b"w" * 16_384),
    "int": AnyValue(int_value=-300).SerializeToString(),
    "huge int": AnyValue(int_value=2**63 - 1).SerializeToString(),
    "bool": AnyValue(bool_value=True).SerializeToString(),
    "false": field(2, VARINT, b"\x00"),
    "double": AnyValue(double_value=42.0).SerializeToString(),
    "nan": AnyValue(double_value=float("nan")).SerializeToString(),
    "bytes": AnyValue(bytes_value=b"\x00\x01binary").SerializeToString(),
    "array": AnyValue(
        array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="a")])
    ).SerializeToString(),
    "kvlist": AnyValue(
        kvlist_value=KeyValueList(
            values=[KeyValue(key="inner", value=AnyValue(bytes_value=b"\xff"))]
        )
    ).SerializeToString(),
    "strindex": field(8, VARINT, varint(7)),
    "nothing set": b"",
    "not UTF-8": string_value(b"\xff\xfe"),
    "padded length": string_value(b"padded", 3),
    "string then int (last wins)": string_value(b"s") + field(3, VARINT, b"\x05"),
    "string twice": string_value(b"a") + string_value(b"b"),
    "unknown field": string_value(b"s") + delimited(15, b"future"),
    "truncated": string_value(b"truncated")[:-2],
    "group": field(9, START_GROUP, b"") + field(9, END_GROUP, b""),
    **DEEP,
}
bodies = st.tuples(
    st.integers(0, 99),
    st.sampled_from(list(BODIES.values())),
    st.sampled_from(list(BODIES.values())[:8]),
).map(lambda drawn: drawn[1] if drawn[0] < 15 else drawn[2])  # odd ones now and then
times = st.one_of(
    st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1)
).map(lambda value: value.to_bytes(8, "little"))
event_attribute = st.sampled_from(
    [
        KeyValue(key="event.name", value=AnyValue(string_value="probe.state")),
        KeyValue(key="event.name", value=AnyValue(int_value=3)),
        KeyValue(key="event.namE", value=AnyValue(string_value="not it")),
    ]
).map(lambda pair: pair.SerializeToString())
attributes = st.one_of(attribute, attribute, event_attribute)

LOG = {
    1: times.map(lambda raw: field(1, FIXED64, raw)),
    2: scalar(2, VARINT),
    3: st.tuples(texts, padding).map(lambda pair: delimited(3, pair[0], pair[1] % 4)),
    5: bodies.map(lambda body: delimited(5, body)),
    6: st.lists(attributes, max_size=4).map(lambda xs: b"".join(delimited(6, x) for x in xs)),
    7: scalar(7, VARINT),
    8: scalar(8, FIXED32),
    9: ids(16).map(lambda raw: delimited(9, raw)),
    10: ids(8).map(lambda raw: delimited(10, raw)),
    11: times.map(lambda raw: field(11, FIXED64, raw)),
    12: texts.map(lambda text: delimited(12, text)),
}


@st.composite
def requests(draw: Any) -> bytes:
    """An ExportLogsServiceRequest body, of log records written byte by byte."""
    groups = []
    for _ in range(draw(st.integers(0, 2))):
        scopes = []
        for _ in range(draw(st.integers(0, 2))):
            records = draw(st.lists(message(LOG, 12), max_size=5))
            scope = delimited(1, delimited(1, draw(st.sampled_from([b"a", b"b"]))))
            scopes.append(scope + b"".join(delimited(2, record) for record in records))
        resource = draw(st.sampled_from(RESOURCES)).SerializeToString()
        groups.append(delimited(1, resource) + b"".join(delimited(2, s) for s in scopes))
    return b"".join(delimited(1, group) for group in groups)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(requests(), st.booleans())
def test_walked_log_records_decode_as_log_messages(body: bytes, imported: bool) -> None:
    assert_same(body, imported)


# -- named cases -------------------------------------------------------------------------------

GOOD = LogRecord(
    time_unix_nano=10,
    observed_time_unix_nano=25,
    severity_number=9,  # type: ignore[arg-type]
    severity_text="INFO",
    body=AnyValue(string_value="user 42 logged in from 10.0.0.1"),
    attributes=[pair for pair in key_values({"logger.name": "auth", "thread.id": 7})],
    flags=1,
    trace_id=b"\x01" * 16,
    span_id=b"\x02" * 8,
)


def body_of(*records: bytes) -> bytes:
    scope = b"".join(delimited(2, record) for record in records)
    group = delimited(1, RESOURCES[0].SerializeToString()) + delimited(2, scope)
    return delimited(1, group)


CASES = {
    "ordinary record": GOOD.SerializeToString(),
    "empty record": b"",
    "fields in reverse order": b"".join(
        reversed([field(1, FIXED64, bytes(8)), delimited(3, b"WARN"), delimited(5, b"\x0a\x01x")])
    ),
    "time 0 (the observed time)": LogRecord(observed_time_unix_nano=7).SerializeToString(),
    "no times at all": LogRecord(severity_text="INFO").SerializeToString(),
    "no body": LogRecord(severity_number=17).SerializeToString(),  # type: ignore[arg-type]
    **{f"body: {name}": delimited(5, body) for name, body in BODIES.items()},
    "body twice (merged)": GOOD.SerializeToString() + delimited(5, field(3, VARINT, b"\x01")),
    "severity text twice (last wins)": GOOD.SerializeToString() + delimited(3, b"WARN"),
    "severity text not UTF-8": GOOD.SerializeToString() + delimited(3, b"\xff"),
    "event name not UTF-8": delimited(12, b"\xc3"),
    "event name": LogRecord(event_name="process.start").SerializeToString(),
    "severity as a ten-byte varint": GOOD.SerializeToString() + field(2, VARINT, varint(-1)),
    "dropped count past 32 bits": field(7, VARINT, varint(2**32 + 5)),
    "padded length": delimited(3, b"INFO", 3),
    "trace id of 15 bytes": delimited(9, b"\x01" * 15),
    "all-zero span id": delimited(10, bytes(8)),
    "empty ids (none)": delimited(9, b"") + delimited(10, b""),
    "unknown field": GOOD.SerializeToString() + delimited(99, b"future"),
    "reserved field 4": GOOD.SerializeToString() + field(4, VARINT, b"\x01"),
    "truncated": GOOD.SerializeToString()[:-3],
    "group": GOOD.SerializeToString() + field(7, START_GROUP, b"") + field(7, END_GROUP, b""),
    "attribute nested too deeply": delimited(6, deep_value(40).SerializeToString()),
    "attribute not UTF-8": delimited(6, b"\x0a\x01k\x12\x03\x0a\x01\xff"),
}


@pytest.mark.parametrize("record", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("imported", [False, True], ids=["received", "imported"])
def test_odd_log_records_decode_as_log_messages(record: bytes, imported: bool) -> None:
    assert_same(body_of(GOOD.SerializeToString(), record, GOOD.SerializeToString()), imported)


def test_a_body_malformed_outside_its_records_fails_as_a_full_parse_does() -> None:
    bad_utf8 = delimited(3, b"\xff")  # a record error first, then a corrupt resource
    body = body_of(bad_utf8) + delimited(1, delimited(1, b"\x0a\x05ab"))
    with pytest.raises(Rejected, match="bad UTF-8"):
        decode_request("logs", body, PROTOBUF)
    assert_same(body)


def test_messages_built_in_python_decode_as_their_bytes() -> None:
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=RESOURCES[1], scope_logs=[ScopeLogs(log_records=[GOOD] * 3)])
        ]
    )
    walked = decode_logs(request, imported=True)
    expected = reference(request.SerializeToString(), True)
    assert walked.tables["logs"].equals(expected.tables["logs"])
    assert walked.tables["logs"].num_rows == 3


def record(event_name: str = "", attributes: dict[str, Any] | None = None) -> LogRecord:
    return LogRecord(event_name=event_name, attributes=key_values(attributes or {}))


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([record("process.start")], ["process.start"]),
        ([record("a", {"event.name": "b"})], ["a"]),
        ([record(attributes={"event.name": "probe.state"})], ["probe.state"]),
        ([record(attributes={"event.name": 3})], [""]),
        ([record(attributes={"other": "x"})], [""]),
        (
            [
                record(attributes={"a": "1"}),
                record(attributes={"b": "2", "event.name": "second"}),
                record(),
            ],
            ["", "second", ""],
        ),
    ],
    ids=[
        "field",
        "field wins over attribute",
        "attribute only",
        "attribute not a string",
        "neither",
        "attribute on the middle record",
    ],
)
def test_event_name(records: list[LogRecord], expected: list[str]) -> None:
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.extend(records)
    batch = decode_logs(request)
    assert batch.tables["logs"].column("event_name").to_pylist() == expected
    assert batch.tables["logs"].column("template_id").null_count == len(records)
