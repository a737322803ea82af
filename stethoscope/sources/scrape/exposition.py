"""Reading a scrape's answer: which format it is in, and its metric families.

The parsing is prometheus_client's own (text format 0.0.4 and OpenMetrics 1.0); this module only
negotiates, picks the parser from the Content-Type, and bounds what one answer may hold.
"""

from __future__ import annotations

from prometheus_client.metrics_core import Metric as Family
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from stethoscope.errors import DataError

__all__ = ["ACCEPT", "is_openmetrics", "parse_exposition"]

# What Prometheus asks for: OpenMetrics first, the text format next, anything as a last resort.
ACCEPT = (
    "application/openmetrics-text;version=1.0.0,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
_MAX_ERROR_CHARS = 200


def is_openmetrics(content_type: str) -> bool:
    """Whether a Content-Type names OpenMetrics; anything else is read as the text format."""
    return content_type.split(";", 1)[0].strip().lower() == "application/openmetrics-text"


def parse_exposition(body: bytes, content_type: str, *, max_samples: int) -> list[Family]:
    """The metric families of one answer; DataError when it is not the format it claims to be.

    A missing or unknown Content-Type is read as the text format, as Prometheus 2 did; an answer
    that is not an exposition at all (HTML, JSON) fails to parse and is reported as such.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"not UTF-8 at byte {error.start}") from None
    parse = parse_openmetrics if is_openmetrics(content_type) else parse_text
    families: list[Family] = []
    samples = 0
    try:
        for family in parse(text):
            samples += len(family.samples)
            if samples > max_samples:
                raise DataError(f"more than {max_samples} samples (the per-scrape limit)")
            families.append(family)
    except DataError:
        raise
    except Exception as error:  # the parsers raise ValueError, and worse on some garbage
        kind = "OpenMetrics" if parse is parse_openmetrics else "Prometheus text"
        raise DataError(f"not valid {kind} format: {_short(error)}") from None
    return families


def _short(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + "..."
