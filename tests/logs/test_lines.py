"""Line parsing on the formats real programs print, as tables of named cases, plus a fuzz test."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stethoscope.logs.lines import ParsedLine, parse_line

TRACE_HEX = "0af7651916cd43dd8448eb211c80319c"
SPAN_HEX = "b7ad6b7169203331"
TRACE = bytes.fromhex(TRACE_HEX)
SPAN = bytes.fromhex(SPAN_HEX)


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int, ns: int = 0) -> int:
    """Epoch nanoseconds of a UTC civil time."""
    moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return int(moment.timestamp()) * 10**9 + ns


def local(year: int, month: int, day: int, hour: int, minute: int, second: int, ns: int = 0) -> int:
    """Epoch nanoseconds of a civil time in this machine's zone (a zone-less timestamp)."""
    return int(datetime(year, month, day, hour, minute, second).timestamp()) * 10**9 + ns


def this_year() -> int:
    return datetime.now().year


def check(parsed: ParsedLine, expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        assert getattr(parsed, name) == value, name


JSON_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "zap production": (
        '{"level":"info","ts":1704207845.123456,"caller":"main.go:12","msg":"started","port":8080}',
        {"time_ns": utc(2024, 1, 2, 15, 4, 5, ns=123456000), "severity_number": 9,
         "severity_text": "info", "body": "started", "format": "json",
         "attributes": {"caller": "main.go:12", "port": 8080}},
    ),
    "pino numeric level and epoch ms": (
        '{"level":50,"time":1704207845123,"pid":7,"hostname":"web-1","msg":"db down"}',
        {"time_ns": utc(2024, 1, 2, 15, 4, 5, ns=123000000), "severity_number": 17,
         "severity_text": "ERROR", "body": "db down",
         "attributes": {"pid": 7, "hostname": "web-1"}},
    ),
    "logrus json with offset": (
        '{"level":"warning","msg":"disk low","time":"2024-01-02T16:04:05+01:00"}',
        {"time_ns": utc(2024, 1, 2, 15, 4, 5), "severity_number": 13, "severity_text": "warning"},
    ),
    "ecs dotted keys": (
        '{"@timestamp":"2024-01-02T15:04:05.123Z","log.level":"error","message":"boom",'
        '"trace.id":"' + TRACE_HEX + '","span.id":"' + SPAN_HEX + '","log":{"logger":"app"}}',
        {"time_ns": utc(2024, 1, 2, 15, 4, 5, ns=123000000), "severity_number": 17,
         "body": "boom", "trace_id": TRACE, "span_id": SPAN,
         "attributes": {"log": {"logger": "app"}}},
    ),
    "docker json-file": (
        '{"log":"hello\\n","stream":"stderr","time":"2024-01-02T15:04:05.123456789Z"}',
        {"time_ns": utc(2024, 1, 2, 15, 4, 5, ns=123456789), "body": "hello",
         "severity_number": 0, "attributes": {"stream": "stderr"}},
    ),
    "mongodb structured log": (
        '{"t":{"$date":"2020-05-01T15:16:17.180+00:00"},"s":"I","c":"NETWORK","msg":"Listening"}',
        {"time_ns": utc(2020, 5, 1, 15, 16, 17, ns=180000000), "body": "Listening",
         "attributes": {"s": "I", "c": "NETWORK"}},
    ),
    "python-json-logger asctime and levelname": (
        '{"asctime": "2024-01-02 15:04:05,123", "levelname": "CRITICAL", "message": "x"}',
        {"time_ns": local(2024, 1, 2, 15, 4, 5, ns=123000000), "severity_number": 21},
    ),
    "camel case otel ids": (
        '{"msg":"m","traceId":"' + TRACE_HEX + '","spanId":"' + SPAN_HEX + '"}',
        {"trace_id": TRACE, "span_id": SPAN, "attributes": {}},
    ),
    "invalid trace id stays an attribute": (
        '{"msg":"m","trace_id":"xyz","span_id":"0000000000000000"}',
        {"trace_id": b"", "span_id": b"", "attributes": {"trace_id": "xyz",
                                                        "span_id": "0000000000000000"}},
    ),
    "no message: body is the line": (
        '{"level":"debug","user":"ann"}',
        {"body": '{"level":"debug","user":"ann"}', "severity_number": 5,
         "attributes": {"user": "ann"}},
    ),
    "non-text message stays an attribute": (
        '{"msg":{"a":1},"event":"login"}',
        {"body": "login", "attributes": {"msg": {"a": 1}}},
    ),
    "unknown level and bad time stay attributes": (
        '{"level":"loud","time":"yesterday","msg":"m"}',
        {"severity_number": 0, "severity_text": "", "time_ns": None,
         "attributes": {"level": "loud", "time": "yesterday"}},
    ),
    "epoch seconds, microseconds, nanoseconds": (
        '{"ts":1704207845,"msg":"s"}', {"time_ns": utc(2024, 1, 2, 15, 4, 5)},
    ),
    "epoch microseconds": (
        '{"ts":1704207845000001,"msg":"us"}', {"time_ns": utc(2024, 1, 2, 15, 4, 5, ns=1000)},
    ),
    "epoch nanoseconds": (
        '{"ts":1704207845000000001,"msg":"ns"}', {"time_ns": utc(2024, 1, 2, 15, 4, 5, ns=1)},
    ),
    "leading spaces before the object": ('  {"msg":"m"}  ', {"format": "json", "body": "m"}),
    "lone surrogate escape is replaced": (
        '{"msg":"bad \\ud800 char","k\\udfff":1}',
        {"body": "bad \ufffd char", "attributes": {"k\ufffd": 1}},
    ),
}  # fmt: skip


