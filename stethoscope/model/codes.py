"""The small integer codes stored in typed columns (no pyarrow: read paths import this)."""

from __future__ import annotations

import enum


class ValueType(enum.IntEnum):
    """How an attribute's text value restores to the OTLP AnyValue it came from."""

    EMPTY = 0
    STRING = 1
    BOOL = 2
    INT = 3
    DOUBLE = 4
    BYTES = 5  # base64
    ARRAY = 6  # JSON
    KVLIST = 7  # JSON object


class MetricType(enum.IntEnum):
    """The OTLP metric data kinds."""

    GAUGE = 1
    SUM = 2
    HISTOGRAM = 3
    EXPONENTIAL_HISTOGRAM = 4
    SUMMARY = 5
