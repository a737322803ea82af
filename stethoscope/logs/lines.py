"""One line (or joined record) of process output into a log record's fields.

Three shapes, tried cheapest first: a JSON object (``{"level":"info","msg":...}``), logfmt
(``level=info msg="hello world"``) when the line is mostly key=value pairs, and text, whose
time and level come from the prefix (`header.split_header` plus a few exact shapes: Apache
access logs, Python's ``ERROR:root:msg``, glog/klog's ``E0102 15:04:05.123456``).

Structured lines give up their time, level, message and trace context keys to the record's
fields and keep every other key as an attribute; a text line's body is the line itself (lone
surrogates, which UTF-8 cannot carry, become U+FFFD everywhere). Severity numbers are
OpenTelemetry's (INFO 9, WARN 13, ERROR 17...); 0 means no level was found and the caller
picks a default. Nothing here raises on bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stethoscope.logs.header import epoch_ns, split_header, timestamp_ns

__all__ = ["ParsedLine", "parse_line", "severity_of"]


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """A record's fields as parsed from its text; time_ns None when the line carries no time."""

    time_ns: int | None
    severity_number: int
    severity_text: str
    body: str
    attributes: dict[str, object]
    format: str  # "json", "logfmt" or "text"
    trace_id: bytes = b""  # 16 bytes when the line names a valid trace, else empty
    span_id: bytes = b""  # 8 bytes when the line names a valid span, else empty


