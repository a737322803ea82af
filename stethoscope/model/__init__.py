"""Signal types as Arrow schemas, and the id and time helpers every stage shares."""

from stethoscope.model.schema import (
    ATTRIBUTES,
    LOGS,
    METRIC_POINTS,
    RESOURCES,
    SCOPES,
    SPANS,
    TABLES,
    ValueType,
)

__all__ = [
    "ATTRIBUTES",
    "LOGS",
    "METRIC_POINTS",
    "RESOURCES",
    "SCOPES",
    "SPANS",
    "TABLES",
    "ValueType",
]
