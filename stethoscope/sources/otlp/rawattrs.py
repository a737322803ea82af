"""Span and log attributes parsed as raw protobuf bytes, then turned into columns with arrays.

Reading attributes through protobuf message objects costs about a microsecond per attribute
(a KeyValue, an AnyValue, a `WhichOneof` and a str per value, all Python objects), which was
two thirds of decoding a span. Here the requests are parsed with a copy of the OTLP schema in
which the `attributes` of spans, span events, span links and log records are `repeated bytes`:
the wire format of a length-delimited message and of bytes is the same, so each attribute
arrives as its serialized KeyValue. The common shapes (a short key with a string, bool, int or
double value) are then read for all attributes of a request at once with numpy; any other
shape (arrays, key-value lists, bytes, unusual encodings) is parsed as a KeyValue message one
by one, so every valid input gives the same columns as message-by-message decoding would.

Log record bodies are AnyValues without a key: `RawValues` reads them in place the same way,
and parses the other shapes as the bodies of records in a request of their own, so that
protobuf's nesting limit (counted from the request) refuses exactly what a full parse refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import accumulate, chain
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from stethoscope.model.codes import ValueType
from stethoscope.model.schema import ATTRIBUTE
from stethoscope.sources.otlp.columns import encode_values
from stethoscope.sources.otlp.wire import strings_at, varints

__all__ = [
    "RawAttributes",
    "RawValues",
    "RequestParser",
    "as_raw",
    "full_request",
    "parsed_bodies",
    "raw_request_type",
]

# Records whose `attributes` stay bytes; resources and scopes are few and keep their messages.
_RAW_OWNERS = {name: "attributes" for name in ("Span", "Event", "Link", "LogRecord")}
_KEY_TAG = 0x0A  # KeyValue.key: field 1, length-delimited
_VALUE_TAG = 0x12  # KeyValue.value: field 2, length-delimited
_STRING_TAG = 0x0A  # AnyValue.string_value: field 1, length-delimited
_BOOL_TAG = 0x10  # AnyValue.bool_value: field 2, varint
_INT_TAG = 0x18  # AnyValue.int_value: field 3, varint
_DOUBLE_TAG = 0x21  # AnyValue.double_value: field 4, fixed64
# Request.resource_logs, ResourceLogs.scope_logs, ScopeLogs.log_records, LogRecord.body
_RESOURCE_LOGS, _SCOPE_LOGS, _LOG_RECORDS, _BODY = 1, 2, 2, 5
_MAX_VARINT = 10
# Options made once: `Array.cast` builds them on every call, which costs more than the cast.
_TO_STRING = pc.CastOptions.safe(pa.string())
_PAD = bytes(_MAX_VARINT + 8)  # reads past an item's end land here, never outside the buffer


def _raw_pool(raw_owners: dict[str, str]) -> descriptor_pool.DescriptorPool:
    """A pool of the OTLP trace and logs services with these (message, field) made raw bytes."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: Any) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        _raw_fields(proto.message_type, raw_owners)
        pool.Add(proto)
        added.add(file.name)

    add(trace_service_pb2.DESCRIPTOR)
    add(logs_service_pb2.DESCRIPTOR)
    return pool


def _raw_fields(messages: Any, raw_owners: dict[str, str]) -> None:
    for message in messages:
        for field in message.field:
            if raw_owners.get(message.name) == field.name:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                field.ClearField("type_name")
        _raw_fields(message.nested_type, raw_owners)


def _request_types(raw_owners: dict[str, str]) -> dict[str, type[Message]]:
    pool = _raw_pool(raw_owners)
    return {
        signal: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
        for signal, name in (
            ("traces", "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"),
            ("logs", "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest"),
        )
    }


# Requests whose records' `attributes` are raw.
_RAW_ATTRIBUTE_TYPES = _request_types(_RAW_OWNERS)
# Requests whose spans or log records are raw: the decoders walk them themselves (wire.py).
_RAW_TYPES = {
    "traces": _request_types({"ScopeSpans": "spans"})["traces"],
    "logs": _request_types({"ScopeLogs": "log_records"})["logs"],
}


