"""Generic header detection: split a raw log line into timestamp, level, component and message.

Only generic shapes are recognised, the ones that logging libraries and daemons everywhere
print: ISO-8601 and its relatives (``2015-10-18 18:01:47,978``, ``17/06/09 20:10:40``,
``081109 203615``, ``20171223-22:15:29:606``), syslog (``Jun 14 15:16:01``), bracketed
timestamps (``[Sun Dec 04 04:47:44 2005]``), epoch seconds; then, in any order, level words
(``INFO``, ``[error]``, ``W``, glog's ``E0102``), process and thread ids, bracketed thread
names, a host name, and a component ending in a colon (``dfs.DataNode$PacketResponder:``,
``sshd[24200]:``). Nothing here is specific to one system.

`timestamp_ns` turns the timestamp text found (or any ISO-8601, Apache or epoch text) into
epoch nanoseconds; `epoch_ns` does the same for epoch numbers in any unit.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Header", "epoch_ns", "split_header", "timestamp_ns"]

_TIME = r"\d{1,2}:\d{1,2}(?::\d{1,2})?(?:[.,:]\d{1,9})?"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_ZONE = r"(?:\s?(?:Z|UTC|GMT|[+-]\d{2}:?\d{2}))?"
_TIMESTAMP = re.compile(
    r"(?:"
    # ISO-8601 and the numeric dates of most libraries: 2015-10-18 18:01:47,978, 17/06/09 ...
    rf"\d{{2,4}}[-/.]\d{{1,2}}[-/.]\d{{1,4}}(?:[T\s_-]+{_TIME}|[-.]\d{{2}}\.\d{{2}}\.\d{{2}}(?:\.\d+)?)"
    rf"{_ZONE}"
    # month-day without year (03-17 16:13:38.811) and compact forms (081109 203615, 20171223-22:15)
    rf"|\d{{2}}-\d{{2}}\s+{_TIME}"
    r"|\d{6}\s\d{6}"
    rf"|\d{{8}}[-\sT]{_TIME}"
    # syslog and C's ctime: Jun 14 15:16:01, Sun Dec 04 04:47:44 2005
    rf"|(?:{_DAY},?\s+)?{_MONTH}\s+\d{{1,2}},?\s+(?:\d{{4}}\s+)?{_TIME}(?:\s+\d{{4}})?{_ZONE}"
    r")"
)
_BRACKETED_TIME = re.compile(r"\[([^\[\]]*\d{1,2}:\d{2}:\d{2}[^\[\]]*)\]")
_EPOCH = re.compile(r"1\d{9}(?:\.\d+)?(?=\s)")
_LEVEL = re.compile(
    r"[\[<]?(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|FATAL|CRIT|"
    r"CRITICAL|ALERT|EMERG|Trace|Debug|Info|Notice|Warn|Warning|Error|Fatal|Critical|"
    r"trace|debug|info|notice|warn|warning|error|fatal|critical|"
    r"[VDIWEF](?=\s)|[IWEF]\d{4}(?=\s))[\]>:]?(?=\s|$)"
)
_PID = re.compile(r"\d{1,10}(?=[\s|])")
_BRACKETED = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\](?=\s)")
_SEPARATOR = re.compile(r"[-|:,]+(?=\s)|\s+|\|")
_COMPONENT = re.compile(
    r"(?P<component>[A-Za-z_][\w.$/@()\-]{0,80}(?:\[\d+\]|:\d+)?)(?::(?=\s|$)|(?=\|))"
)
# A logger name after a level, as log4j and Python print it: nova.compute.manager
_LOGGER = re.compile(r"(?P<component>[A-Za-z_][\w$]*(?:\.[\w$]+)+)(?=\s)")
# "program - message", optionally with one short tag: chrome.exe *64 - open ...
_DASHED = re.compile(r"(?P<component>[^\s\[\]]{1,64})(?: [^\s\-]{1,8})? - (?=\S)")
_HOST = re.compile(r"[A-Za-z][\w.\-]{0,62}(?=\s)")
_LEVELS = {
    "V": "TRACE",
    "D": "DEBUG",
    "I": "INFO",
    "W": "WARN",
    "E": "ERROR",
    "F": "FATAL",
    "WARNING": "WARN",
    "ERR": "ERROR",
    "CRIT": "CRITICAL",
}
_MAX_HEADER_PIECES = 6


@dataclass(frozen=True)
class Header:
    """What the start of a line says: each part None when not found; message the rest."""

    timestamp: str | None
    level: str | None
    component: str | None
    message: str


def split_header(line: str) -> Header:
    """Split one raw line into its timestamp, level, component and message text."""
    line = line.rstrip("\r\n")
    timestamp, pos = _find_timestamp(line)
    level: str | None = None
    component: str | None = None
    for piece in range(_MAX_HEADER_PIECES):
        pos = _skip_separators(line, pos)
        found = _COMPONENT.match(line, pos)
        if found and component is None and (timestamp or level):
            component = found.group("component")
            pos = found.end()
            if line.startswith("|", pos):  # pipe-separated fields may follow
                continue
            break
        found = _LOGGER.match(line, pos) if level and component is None else None
        if found:
            component = found.group("component")
            pos = found.end()
            continue
        found = _LEVEL.match(line, pos) if level is None else None
        if found:
            level = _normalise_level(found.group("level"))
            pos = found.end()
            continue
        found = _PID.match(line, pos) or _BRACKETED.match(line, pos)
        if found and (timestamp or level):
            pos = found.end()
            continue
        found = _HOST.match(line, pos)
        if found and timestamp and piece == 0 and _is_host_then_component(line, found.end()):
            pos = found.end()
            continue
        found = _DASHED.match(line, pos) if timestamp and piece == 0 else None
        if found:
            component = found.group("component")
            pos = found.end()
        break
    return Header(timestamp, level, component, line[pos:].strip())


def _find_timestamp(line: str) -> tuple[str | None, int]:
    """A timestamp at the start (or after one leading token) and where the rest begins."""
    start = _skip_separators(line, 0)
    for candidate in (start, _after_first_token(line, start)):
        if candidate < 0:
            continue
        found = _TIMESTAMP.match(line, candidate) or _BRACKETED_TIME.match(line, candidate)
        if found:
            return found.group(0).strip("[]"), found.end()
    found = _EPOCH.match(line, start)
    if found:
        return found.group(0), found.end()
    return None, 0


def _after_first_token(line: str, start: int) -> int:
    end = line.find(" ", start)
    return -1 if end < 0 or end - start > 64 else end + 1


def _skip_separators(line: str, pos: int) -> int:
    while True:
        found = _SEPARATOR.match(line, pos)
        if not found or found.end() == pos:
            return pos
        pos = found.end()


def _is_host_then_component(line: str, pos: int) -> bool:
    """A host name counts only when a component follows it, as in syslog."""
    return _COMPONENT.match(line, _skip_separators(line, pos)) is not None


def _normalise_level(word: str) -> str:
    upper = word.upper()
    if len(upper) == 5 and upper[0] in "IWEF" and upper[1:].isdigit():
        upper = upper[0]
    return _LEVELS.get(upper, upper)


# Turning a timestamp's text into epoch nanoseconds. Each shape is tried by its first character
# so that a line pays for one or two regexes, not all of them.
_ZONE_GROUP = r"\s?(?P<zone>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
_FRACTION = r"(?:[.,:](?P<frac>\d{1,9}))?"
_CLOCK = rf"(?P<h>\d{{1,2}}):(?P<mi>\d{{1,2}})(?::(?P<s>\d{{1,2}}))?{_FRACTION}"
_NUMERIC_DATE = re.compile(
    # 2024-01-02T15:04:05.123Z, 2024/01/02 15:04:05, 17/06/09 20:10:40, 02.01.2024 15:04
    rf"(?P<a>\d{{2,4}})[-/.](?P<b>\d{{1,2}})[-/.](?P<c>\d{{2,4}})[T\s_-]+{_CLOCK}{_ZONE_GROUP}"
    # 20171223-22:15:29:606 and 081109 203615
    rf"|(?P<ymd>\d{{8}})[-\sT]{_CLOCK.replace('P<', 'P<c_')}"
    r"|(?P<yymmdd>\d{6})\s(?P<hhmmss>\d{6})"
)
_MONTH_DAY = re.compile(rf"(?P<mo>\d{{2}})-(?P<d>\d{{2}})\s+{_CLOCK}")  # 03-17 16:13:38.811
_NAMED_MONTH = re.compile(
    # Jun 14 15:16:01, Sun Dec 04 04:47:44 2005, Jan  2 15:04:05 2024 +0100
    rf"(?:{_DAY},?\s+)?(?P<mon>{_MONTH})\s+(?P<d>\d{{1,2}}),?\s+(?:(?P<y1>\d{{4}})\s+)?"
    rf"{_CLOCK}(?:\s+(?P<y2>\d{{4}}))?{_ZONE_GROUP}"
)
# Apache's 10/Oct/2000:13:55:36 -0700 and HTTP's Tue, 02 Jan 2024 15:04:05 GMT
_DAY_FIRST = re.compile(
    rf"(?:{_DAY},?\s+)?(?P<d>\d{{1,2}})[/\s-](?P<mon>{_MONTH})[/\s-](?P<y>\d{{4}})[:\s]"
    rf"{_CLOCK}{_ZONE_GROUP}"
)
_ISO_8601 = re.compile(
    r"(2\d{3}-[01]\d-[0-3]\d[T ][0-2]\d:[0-5]\d:[0-6]\d)(?:[.,](\d{1,9}))?"
    r"\s?(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
)
_EPOCH_TEXT = re.compile(r"(?P<int>\d{9,19})(?:\.(?P<frac>\d{1,9}))?")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_NS = 1_000_000_000
_MAX_NS = 2**63 - 1
# Distinct civil seconds remembered by the epoch conversion (one line per second shares one).
_EPOCH_CACHE_SIZE = 4096
# A year-less timestamp further than this ahead of now belongs to the previous year.
_FUTURE_SLACK_NS = 2 * 86_400 * _NS


def timestamp_ns(text: str, *, now_ns: int | None = None) -> int | None:
    """Epoch nanoseconds (UTC) of a timestamp at the start of `text`, or None if there is none.

    Understands the shapes `split_header` finds plus ISO-8601, Apache's ``10/Oct/2000:13:55:36
    -0700`` and epoch seconds/milliseconds/microseconds/nanoseconds. A timestamp without a zone
    is local time (the program printed it on this machine); one without a year gets the year
    that puts it closest before `now_ns`.
    """
    text = text.lstrip(" [")
    first = text[:1]
    try:
        found = _ISO_8601.match(text) if first == "2" else None
        if found:  # what most programs print, on a fast path: one match, one cache lookup
            frac, zone = found.group(2, 3)
            nanos = int(frac.ljust(9, "0")) if frac else 0
            return _iso_seconds(found.group(1), zone) * _NS + nanos
        if first.isdigit():
            return _numeric_ns(text, now_ns)
        if first.isalpha():
            found = _NAMED_MONTH.match(text)
            if found:
                return _named_ns(found, found.group("y1") or found.group("y2"), now_ns)
            found = _DAY_FIRST.match(text)
            if found:
                return _named_ns(found, found.group("y"), now_ns)
    except (ValueError, OverflowError):
        pass  # a shape that matched with impossible numbers (month 13, hour 99)
    return None


def epoch_ns(value: float, *, fraction: str = "") -> int | None:
    """Nanoseconds for an epoch number in s, ms, us or ns, told apart by magnitude."""
    if isinstance(value, float):
        text = repr(value)  # the shortest decimal that reads back: 1704207845.123456 exactly
        if value != value or "e" in text or "inf" in text:
            return None
        whole, _, fraction = text.partition(".")
        value = int(whole)
    if value <= 0:
        return None
    for limit, scale in ((10**11, _NS), (10**14, 1_000_000), (10**17, 1_000), (10**19, 1)):
        if value < limit:
            nanos = value * scale + int(fraction.ljust(9, "0")[:9]) * scale // _NS
            return nanos if nanos <= _MAX_NS else None
    return None


def _numeric_ns(text: str, now_ns: int | None) -> int | None:
    found = _NUMERIC_DATE.match(text)
    if found:
        if found.group("ymd"):
            ymd = found.group("ymd")
            return _civil_ns(
                int(ymd[:4]), int(ymd[4:6]), int(ymd[6:]), *_clock(found, "c_"), zone=None
            )
        if found.group("yymmdd"):
            day, clock = found.group("yymmdd"), found.group("hhmmss")
            date = (2000 + int(day[:2]), int(day[2:4]), int(day[4:]))
            return _civil_ns(*date, int(clock[:2]), int(clock[2:4]), int(clock[4:]), 0, zone=None)
        year, month, day = _date_order(found.group("a"), found.group("b"), found.group("c"))
        return _civil_ns(year, month, day, *_clock(found, ""), zone=found.group("zone"))
    found = _MONTH_DAY.match(text)
    if found:
        return _yearless_ns(int(found.group("mo")), int(found.group("d")), found, None, now_ns)
    found = _DAY_FIRST.match(text)
    if found:
        return _named_ns(found, found.group("y"), now_ns)
    found = _EPOCH_TEXT.fullmatch(text.strip())
    if found:
        return epoch_ns(int(found.group("int")), fraction=found.group("frac") or "")
    return None


def _date_order(a: str, b: str, c: str) -> tuple[int, int, int]:
    """Year, month, day of a numeric date: Y-M-D, or D.M.Y / M/D/Y when the year comes last."""
    if len(c) == 4:
        first, second = int(a), int(b)
        if first > 12 or "." in a:  # 25/12/2024 can only be day first
            return int(c), second, first
        return int(c), first, second
    year = int(a)
    return (year + 2000 if year < 100 else year), int(b), int(c)


def _clock(found: re.Match[str], prefix: str) -> tuple[int, int, int, int]:
    seconds = found.group(prefix + "s")
    frac = found.group(prefix + "frac") or ""
    return (
        int(found.group(prefix + "h")),
        int(found.group(prefix + "mi")),
        min(int(seconds), 59) if seconds else 0,  # a leap second :60 counts as :59
        int(frac.ljust(9, "0")[:9]) if frac else 0,
    )


def _named_ns(found: re.Match[str], year: str | None, now_ns: int | None) -> int | None:
    month = _MONTHS[found.group("mon")[:3].lower()]
    day = int(found.group("d"))
    if year is None:
        return _yearless_ns(month, day, found, found.group("zone"), now_ns)
    return _civil_ns(int(year), month, day, *_clock(found, ""), zone=found.group("zone"))


def _yearless_ns(
    month: int, day: int, found: re.Match[str], zone: str | None, now_ns: int | None
) -> int | None:
    now = time.time_ns() if now_ns is None else now_ns
    year = time.gmtime(now // _NS).tm_year
    stamp = _civil_ns(year, month, day, *_clock(found, ""), zone=zone)
    if stamp is not None and stamp > now + _FUTURE_SLACK_NS:  # Dec 31 read on Jan 1
        stamp = _civil_ns(year - 1, month, day, *_clock(found, ""), zone=zone)
    return stamp


def _civil_ns(
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    nanos: int,
    *,
    zone: str | None,
) -> int | None:
    if not 1970 <= year <= 2261:
        return None
    seconds = _epoch_seconds(year, month, day, hour, minute, second, _zone_offset(zone))
    return seconds * _NS + nanos


def _zone_offset(zone: str | None) -> int | None:
    """Seconds east of UTC, or None for local time."""
    if not zone:
        return None
    if zone in ("Z", "UTC", "GMT"):
        return 0
    digits = zone[1:].replace(":", "")
    offset = int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60
    return -offset if zone[0] == "-" else offset


@functools.lru_cache(maxsize=_EPOCH_CACHE_SIZE)
def _iso_seconds(civil: str, zone: str | None) -> int:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS``; cached because consecutive lines share one."""
    year, month, day = int(civil[:4]), int(civil[5:7]), int(civil[8:10])
    clock = (int(civil[11:13]), int(civil[14:16]), min(int(civil[17:19]), 59))
    if year > 2261:
        raise ValueError(f"year {year} is beyond the int64 nanosecond range")
    return _epoch_seconds(year, month, day, *clock, _zone_offset(zone))


@functools.lru_cache(maxsize=_EPOCH_CACHE_SIZE)
def _epoch_seconds(
    year: int, month: int, day: int, hour: int, minute: int, second: int, offset: int | None
) -> int:
    """Epoch seconds of a civil time; cached because consecutive lines share their second."""
    if offset is None:
        return int(datetime(year, month, day, hour, minute, second).timestamp())
    moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return int(moment.timestamp()) - offset
