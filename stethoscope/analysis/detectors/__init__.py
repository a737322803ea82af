"""The built-in detectors; importing this package registers them."""

from stethoscope.analysis.detectors import (
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