@pytest.mark.parametrize(("line", "expected"), JSON_CASES.values(), ids=JSON_CASES.keys())
def test_json_lines(line: str, expected: dict[str, Any]) -> None:
    check(parse_line(line), {"format": "json", **expected})


LOGFMT_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "go slog text handler": (
        'time=2024-01-02T15:04:05.123+01:00 level=INFO msg="hello world" count=3',
        {"time_ns": utc(2024, 1, 2, 14, 4, 5, ns=123000000), "severity_number": 9,
         "severity_text": "INFO", "body": "hello world", "attributes": {"count": "3"}},
    ),
    "logrus text with quoted time": (
        'time="2024-01-02T15:04:05Z" level=warning msg="disk low" path=/var',
        {"time_ns": utc(2024, 1, 2, 15, 4, 5), "severity_number": 13,
         "attributes": {"path": "/var"}},
    ),
    "loki style with caller": (
        "level=error ts=2024-01-02T15:04:05.5Z caller=main.go:10 msg=failed err=timeout",
        {"severity_number": 17, "body": "failed",
         "time_ns": utc(2024, 1, 2, 15, 4, 5, ns=5 * 10**8),
         "attributes": {"caller": "main.go:10", "err": "timeout"}},
    ),
    "escapes in quoted values": (
        r'level=info msg="say \"hi\"\tthen \\ go" q="a=b c"',
        {"body": 'say "hi"\tthen \\ go', "attributes": {"q": "a=b c"}},
    ),
    "go-style escape json cannot read": (
        r'msg="bell \a here" level=info', {"body": r"bell \a here", "severity_number": 9},
    ),
    "grafana otel trace keys": (
        f"level=info msg=req traceID=x trace_id={TRACE_HEX} span_id={SPAN_HEX}",
        {"trace_id": TRACE, "span_id": SPAN, "attributes": {"traceID": "x"}},
    ),
    "bare key is true": (
        "level=info msg=up ready", {"attributes": {"ready": True}},
    ),
    "no message: body is the line": (
        "at=info method=GET path=/ status=200",
        {"body": "at=info method=GET path=/ status=200", "severity_number": 0,
         "attributes": {"at": "info", "method": "GET", "path": "/", "status": "200"}},
    ),
}  # fmt: skip


@pytest.mark.parametrize(("line", "expected"), LOGFMT_CASES.values(), ids=LOGFMT_CASES.keys())
def test_logfmt_lines(line: str, expected: dict[str, Any]) -> None:
    check(parse_line(line), {"format": "logfmt", **expected})


NOT_LOGFMT = {
    "prose with one pair": "Setting timeout=30 for the pool",
    "prose starting with a pair": "x=1 is what the docs say we should use here",
    "a single pair": "count=3",
    "unterminated quote": 'level=info msg="never closed',
    "stray quote": 'level=info msg=a"b',
    "url in a sentence": "GET /search?q=a&b=c returned 200",
}


@pytest.mark.parametrize("line", NOT_LOGFMT.values(), ids=NOT_LOGFMT.keys())
def test_not_logfmt(line: str) -> None:
    parsed = parse_line(line)
    assert parsed.format == "text"
    assert parsed.body == line
    assert parsed.attributes == {}


OTEL_PY_LINE = (
    "2024-01-02 15:04:05,123 WARNING [app] [main.py:12] [trace_id="
    + TRACE_HEX
    + " span_id="
    + SPAN_HEX
    + " resource.service.name=shop trace_sampled=True] - slow checkout"
)
ACCESS = '10.0.0.7 - frank [10/Oct/2000:13:55:36 -0700] "GET /img/a.gif?size=2 HTTP/1.1" {} 2326'
COMBINED = ACCESS.format(200) + ' "http://example.com/" "Mozilla/5.0 (X11; Linux x86_64)"'