# OTel severity numbers by level name, lower case. Names follow the common libraries: syslog,
# Python, log4j/JUL, Go's zap/logrus, Rust's tracing.
_SEVERITY_NUMBERS = {
    "trace": 1, "finest": 1, "verbose": 1, "finer": 2, "debug": 5, "dbg": 5, "fine": 5,
    "config": 6, "info": 9, "information": 9, "informational": 9, "notice": 10,
    "warn": 13, "warning": 13, "error": 17, "err": 17, "severe": 17, "dpanic": 18,
    "fatal": 21, "critical": 21, "crit": 21, "panic": 21, "alert": 22, "emerg": 23,
    "emergency": 23,
}  # fmt: skip
# One-letter codes (glog, Android) and pino/bunyan's numeric levels, with the name to show.
_LETTER_LEVELS = {"V": "TRACE", "D": "DEBUG", "I": "INFO", "W": "WARN", "E": "ERROR", "F": "FATAL"}
_NUMERIC_LEVELS = {10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL"}

# Keys with a role in structured lines, in order of preference.
_TIME_KEYS = ("timestamp", "time", "ts", "@timestamp", "t", "asctime")
_LEVEL_KEYS = ("level", "lvl", "severity", "levelname", "log.level", "loglevel")
_MESSAGE_KEYS = ("msg", "message", "event", "log", "text")
_TRACE_KEYS = ("trace_id", "traceId", "trace.id", "otelTraceID")
_SPAN_KEYS = ("span_id", "spanId", "span.id", "otelSpanID")

_SURROGATE = re.compile("[\ud800-\udfff]")
_HEX = frozenset("0123456789abcdefABCDEF")

# logfmt: key=value, key="quoted \" value", or a bare key (true). A line counts as logfmt only
# when it starts with a pair and pairs outnumber bare words two to one, so that prose holding
# one `a=b` stays text.
_LOGFMT_START = re.compile(r'\s*[^\s="]+=')
_LOGFMT_TOKEN = re.compile(r'\s*([^\s="]+)(?:(=)("(?:[^"\\]|\\.)*"|[^\s"]*))?(?=\s|$)')
_LOGFMT_MIN_PAIRS = 2

# Apache/nginx common and combined access logs.
_ACCESS_LOG = re.compile(
    r'(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<target>\S+)'
    r'(?: HTTP/(?P<version>[\d.]+))?" (?P<status>\d{3}) (?P<size>\d+|-)'
    r'(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?'
)
# glog/klog: Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg
_GLOG = re.compile(
    r"(?P<level>[IWEF])(?P<month>\d\d)(?P<day>\d\d) (?P<clock>\d\d:\d\d:\d\d(?:\.\d{1,9})?)"
    r"\s+(?P<thread>\d+) (?P<file>[^:\s\]]+):(?P<line>\d+)\] "
)
# Python logging's default format: LEVEL:logger:message
_PYTHON_DEFAULT = re.compile(r"(?P<level>CRITICAL|ERROR|WARNING|INFO|DEBUG):(?P<logger>[^:\s]*):")
# Python's "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
_DASHED_LEVEL = re.compile(r" - (?P<level>CRITICAL|ERROR|WARNING|WARN|INFO|DEBUG) - ")
_DASHED_LEVEL_WINDOW = 200
_LEVEL_PAIR = re.compile(r'(?:^|\s)(?:level|lvl|severity|loglevel)=["\']?(?P<level>[A-Za-z]+)')
_TRACE_PAIR = re.compile(
    r"(?:trace_id|traceId|trace\.id|otelTraceID|traceid)[=:]\s?\"?(?P<id>[0-9a-fA-F]{32})\b"
)
_SPAN_PAIR = re.compile(
    r"(?:span_id|spanId|span\.id|otelSpanID|spanid)[=:]\s?\"?(?P<id>[0-9a-fA-F]{16})\b"
)


def parse_line(text: str) -> ParsedLine:
    """Parse one line (or a joined multiline record) into time, severity, body and fields."""
    if not text.isascii() and _SURROGATE.search(text):
        # Undecodable bytes (surrogateescape) or JSON's lone \ud800: not encodable as UTF-8.
        text = _SURROGATE.sub("\ufffd", text)
    head = text[:1]
    if head == "{" or (head.isspace() and text.lstrip().startswith("{")):
        parsed = _parse_json(text)
        if parsed is not None:
            return parsed
    if "=" in text and _LOGFMT_START.match(text):
        fields = _logfmt_fields(text)
        if fields is not None:
            return _from_fields(fields, text, "logfmt")
    return _parse_text(text)


def severity_of(level: object) -> tuple[int, str]:
    """The OTel severity number and text of a level name or code; (0, "") when unknown."""
    if isinstance(level, bool):
        return 0, ""
    if isinstance(level, int):
        name = _NUMERIC_LEVELS.get(level)
        return (_SEVERITY_NUMBERS[name.lower()], name) if name else (0, "")
    if not isinstance(level, str):
        return 0, ""
    word = level.strip().strip("[]<>:")
    number = _SEVERITY_NUMBERS.get(word.lower(), 0)
    if number:
        return number, word
    name = _LETTER_LEVELS.get(word.upper())
    if name:
        return _SEVERITY_NUMBERS[name.lower()], name
    return 0, ""


def _parse_json(text: str) -> ParsedLine | None:
    try:
        fields = json.loads(text)
    except (ValueError, RecursionError):  # not JSON after all, or nested beyond the stack
        return None
    if not isinstance(fields, dict):
        return None
    if "\\u" in text:
        fields = _clean(fields)
    return _from_fields(fields, text, "json")


def _clean(value: Any) -> Any:
    """Replace lone surrogates that JSON escapes (\\ud800) decoded into, keys included."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _from_fields(fields: dict[str, Any], text: str, format: str) -> ParsedLine:
    """Take the keys with a role out of `fields`; the rest become attributes."""
    time_ns = _take(fields, _TIME_KEYS, _time_of)
    number, level = _take(fields, _LEVEL_KEYS, _known_severity) or (0, "")
    body = _take(fields, _MESSAGE_KEYS, _message_of)
    trace_id = _take(fields, _TRACE_KEYS, _hex_id(16)) or b""
    span_id = _take(fields, _SPAN_KEYS, _hex_id(8)) or b""
    return ParsedLine(
        time_ns=time_ns,
        severity_number=number,
        severity_text=level,
        body=text.strip() if body is None else body,
        attributes=fields,
        format=format,
        trace_id=trace_id,
        span_id=span_id,
    )


def _take(fields: dict[str, Any], keys: tuple[str, ...], convert: Any) -> Any:
    """The first of `keys` whose value converts; that key leaves `fields`, the others stay."""
    for key in keys:
        if key in fields:
            value = convert(fields[key])
            if value is not None:
                del fields[key]
                return value
    return None


def _time_of(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return epoch_ns(value)
    if isinstance(value, str):
        return timestamp_ns(value)
    if isinstance(value, Mapping) and isinstance(value.get("$date"), str):  # MongoDB's {"$date"}
        return timestamp_ns(value["$date"])
    return None


def _known_severity(value: object) -> tuple[int, str] | None:
    number, text = severity_of(value)
    return (number, text) if number else None


def _message_of(value: object) -> str | None:
    # Docker's json-file driver keeps each line's newline in "log".
    return value.rstrip("\r\n") if isinstance(value, str) else None


def _hex_id(size: int) -> Any:
    def convert(value: object) -> bytes | None:
        if not isinstance(value, str) or len(value) != 2 * size or not _HEX.issuperset(value):
            return None
        raw = bytes.fromhex(value)
        return raw if any(raw) else None  # all zeros means "no trace" in OTel

    return convert


def _logfmt_fields(text: str) -> dict[str, Any] | None:
    """The key=value pairs of a logfmt line, or None when the line is not mostly pairs."""
    fields: dict[str, Any] = {}
    pairs = bare = 0
    pos, end = 0, len(text.rstrip())
    while pos < end:
        found = _LOGFMT_TOKEN.match(text, pos)
        if not found:
            return None  # a stray quote or an unterminated string: not logfmt
        key, equals, value = found.groups()
        pos = found.end()
        if equals:
            pairs += 1
            fields[key] = _unquote(value) if value.startswith('"') else value
        else:
            bare += 1
            fields[key] = True
    if pairs < _LOGFMT_MIN_PAIRS or bare * 2 > pairs:
        return None
    return fields


def _unquote(value: str) -> str:
    inner = value[1:-1]
    if "\\" not in inner:
        return inner
    try:
        decoded = json.loads(value)  # Go's strconv.Quote escapes are nearly JSON's
    except ValueError:
        return inner.replace('\\"', '"').replace("\\\\", "\\")
    return decoded if isinstance(decoded, str) else inner


def _parse_text(text: str) -> ParsedLine:
    """Time and level from the prefix; the body is the text itself."""
    attributes: dict[str, object] = {}
    time_ns, number, level = _text_prefix(text, attributes)
    if not number:
        found = _DASHED_LEVEL.search(text, 0, _DASHED_LEVEL_WINDOW)
        if found is None and "=" in text:
            found = _LEVEL_PAIR.search(text)
        if found:
            number, level = severity_of(found.group("level"))
    trace_id = span_id = b""
    if "race" in text:  # trace_id, traceId, otelTraceID: one cheap test before the regexes
        trace_id, span_id = _text_trace_context(text)
    return ParsedLine(
        time_ns=time_ns,
        severity_number=number,
        severity_text=level,
        body=text,
        attributes=attributes,
        format="text",
        trace_id=trace_id,
        span_id=span_id,
    )


def _text_prefix(text: str, attributes: dict[str, object]) -> tuple[int | None, int, str]:
    """Time, severity number and text from the exact shapes first, then the generic header."""
    head = text[:1]
    if head in "IWEF" and text[1:5].isdigit():
        found = _GLOG.match(text)
        if found:
            stamp = f"{found.group('month')}-{found.group('day')} {found.group('clock')}"
            attributes["thread.id"] = int(found.group("thread"))
            attributes["code.filepath"] = found.group("file")
            attributes["code.lineno"] = int(found.group("line"))
            return (timestamp_ns(stamp), *severity_of(found.group("level")))
    if head in "CEWID":
        found = _PYTHON_DEFAULT.match(text)
        if found:
            return (None, *severity_of(found.group("level")))
    if " [" in text[:80]:
        found = _ACCESS_LOG.match(text)
        if found:
            return _access_log(found, attributes)
    header = split_header(text)
    time_ns = timestamp_ns(header.timestamp) if header.timestamp else None
    number, level = severity_of(header.level) if header.level else (0, "")
    return time_ns, number, level


def _access_log(found: re.Match[str], attributes: dict[str, object]) -> tuple[int | None, int, str]:
    """HTTP semantic-convention attributes; the status decides the severity."""
    target = found.group("target")
    path, _, query = target.partition("?")
    status = int(found.group("status"))
    attributes["client.address"] = found.group("client")
    attributes["http.request.method"] = found.group("method")
    attributes["url.path"] = path
    if query:
        attributes["url.query"] = query
    if found.group("version"):
        attributes["network.protocol.version"] = found.group("version")
    attributes["http.response.status_code"] = status
    if found.group("size") != "-":
        attributes["http.response.body.size"] = int(found.group("size"))
    if found.group("referer") not in (None, "-"):
        attributes["http.request.header.referer"] = found.group("referer")
    if found.group("agent") not in (None, "-"):
        attributes["user_agent.original"] = found.group("agent")
    level = "ERROR" if status >= 500 else "WARN" if status >= 400 else "INFO"
    return timestamp_ns(found.group("time")), _SEVERITY_NUMBERS[level.lower()], level


def _text_trace_context(text: str) -> tuple[bytes, bytes]:
    """The trace and span ids printed in the line (OTel's logging format), when valid."""
    found = _TRACE_PAIR.search(text)
    trace_id = _hex_id(16)(found.group("id")) if found else None
    if not trace_id:
        return b"", b""
    found = _SPAN_PAIR.search(text)
    span_id = _hex_id(8)(found.group("id")) if found else None
    return trace_id, span_id or b""