class RequestParser(Protocol):
    """What parses a request body: a message class, or `_RawRecordParser`."""

    def FromString(self, data: bytes | bytearray, /) -> Message:  # noqa: N802 (protobuf's name)
        """The request in `data`; DecodeError when it is not one."""


class _RawRecordParser:
    """Parses requests with raw records, failing exactly as a full parse would.

    Records are parsed later; when the rest of the body is malformed too, the error protobuf
    reports (corrupt wire format, bad UTF-8, too deep) must still be the first one in the body.
    """

    def __init__(self, signal: str) -> None:
        self.signal = signal

    def FromString(self, data: bytes | bytearray, /) -> Message:  # noqa: N802 (protobuf's name)
        """The request with raw records; the full parse's DecodeError when it is malformed."""
        try:
            return _RAW_TYPES[self.signal].FromString(data)
        except (DecodeError, RecursionError):
            full_request(data, self.signal)  # raises the error a full parse meets first
            raise


_PARSERS: dict[str, RequestParser] = {signal: _RawRecordParser(signal) for signal in _RAW_TYPES}


def raw_request_type(signal: str) -> RequestParser | None:
    """What parses `signal` requests with raw records (None: metrics keep their messages)."""
    return _PARSERS.get(signal)


def full_request(data: bytes | bytearray, signal: str = "traces") -> Any:
    """A request with every record parsed (raw attributes); DecodeError when malformed."""
    return _RAW_ATTRIBUTE_TYPES[signal].FromString(data)


def as_raw(signal: str, request: Message) -> Any:
    """The request with raw records (re-encoded when it was built from other classes)."""
    raw_type = _RAW_TYPES[signal]
    if isinstance(request, raw_type):
        return request
    return raw_type.FromString(request.SerializeToString())


def parsed_bodies(bodies: list[bytes]) -> list[Any] | None:
    """Serialized log record bodies (AnyValues) as messages; None when one is malformed.

    Protobuf's nesting limit counts from the request, so the bodies are parsed as the records
    of a request of their own: one nested too deeply fails here as it fails in a full parse.
    """
    records = b"".join(_delimited(_LOG_RECORDS, _delimited(_BODY, body)) for body in bodies)
    request = _delimited(_RESOURCE_LOGS, _delimited(_SCOPE_LOGS, records))
    try:
        parsed = full_request(request, "logs")
    except (DecodeError, RecursionError):
        return None
    return [record.body for record in parsed.resource_logs[0].scope_logs[0].log_records]