TEXT_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "iso-8601 with zone and level": (
        "2024-01-02T15:04:05.123456Z ERROR db: connection refused",
        {"time_ns": utc(2024, 1, 2, 15, 4, 5, ns=123456000), "severity_number": 17,
         "severity_text": "ERROR"},
    ),
    "log4j/logback": (
        "2024-01-01 12:00:00,123 ERROR [main] c.x.Y - msg",
        {"time_ns": local(2024, 1, 1, 12, 0, 0, ns=123000000), "severity_number": 17},
    ),
    "python logging default format": (
        "WARNING:urllib3.connectionpool:Retrying (Retry(total=2)) after connection broken",
        {"time_ns": None, "severity_number": 13, "severity_text": "WARNING"},
    ),
    "python asctime - name - level - message": (
        "2024-01-02 15:04:05,123 - myapp.db - ERROR - query failed",
        {"time_ns": local(2024, 1, 2, 15, 4, 5, ns=123000000), "severity_number": 17},
    ),
    "otel python logging format carries trace context": (
        OTEL_PY_LINE,
        {"severity_number": 13, "trace_id": TRACE, "span_id": SPAN,
         "time_ns": local(2024, 1, 2, 15, 4, 5, ns=123000000)},
    ),
    "otel python logging format outside a span": (
        "2024-01-02 15:04:05,123 INFO [app] [main.py:3] [trace_id=0 span_id=0 "
        "resource.service.name=shop trace_sampled=False] - started",
        {"trace_id": b"", "span_id": b"", "severity_number": 9},
    ),
    "glog": (
        "E0102 15:04:05.123456   123 server.go:42] listen failed",
        {"time_ns": local(this_year(), 1, 2, 15, 4, 5, ns=123456000), "severity_number": 17,
         "severity_text": "ERROR",
         "attributes": {"thread.id": 123, "code.filepath": "server.go", "code.lineno": 42}},
    ),
    "go standard log": (
        "2024/01/02 15:04:05 listening on :8080",
        {"time_ns": local(2024, 1, 2, 15, 4, 5), "severity_number": 0, "severity_text": ""},
    ),
    "syslog": (
        "Jan  2 15:04:05 web-1 sshd[24200]: Invalid user admin",
        {"time_ns": local(this_year(), 1, 2, 15, 4, 5), "severity_number": 0},
    ),
    "nginx error log": (
        "2024/01/02 15:04:05 [error] 31#31: *1 connect() failed (111: Connection refused)",
        {"time_ns": local(2024, 1, 2, 15, 4, 5), "severity_number": 17},
    ),
    "bracketed level": ("[WARN] cache nearly full", {"severity_number": 13}),
    "level= in a text line": (
        "2024-01-02 15:04:05 worker started level=debug pid=3", {"severity_number": 5},
    ),
    "apache common 404": (
        ACCESS.format(404),
        {"time_ns": utc(2000, 10, 10, 20, 55, 36), "severity_number": 13,
         "severity_text": "WARN",
         "attributes": {"client.address": "10.0.0.7", "http.request.method": "GET",
                        "url.path": "/img/a.gif", "url.query": "size=2",
                        "network.protocol.version": "1.1", "http.response.status_code": 404,
                        "http.response.body.size": 2326}},
    ),
    "apache common 503": (ACCESS.format(503), {"severity_number": 17, "severity_text": "ERROR"}),
    "apache combined 200": (
        COMBINED,
        {"severity_number": 9, "severity_text": "INFO"},
    ),
    "no header at all": (
        "Listening on port 8080", {"time_ns": None, "severity_number": 0, "attributes": {}},
    ),
    "a joined traceback keeps its first line's fields": (
        "2024-01-02 15:04:05,123 ERROR app: failed\nTraceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\nValueError: x',
        {"severity_number": 17, "time_ns": local(2024, 1, 2, 15, 4, 5, ns=123000000)},
    ),
}  # fmt: skip


@pytest.mark.parametrize(("line", "expected"), TEXT_CASES.values(), ids=TEXT_CASES.keys())
def test_text_lines(line: str, expected: dict[str, Any]) -> None:
    parsed = parse_line(line)
    check(parsed, {"format": "text", "body": line, **expected})


