"""Trace and span ids: the integer halves the store keeps, and the hex text users see."""

from __future__ import annotations

from stethoscope.errors import UsageError


def trace_hex(hi: int, lo: int) -> str:
    """The 32-digit lowercase hex form of a trace id."""
    return f"{hi:016x}{lo:016x}"


def span_hex(span_id: int) -> str:
    """The 16-digit hex form of a span id, or '' for an absent one (0)."""
    return f"{span_id:016x}" if span_id else ""


def parse_trace_id(text: str) -> tuple[int, int]:
    """Split a 32-digit hex trace id into its (hi, lo) UInt64 halves."""
    cleaned = text.strip().lower()
    if len(cleaned) != 32:
        raise UsageError(f"trace id must be 32 hex digits, got {len(cleaned)}: {text!r}")
    try:
        value = int(cleaned, 16)
    except ValueError:
        raise UsageError(f"trace id is not hex: {text!r}") from None
    return value >> 64, value & 0xFFFF_FFFF_FFFF_FFFF
