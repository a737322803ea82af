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


MIN_PREFIX = 8
_HALF = 0xFFFF_FFFF_FFFF_FFFF


def id_prefix_ranges(prefix: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The (hi, lo) UInt64 ranges holding every trace id that starts with this hex prefix."""
    cleaned = prefix.strip().lower()
    if not MIN_PREFIX <= len(cleaned) <= 32 or any(c not in "0123456789abcdef" for c in cleaned):
        raise UsageError(f"a trace id prefix must be {MIN_PREFIX} to 32 hex digits, got {prefix!r}")
    # Padding with 0s and with fs gives the smallest and largest id with the prefix; as the
    # prefix covers whole leading digits, each half ranges independently between the two.
    low = int(cleaned.ljust(32, "0"), 16)
    high = int(cleaned.ljust(32, "f"), 16)
    return (low >> 64, high >> 64), (low & _HALF, high & _HALF)
