"""The built-in detectors; importing this package registers them."""

from stethoscope.analysis.detectors import (
    calls,
    changes,
    clock,
    errors,
    latency,
    lifecycle,
    logs,
    mentions,
    metrics,
    peers,
    throughput,
)

__all__ = [
    "calls",
    "changes",
    "clock",
    "errors",
    "latency",
    "lifecycle",
    "logs",
    "mentions",
    "metrics",
    "peers",
    "throughput",
]
