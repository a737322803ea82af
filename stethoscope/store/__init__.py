"""Stores: the Store protocol and its implementations (DuckDB embedded by default)."""

from stethoscope.store.base import LogQuery, MetricQuery, Store, TraceQuery, Window

__all__ = ["LogQuery", "MetricQuery", "Store", "TraceQuery", "Window"]