def _delimited(number: int, data: bytes) -> bytes:
    """A length-delimited field (number < 16: its tag is one byte)."""
    return bytes([(number << 3) | 2]) + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class _ValueReader:
    """AnyValues of one buffer as (ValueType, text), as `columns.encode_values` gives them.

    The common shapes (a string, bool, int or double, or nothing) are read in place for all
    values at once with numpy, the others taken from parsed messages. A value's text is a piece
    of the buffer, or of the texts made here, placed after it.
    """

    def _start(self, buffer: np.ndarray, count: int) -> None:
        self._buffer = buffer
        self.types = np.zeros(count, np.uint8)
        self._text_at = np.zeros(count, np.int64)  # where each text's UTF-8 starts ...
        self._text_len = np.zeros(count, np.int64)  # ... and how long it is
        self._side: list[bytes] = []  # texts made here, placed after the buffer
        self._side_size = 0

    def _read_values(self, ok: np.ndarray, value_at: np.ndarray, size: np.ndarray) -> np.ndarray:
        """Read the AnyValues of `size` bytes at `value_at` where `ok`; which ones were read."""
        buffer = self._buffer
        if not ok.all():
            value_at = np.where(ok, value_at, 0)  # the others may point anywhere
        value_end = value_at + size
        tag = buffer[value_at]
        empty = ok & (size == 0)  # an AnyValue with nothing set
        string = ok & ~empty & (tag == _STRING_TAG)
        text_at, text_len, ok_text = self._length(value_at + 1)
        string &= ok_text & (text_at + text_len == value_end)
        self.types[string] = ValueType.STRING
        self._text_at[string], self._text_len[string] = text_at[string], text_len[string]
        self.types[empty] = ValueType.EMPTY
        flag = buffer[value_at + 1]
        boolean = ok & (tag == _BOOL_TAG) & (size == 2) & (flag <= 1)
        if boolean.any():
            self.types[boolean] = ValueType.BOOL
            (false_at, true_at), (false_len, true_len) = self._place(
                pa.array(["false", "true"], pa.string())
            )
            self._text_at[boolean] = np.where(flag[boolean] == 1, true_at, false_at)
            self._text_len[boolean] = np.where(flag[boolean] == 1, true_len, false_len)
        integer = ok & (tag == _INT_TAG) & (size >= 2) & (size <= 1 + _MAX_VARINT)
        candidates = np.flatnonzero(integer)
        if len(candidates):  # (each step costs microseconds even on no values: skip it)
            integer[candidates] = self._varint_ends(value_at[candidates] + 1, size[candidates] - 1)
            numbers = varints(buffer, value_at[integer] + 1)[1].view(np.int64)
            texts = pc.call_function("cast", [pa.array(numbers)], _TO_STRING)
            self._set_texts(integer, ValueType.INT, texts)
        double = ok & (tag == _DOUBLE_TAG) & (size == 9)
        if double.any():
            places = (value_at[double] + 1)[:, None] + np.arange(8)
            floats = buffer[places].copy().view("<f8").ravel()
            # repr, not Arrow's cast: the text must be Python's shortest round-trip form.
            texts = pa.array([repr(x) for x in floats.tolist()], pa.string())
            self._set_texts(double, ValueType.DOUBLE, texts)
        return string | empty | boolean | integer | double

    def _read_messages(self, where: Sequence[int], values: list[Any]) -> set[int]:
        """Take the values at `where` from their messages; those nested too deeply."""
        types, texts, nested = encode_values(values)
        at = np.asarray(where, np.int64)
        self.types[at] = np.asarray(types, np.uint8)
        self._text_at[at], self._text_len[at] = self._place(pa.array(texts, pa.string()))
        return {int(at[i]) for i in nested}

    def _length(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A length prefix of one or two varint bytes at `at`: (data start, length, valid)."""
        first = self._buffer[at].astype(np.int64)
        second = self._buffer[at + 1].astype(np.int64)
        one = first < 0x80
        two = ~one & (second < 0x80)
        length = np.where(one, first, (first & 0x7F) | (second << 7))
        return at + 1 + two, length, one | two

    def _varint_ends(self, at: np.ndarray, size: np.ndarray) -> np.ndarray:
        """Whether a varint at `at` is exactly `size` bytes long."""
        last = self._buffer[at + size - 1] < 0x80
        for k in range(int(size.max()) - 1):
            inner = k < size - 1
            last &= ~inner | (self._buffer[at + np.minimum(k, size - 1)] >= 0x80)
        return last

    def _set_texts(self, where: np.ndarray, value_type: int, texts: pa.Array) -> None:
        self.types[where] = value_type
        self._text_at[where], self._text_len[where] = self._place(texts)

    def _place(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Put texts after the buffer; where each one starts and its length in bytes."""
        if not len(texts):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        data = texts.buffers()[2]
        offsets = _offsets_of(texts)
        first, last = int(offsets[0]), int(offsets[-1])
        at = offsets[:-1].astype(np.int64) + (len(self._buffer) + self._side_size - first)
        self._side.append(b"" if data is None else data.to_pybytes()[first:last])
        self._side_size += last - first
        return at, np.diff(offsets).astype(np.int64)

    def _source(self) -> np.ndarray:
        """The buffer with the texts made here after it."""
        if not self._side_size:
            return self._buffer
        return np.concatenate([self._buffer, np.frombuffer(b"".join(self._side), np.uint8)])


class RawAttributes(_ValueReader):
    """The attributes of many records, from each record's list of serialized KeyValues.

    `bad_records` are records with a value nested deeper than `MAX_VALUE_DEPTH`;
    `invalid_records` those with an attribute protobuf cannot parse (malformed, nested past its
    recursion limit, or text that is not UTF-8). Either way only that record is lost.
    """

    def __init__(self, raw_lists: Sequence[Sequence[bytes]]) -> None:
        flat: list[bytes] = list(chain.from_iterable(raw_lists))
        lengths = np.fromiter(map(len, flat), np.int64, len(flat))
        starts = np.zeros(len(flat), np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        self._read(
            np.frombuffer(b"".join(flat) + _PAD, np.uint8),
            np.fromiter(accumulate(map(len, raw_lists), initial=0), np.int64, len(raw_lists) + 1),
            starts,
            lengths,
        )

    @classmethod
    def located(
        cls, buffer: np.ndarray, offsets: np.ndarray, starts: np.ndarray, lengths: np.ndarray
    ) -> RawAttributes:
        """Serialized KeyValues already in `buffer` (which ends with at least 18 spare bytes).

        Attribute i is `lengths[i]` bytes at `starts[i]`; record r has attributes
        `offsets[r]` to `offsets[r + 1]`.
        """
        attributes = cls.__new__(cls)
        attributes._read(buffer, offsets, starts, lengths)
        return attributes

    def _read(
        self, buffer: np.ndarray, offsets: np.ndarray, starts: np.ndarray, lengths: np.ndarray
    ) -> None:
        self.offsets = offsets
        count = len(starts)
        if not count:  # spans without events or links: skip the array work
            self.types = np.zeros(0, np.uint8)
            self.keys = self.texts = pa.array([], pa.string())
            self.bad_records, self.invalid_records = set(), set()
            return
        self._start(buffer, count)
        self._key_at = np.zeros(count, np.int64)
        self._key_len = np.zeros(count, np.int64)
        ends = starts + lengths
        slow = self._read_common(starts, ends)
        bad, invalid = self._read_rest(starts, ends, slow)
        source = self._source()
        self.keys = strings_at(source, self._key_at, self._key_len)
        self.texts = strings_at(source, self._text_at, self._text_len)
        invalid |= self._not_utf8()
        self.bad_records = self._owners(bad)
        self.invalid_records = self._owners(invalid)

    def _read_common(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Read the common shapes in place; the indexes of the attributes left to parse."""
        buffer = self._buffer
        ok = (ends - starts >= 4) & (buffer[starts] == _KEY_TAG) & (buffer[starts + 1] < 0x80)
        key_at = starts + 2
        key_len = buffer[starts + 1].astype(np.int64)
        value_tag_at = key_at + key_len
        ok &= (value_tag_at < ends) & (buffer[np.minimum(value_tag_at, ends)] == _VALUE_TAG)
        value_at, value_len, ok_len = self._length(np.minimum(value_tag_at, ends) + 1)
        ok &= ok_len & (value_at + value_len == ends)
        self._key_at[ok], self._key_len[ok] = key_at[ok], key_len[ok]
        return np.flatnonzero(~self._read_values(ok, value_at, value_len))

    def _read_rest(
        self, starts: np.ndarray, ends: np.ndarray, slow: np.ndarray
    ) -> tuple[set[int], set[int]]:
        """Parse the other attributes as messages: (nested too deeply, not valid) indexes."""
        if not len(slow):
            return set(), set()
        invalid: set[int] = set()
        keys: list[str] = []
        values: list[Any] = []
        parsed: list[int] = []
        data = self._buffer
        for index, start, end in zip(
            slow.tolist(), starts[slow].tolist(), ends[slow].tolist(), strict=True
        ):
            try:
                message = KeyValue.FromString(data[start:end].tobytes())
            except (DecodeError, RecursionError):
                invalid.add(index)
                continue
            parsed.append(index)
            keys.append(message.key)
            values.append(message.value)
        where = np.asarray(parsed, np.int64)
        self._key_at[where], self._key_len[where] = self._place(pa.array(keys, pa.string()))
        return self._read_messages(parsed, values), invalid

    def _not_utf8(self) -> set[int]:
        """Attributes whose key or text is not UTF-8 (they are made empty, and reported)."""
        found: set[int] = set()
        for name in ("keys", "texts"):
            strings: pa.Array = getattr(self, name)
            try:
                strings.validate(full=True)
                continue
            except pa.ArrowInvalid:
                pass
            raw = strings.cast(pa.binary()).to_pylist()
            bad = {i for i, value in enumerate(raw) if not _is_utf8(value)}
            found |= bad
            cleaned = ["" if i in bad else value.decode() for i, value in enumerate(raw)]
            setattr(self, name, pa.array(cleaned, pa.string()))
        return found

    def _owners(self, indexes: set[int]) -> set[int]:
        if not indexes:
            return set()
        found = np.searchsorted(self.offsets, np.fromiter(indexes, np.int64), side="right") - 1
        return set(found.tolist())

    def strings_named(self, key: str) -> dict[int, str]:
        """Record index -> the first string value of attribute `key` it has."""
        # Only keys of the right length are compared: in most requests there are none.
        lengths = np.diff(_offsets_of(self.keys))
        candidates = np.flatnonzero(
            (lengths == len(key.encode())) & (self.types == ValueType.STRING)
        )
        if not len(candidates):
            return {}
        # (a str would be converted on every call, and that is slow in pyarrow 26)
        named = pc.equal(self.keys.take(candidates), pa.scalar(key, pa.string()))
        indexes = candidates[named.to_numpy(zero_copy_only=False)]
        if not len(indexes):
            return {}
        owners = np.searchsorted(self.offsets, indexes, side="right") - 1
        found: dict[int, str] = {}
        for owner, text in zip(owners.tolist(), self.texts.take(indexes).to_pylist(), strict=True):
            found.setdefault(owner, text)
        return found

    def to_arrow(self) -> pa.Array:
        """The column as a List<Struct<key, type, value>> array."""
        children = pa.StructArray.from_arrays(
            [self.keys, pa.array(self.types, pa.uint8()), self.texts], fields=list(ATTRIBUTE)
        )
        return pa.ListArray.from_arrays(pa.array(self.offsets.astype(np.int32)), children)


class RawValues(_ValueReader):
    """Single AnyValues (log record bodies) already in a buffer, read as `encode_values` would.

    `types` and `texts` as `encode_values` gives them; `nested` are the values nested deeper
    than `MAX_VALUE_DEPTH`.
    """

    nested: set[int]
    texts: pa.Array

    @classmethod
    def located(
        cls,
        buffer: np.ndarray,
        starts: np.ndarray,
        lengths: np.ndarray,
        parse: Callable[[list[bytes]], list[Any] | None],
    ) -> RawValues | None:
        """The AnyValues of `lengths[i]` bytes at `starts[i]` (-1: none, an empty value).

        The shapes not read in place are parsed by `parse` (serialized AnyValues to messages,
        None when one is malformed). None when a value is not what protobuf would accept
        (malformed, or text that is not UTF-8): the caller leaves its request to protobuf.
        `buffer` ends with at least 18 spare bytes.
        """
        values = cls()
        values._start(buffer, len(starts))
        present = starts >= 0
        slow = np.flatnonzero(present & ~values._read_values(present, starts, lengths))
        pieces = [
            buffer[at : at + size].tobytes()
            for at, size in zip(starts[slow].tolist(), lengths[slow].tolist(), strict=True)
        ]
        messages = parse(pieces) if pieces else []
        if messages is None:
            return None
        values.nested = values._read_messages(slow.tolist(), messages)
        values.texts = strings_at(values._source(), values._text_at, values._text_len)
        try:
            values.texts.validate(full=True)
        except pa.ArrowInvalid:
            return None
        return values


def _offsets_of(strings: pa.Array) -> np.ndarray:
    """The offsets (int32, one more than the strings) of a string array, without a copy."""
    buffer = strings.buffers()[1]
    if buffer is None:  # (an empty array may have none)
        return np.zeros(len(strings) + 1, np.int32)
    return np.frombuffer(buffer, np.int32)[strings.offset : strings.offset + len(strings) + 1]


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True
