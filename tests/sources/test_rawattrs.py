"""Attributes read from raw KeyValue bytes give exactly the columns message decoding gives."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from stethoscope.model.codes import ValueType
from stethoscope.sources.otlp.columns import FlatAttributes, encode_values
from stethoscope.sources.otlp.rawattrs import RawAttributes, RawValues, parsed_bodies


def kv(key: str, **value: object) -> KeyValue:
    pair = KeyValue(key=key)
    if value:
        pair.value.CopyFrom(AnyValue(**value))  # type: ignore[arg-type]
    return pair


def nested(depth: int) -> AnyValue:
    value = AnyValue(string_value="bottom")
    for _ in range(depth):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    return value


VALUES = [
    kv("http.method", string_value="GET"),
    kv("empty.string", string_value=""),
    kv("unicode", string_value="zürich ☃ 東京"),
    kv("s127", string_value="x" * 127),
    kv("s128", string_value="y" * 128),
    kv("s16383", string_value="z" * 16_383),
    kv("s16384", string_value="w" * 16_384),  # a three-byte length
    kv("k" * 127, string_value="long key"),
    kv("k" * 128, string_value="longer key"),
    kv("", string_value="no key"),
    kv("no.value"),
    kv("bool.true", bool_value=True),
    kv("bool.false", bool_value=False),
    *(kv(f"int{n}", int_value=n) for n in (0, 1, 127, 128, 300, -1, -300, 2**63 - 1, -(2**63))),
    *(kv(f"double{x!r}", double_value=x) for x in (0.0, -0.0, 0.1, 1e300, -2.5e-310, 42.0)),
    kv("nan", double_value=math.nan),
    kv("inf", double_value=math.inf),
    kv("bytes", bytes_value=b"\x00\x01binary"),
    kv("array", array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="a")])),
    kv("kvlist", kvlist_value=KeyValueList(values=[kv("inner", double_value=1.5)])),
]


def columns(attributes: FlatAttributes | RawAttributes) -> list[tuple[str, int, str]]:
    keys, types, texts = attributes.to_arrow().flatten().flatten()
    return list(zip(keys.to_pylist(), types.to_pylist(), texts.to_pylist(), strict=True))


def raw(records: list[list[KeyValue]]) -> RawAttributes:
    return RawAttributes([[pair.SerializeToString() for pair in record] for record in records])


@pytest.mark.parametrize("seed", range(5))
def test_every_value_kind_reads_as_message_decoding_reads_it(seed: int) -> None:
    rng = random.Random(seed)
    records = [rng.sample(VALUES, rng.randint(0, 6)) for _ in range(300)]

    expected, found = FlatAttributes(records), raw(records)

    assert columns(found) == columns(expected)
    assert found.to_arrow().offsets.to_pylist() == expected.to_arrow().offsets.to_pylist()
    assert found.bad_records == found.invalid_records == set()


def test_an_empty_request_has_empty_columns() -> None:
    assert columns(raw([])) == []
    assert columns(raw([[], []])) == []


def test_a_value_nested_too_deeply_marks_its_record_only() -> None:
    deep = KeyValue(key="deep", value=nested(40))
    shallow = KeyValue(key="shallow", value=nested(3))

    found = raw([[VALUES[0]], [VALUES[1], deep], [shallow]])

    assert found.bad_records == {1}
    assert found.invalid_records == set()


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param(b"\x0a\x04us\xffr\x12\x05\x0a\x03abc", id="key-not-utf8"),
        pytest.param(b"\x0a\x04user\x12\x04\x0a\x02\xff\xfe", id="value-not-utf8"),
        pytest.param(b"\x0a\x0atruncated", id="truncated"),
        pytest.param(b"\x0a\x01k\x12\x03\x18\xff\xff", id="unterminated-varint"),
    ],
)
def test_an_unreadable_attribute_marks_its_record_only(pair: bytes) -> None:
    good = VALUES[0].SerializeToString()

    found = RawAttributes([[good], [good, pair], [good]])

    assert found.invalid_records == {1}
    assert columns(found)[0] == ("http.method", ValueType.STRING, "GET")
    assert columns(found)[-1] == ("http.method", ValueType.STRING, "GET")


def test_strings_named_gives_the_first_string_of_each_record() -> None:
    records = [
        [kv("event.name", string_value="process.start")],
        [kv("other", string_value="x")],
        [kv("event.name", int_value=3), kv("event.name", string_value="late")],
        [kv("event.name", string_value="a"), kv("event.name", string_value="b")],
    ]

    assert raw(records).strings_named("event.name") == {0: "process.start", 2: "late", 3: "a"}


def located_values(serialized: list[bytes | None]) -> RawValues | None:
    """RawValues of these serialized AnyValues (None: no value) laid out in one buffer."""
    data = b"".join(value or b"" for value in serialized)
    lengths = np.array([len(value or b"") for value in serialized], np.int64)
    starts = np.cumsum(lengths) - lengths
    starts[[value is None for value in serialized]] = -1
    buffer = np.frombuffer(data + bytes(32), np.uint8)
    return RawValues.located(buffer, starts, lengths, parsed_bodies)


def test_values_without_keys_read_as_message_decoding_reads_them() -> None:
    values = [pair.value for pair in VALUES] + [nested(40), AnyValue()]
    serialized: list[bytes | None] = [value.SerializeToString() for value in values] + [None]

    found = located_values(serialized)

    types, texts, too_deep = encode_values([*values, AnyValue()])
    assert found is not None
    assert found.types.tolist() == types
    assert found.texts.to_pylist() == texts
    assert found.nested == too_deep == {len(VALUES)}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"\x0a\x02\xff\xfe", id="string-not-utf8"),
        pytest.param(b"\x0a\x0atruncated", id="truncated"),
        pytest.param(b"\x32\x05\x0a\x03\x0a\x01\xff", id="kvlist-key-not-utf8"),
    ],
)
def test_a_value_protobuf_would_refuse_fails_them_all(value: bytes) -> None:
    good = AnyValue(string_value="fine").SerializeToString()

    assert located_values([good, value, good]) is None
