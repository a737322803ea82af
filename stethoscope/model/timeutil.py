"""Times as int64 nanoseconds since the epoch, and the user-facing forms that parse to them."""

from __future__ import annotations

import datetime as dt
import re
import time

from stethoscope.errors import UsageError

NS_PER_S = 1_000_000_000
_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86400 * NS_PER_S,
    "w": 7 * 86400 * NS_PER_S,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h|d|w)\s*$")


def now_ns() -> int:
    """The current time in nanoseconds since the epoch."""
    return time.time_ns()


def parse_duration_ns(text: str) -> int:
    """'250ms', '15m', '7d' as nanoseconds."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(
            f"not a duration: {text!r} (use a number and one of: {', '.join(_UNITS_NS)})"
        )
    return int(float(match.group(1)) * _UNITS_NS[match.group(2)])


def parse_time_ns(text: str, *, now: int | None = None) -> int:
    """A point in time from ISO-8601, epoch seconds, or a duration meaning 'that long ago'."""
    value = text.strip()
    if _DURATION.match(value):
        return (now if now is not None else now_ns()) - parse_duration_ns(value)
    try:
        return int(float(value) * NS_PER_S)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"not a time: {text!r} (use ISO-8601, epoch seconds, or a duration like 15m)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp()) * NS_PER_S + parsed.microsecond * 1000


def format_ns(ns: int) -> str:
    """An ISO-8601 UTC timestamp with milliseconds, for people."""
    stamp = dt.datetime.fromtimestamp(ns / NS_PER_S, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def format_duration_ns(ns: int) -> str:
    """A short human duration: 850µs, 12.3ms, 4.56s, 3m12s."""
    if ns < 1_000_000:
        return f"{ns / 1000:.0f}µs"
    if ns < NS_PER_S:
        return f"{ns / 1_000_000:.1f}ms"
    if ns < 60 * NS_PER_S:
        return f"{ns / NS_PER_S:.2f}s"
    minutes, seconds = divmod(ns // NS_PER_S, 60)
    return f"{minutes}m{seconds:02d}s"