def test_real_python_logging_formats(tmp_path: Path) -> None:
    program = (
        "import logging, sys\n"
        "logging.basicConfig()\n"
        "logging.getLogger('app.db').error('query failed')\n"
        "h = logging.StreamHandler(sys.stderr)\n"
        "fmt = '%(asctime)s - %(name)s - %(levelname)s - %(message)s'\n"
        "h.setFormatter(logging.Formatter(fmt))\n"
        "logging.getLogger('x').addHandler(h)\n"
        "logging.getLogger('x').propagate = False\n"
        "logging.getLogger('x').critical('disk gone')\n"
    )
    (tmp_path / "logs.py").write_text(program)
    done = subprocess.run(
        [sys.executable, "logs.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    default, dashed = (parse_line(line) for line in done.stderr.splitlines())
    assert (default.severity_number, default.severity_text) == (17, "ERROR")
    assert dashed.severity_number == 21
    assert dashed.time_ns is not None
    assert abs(dashed.time_ns - datetime.now().timestamp() * 1e9) < 600e9


MALFORMED = {
    "broken json": '{"level":"info","msg":',
    "json array": '["level", "info"]',
    "json scalar in braces": "{not json}",
    "deeply nested json": '{"a":' + "[" * 100_000 + "]" * 100_000 + "}",
    "huge number json": '{"ts":1' + "0" * 5000 + ',"msg":"x"}',
    "infinite time": '{"ts":1e999,"msg":"x"}',
    "nan time": '{"ts":NaN,"msg":"x"}',
    "negative time": '{"ts":-5,"msg":"x"}',
    "bool level and time": '{"level":true,"ts":true,"msg":"x"}',
    "control characters": "\x00\x01\x1b[31mERROR\x1b[0m \x7f done",
    "lone surrogates from undecodable bytes": "caf\udcc3\udca9 2024-01-02 \ud800",
    "impossible date": "2024-13-45 25:61:61 ERROR x",
    "year out of range": "9999-01-01 00:00:00 x",
    "only spaces": "   ",
    "empty": "",
    "one mega byte of text": "ERROR " + "x" * 1_000_000,
    "one mega byte of pairs": "a=1 " * 250_000,
    "one mega byte of quotes": 'level=info msg="' + "\\" * 1_000_000,
}


@pytest.mark.parametrize("line", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_never_raises(line: str) -> None:
    parsed = parse_line(line)
    parsed.body.encode("utf-8")  # always encodable, so the record can be sent
    assert parsed.format in ("json", "logfmt", "text")
    assert parsed.time_ns is None or 0 < parsed.time_ns < 2**63


def test_surrogates_are_replaced_in_text() -> None:
    assert parse_line("caf\udcc3 ok").body == "caf\ufffd ok"


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.builds(lambda a, b: "{" + a + "}" + b, st.text(), st.text(max_size=3)),
        st.builds(lambda a, b: f"{a}={b} x={b}", st.text(), st.text()),
        st.sampled_from(
            [
                case[0]
                for case in (*JSON_CASES.values(), *LOGFMT_CASES.values(), *TEXT_CASES.values())
            ]
        ).flatmap(lambda line: st.integers(0, len(line)).map(lambda cut: line[:cut])),
    )
)
def test_parse_line_never_raises(line: str) -> None:
    parsed = parse_line(line)
    assert isinstance(parsed.body, str)
    assert parsed.format in ("json", "logfmt", "text")
    assert len(parsed.trace_id) in (0, 16) and len(parsed.span_id) in (0, 8)


TIME_TEXTS = {
    "iso with nanoseconds and offset": (
        "2024-01-02T17:04:05.123456789+02:00", utc(2024, 1, 2, 15, 4, 5, ns=123456789)),
    "iso with space and UTC": ("2024-01-02 15:04:05 UTC", utc(2024, 1, 2, 15, 4, 5)),
    "http date": ("Tue, 02 Jan 2024 15:04:05 GMT", utc(2024, 1, 2, 15, 4, 5)),
    "ctime with year": ("Sun Dec 04 04:47:44 2005", local(2005, 12, 4, 4, 47, 44)),
    "two-digit year first": ("17/06/09 20:10:40", local(2017, 6, 9, 20, 10, 40)),
    "day first with four-digit year": ("25/12/2024 10:00", local(2024, 12, 25, 10, 0, 0)),
    "compact hdfs": ("081109 203615", local(2008, 11, 9, 20, 36, 15)),
    "compact with millis": (
        "20171223-22:15:29:606", local(2017, 12, 23, 22, 15, 29, ns=606 * 10**6)),
    "epoch seconds as text": ("1704207845.5", utc(2024, 1, 2, 15, 4, 5, ns=5 * 10**8)),
    "leap second": ("2016-12-31T23:59:60Z", utc(2016, 12, 31, 23, 59, 59)),
    "february 30th": ("2024-02-30T00:00:00Z", None),
    "month 13": ("2024-13-01 00:00:00", None),
    "beyond int64 nanoseconds": ("2300-01-01T00:00:00Z", None),
    "words": ("yesterday", None),
}  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), TIME_TEXTS.values(), ids=TIME_TEXTS.keys())
def test_time_texts(text: str, expected: int | None) -> None:
    parsed = parse_line(json.dumps({"time": text, "msg": "m"}))
    assert parsed.time_ns == expected
