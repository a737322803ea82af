"""Column builders that turn OTLP protobuf pieces into Arrow arrays without per-record objects.

Each builder appends plain Python scalars to flat lists and converts them to Arrow once per
request; nested lists (attributes, events, links) are offsets over flat children.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from stethoscope.model.schema import ATTRIBUTE, ValueType

MAX_VALUE_DEPTH = 32
ZERO8 = b"\x00" * 8
ZERO16 = b"\x00" * 16


class BadRecord(ValueError):
    """One record cannot be kept (bad id, absurd nesting); the rest of the request can."""


def any_to_python(value: Any, depth: int = 0) -> Any:
    """An AnyValue as plain JSON-able Python, for nested arrays and key-value lists."""
    if depth > MAX_VALUE_DEPTH:
        raise BadRecord(f"value nested deeper than {MAX_VALUE_DEPTH} levels")
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return _json_double(value.double_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "array_value":
        return [any_to_python(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_to_python(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "string_value_strindex":
        return value.string_value_strindex
    return None


def _json_double(number: float) -> float | str:
    # JSON has no NaN or infinities; keep them readable rather than invalid.
    return number if number == number and abs(number) != float("inf") else repr(number)


def encode_value(value: Any) -> tuple[int, str]:
    """An AnyValue as (ValueType, text) for the attribute and body columns."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return ValueType.STRING, value.string_value
    if kind == "int_value":
        return ValueType.INT, str(value.int_value)
    if kind == "double_value":
        return ValueType.DOUBLE, repr(value.double_value)
    if kind == "bool_value":
        return ValueType.BOOL, "true" if value.bool_value else "false"
    if kind == "bytes_value":
        return ValueType.BYTES, base64.b64encode(value.bytes_value).decode()
    if kind == "array_value":
        return ValueType.ARRAY, json.dumps(any_to_python(value), separators=(",", ":"))
    if kind == "kvlist_value":
        return ValueType.KVLIST, json.dumps(any_to_python(value), separators=(",", ":"))
    if kind == "string_value_strindex":
        return ValueType.INT, str(value.string_value_strindex)
    return ValueType.EMPTY, ""


class AttributeColumn:
    """A list-of-attributes column, one entry per record."""

    __slots__ = ("keys", "types", "values", "offsets")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.types: list[int] = []
        self.values: list[str] = []
        self.offsets: list[int] = [0]

    def add(self, key_values: Iterable[Any]) -> None:
        """Append one record's attributes (a repeated KeyValue)."""
        keys, types, values = self.keys, self.types, self.values
        for kv in key_values:
            value_type, text = encode_value(kv.value)
            keys.append(kv.key)
            types.append(value_type)
            values.append(text)
        self.offsets.append(len(keys))

    def truncate(self, records: int) -> None:
        """Keep only the first `records` records (later ones were rejected)."""
        del self.offsets[records + 1 :]
        end = self.offsets[-1]
        del self.keys[end:], self.types[end:], self.values[end:]

    def to_arrow(self) -> pa.Array:
        """The column as a List<Struct<key, type, value>> array."""
        children = pa.StructArray.from_arrays(
            [
                pa.array(self.keys, pa.string()),
                pa.array(self.types, pa.uint8()),
                pa.array(self.values, pa.string()),
            ],
            fields=list(ATTRIBUTE),
        )
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), children)


def attributes_digest(schema_url: str, column: AttributeColumn, start: int) -> int:
    """A stable 64-bit id for an attribute set (resources and scopes are stored once by it)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(schema_url.encode())
    for i in range(start, len(column.keys)):
        digest.update(b"\x1f" + column.keys[i].encode() + b"\x1e")
        digest.update(bytes([column.types[i]]) + column.values[i].encode())
    return int.from_bytes(digest.digest(), "little")


def trace_id_halves(ids: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated 16-byte trace ids as (hi, lo) UInt64 arrays, big-endian as in hex."""
    if not ids:
        empty = np.zeros(0, dtype=np.uint64)
        return empty, empty
    pairs = np.frombuffer(b"".join(ids), dtype=">u8").astype(np.uint64).reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def span_ids(ids: list[bytes]) -> np.ndarray:
    """Concatenated 8-byte span ids as a UInt64 array."""
    if not ids:
        return np.zeros(0, dtype=np.uint64)
    return np.frombuffer(b"".join(ids), dtype=">u8").astype(np.uint64)


def check_trace_id(raw: bytes, *, required: bool) -> bytes:
    """The id padded for the column, or BadRecord when its length or value is invalid."""
    if len(raw) == 16 and raw != ZERO16:
        return raw
    if not raw and not required:
        return ZERO16
    raise BadRecord(f"invalid trace id: {len(raw)} bytes, need 16 and not all zero")


def check_span_id(raw: bytes, *, required: bool) -> bytes:
    """The id padded for the column, or BadRecord when its length or value is invalid."""
    if len(raw) == 8 and (raw != ZERO8 or not required):
        return raw
    if not raw and not required:
        return ZERO8
    raise BadRecord(f"invalid span id: {len(raw)} bytes, need 8 and not all zero")


def clamp_ns(value: int) -> int:
    """A fixed64 nanosecond time clamped into int64 (years past 2262 are not real data)."""
    return value if value < 1 << 63 else (1 << 63) - 1
