"""Building OTLP protobuf records on the client side: what `steth run`, `tail` and `scrape` send.

Events follow the OpenTelemetry event convention: a log record whose `event_name` field and
`event.name` attribute both name the event, so collectors that know only one of them still see it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

__all__ = ["SEVERITY", "any_value", "key_values", "log_record"]

# The OTel severity numbers of the level names our events use.
SEVERITY = {"DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}


def any_value(value: Any) -> AnyValue:
    """An AnyValue for a Python value; anything unknown becomes its text."""
    # bool before int: bool is a subclass of int.
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return AnyValue(int_value=value)
        return AnyValue(string_value=str(value))
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes | bytearray):
        return AnyValue(bytes_value=bytes(value))
    if isinstance(value, Mapping):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    if isinstance(value, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))
    if value is None:
        return AnyValue()
    return AnyValue(string_value=str(value))


def key_values(mapping: Mapping[str, Any]) -> list[KeyValue]:
    """OTLP attributes for a mapping, keys as text."""
    return [KeyValue(key=str(key), value=any_value(value)) for key, value in mapping.items()]


def log_record(
    *,
    body: Any,
    time_ns: int | None = None,
    severity_number: int = 0,
    severity_text: str = "",
    attributes: Mapping[str, Any] | None = None,
    observed_ns: int | None = None,
    event_name: str | None = None,
    trace_id: bytes = b"",
    span_id: bytes = b"",
) -> LogRecord:
    """One log record; `time_ns` None means the time is unknown (only observed time is set)."""
    observed = observed_ns if observed_ns is not None else time.time_ns()
    attrs = dict(attributes or {})
    if event_name:
        attrs["event.name"] = event_name
    return LogRecord(
        time_unix_nano=time_ns or 0,
        observed_time_unix_nano=observed,
        severity_number=severity_number,  # type: ignore[arg-type]
        severity_text=severity_text,
        body=any_value(body),
        attributes=key_values(attrs),
        event_name=event_name or "",
        trace_id=trace_id if len(trace_id) == 16 else b"",
        span_id=span_id if len(span_id) == 8 else b"",
    )
