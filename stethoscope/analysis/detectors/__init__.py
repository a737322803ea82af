"""The built-in detectors; importing this package registers them."""

from stethoscope.analysis.detectors import errors, latency, logs

__all__ = ["errors", "latency", "logs"]
