"""Masking a whole request at once gives exactly what `templates.mask` gives line by line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stethoscope.logs import masking
from stethoscope.logs.masking import masked_column, masked_lines
from stethoscope.logs.templates import MINED_LINE_CHARS, mask, mined_line
from stethoscope.model.codes import ValueType

ROOT = Path(__file__).resolve().parents[2]
LOGHUB = ROOT.parent / "shared" / "data" / "loghub"
STRING = int(ValueType.STRING)


def reference(types: Sequence[int], bodies: Sequence[str | None]) -> list[str | None]:
    """The per-record definition: the mined line of each string body, masked."""
    out: list[str | None] = []
    for body_type, body in zip(types, bodies, strict=True):
        line = mined_line(body, MINED_LINE_CHARS) if body_type == STRING and body else None
        out.append(None if line is None else mask(line))
    return out


def assert_same(bodies: Sequence[str | None], types: Sequence[int] | None = None) -> None:
    types = [STRING] * len(bodies) if types is None else types
    expected = reference(types, bodies)
    got = masked_lines(types, bodies)
    mismatches = [
        (body, mine, theirs)
        for body, mine, theirs in zip(bodies, got, expected, strict=True)
        if mine != theirs
    ]
    assert not mismatches, mismatches[:5]


CASES = {
    "empty": "",
    "blank": " \t ",
    "blank by Python only": "\x1c\x1f ",
    "vertical tab is a space": "took\x0b5\x0bms",
    "multi-line": "first 12 line\nsecond 34",
    "blank first line": "\nsecond 34",
    "non-ASCII": "café 12 ouvert",
    "non-ASCII digits": "value \u0663\u0664 here",
    "non-ASCII space": "a\u00a012 b",
    "long": "x" * 1_500 + " 12",
    "long line, short after the cut": "a " * 600,
    "duration with a space": "took 5 ms, then 3 sec",
    "duration with a bound": "replied in <1ms; p99 >250 us",
    "duration then a path": "took 5 ms /srv/x",
    "duration after a dot and a space": "took 12. ms\x0b then 0: us<5",
    "plain duration": "took 5ms, retried in 2.5s",
    "date": "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown",
    "date with day and year": "at Mon Jan  5 12:00:00 2023 ok",
    "date ending inside a run": "at Jan 5 12:00:00.123 ok",
    "date with a colon-only time": "x=Jan 5 :: y",
    "date after a delimiter": "[Jan 5 12:00:00] up",
    "date after =": "since=Mon Jan 5 12:00 ok",
    "aside": "sent (1.2 KB) in (3 parts) ()",
    "aside then path": "retrying (1)/srv/data",
    "aside then date": "(1)Jan 5 12:00 x",
    "aside then digits": "(1)abc5 x",
    "aside with a path": "open (/srv/x5) and (/srv/y)",
    "unclosed aside": "open (12 and",
    "path and url": "GET /api/v1 from http://h:80/x via TCP/IP",
    "url after a word": "see-http://x",
    "value": "user=root level=info; k='v'",
    "empty value": "a= b",
    "literal wildcards": "<*> <*>, <*>x <*5> <<*>>",
    "wildcard runs": "a 1, 2,3 ,4 b",
    "only digits": "12345",
    "tilde duration": "~5ms left",
}


@pytest.mark.parametrize("body", CASES.values(), ids=CASES.keys())
def test_named_cases_mask_like_the_reference(body: str) -> None:
    assert_same([body])


def test_all_cases_in_one_request() -> None:
    assert_same(list(CASES.values()))


def test_only_string_bodies_get_a_masked_line() -> None:
    types = [STRING, 2, STRING, 3, STRING]
    bodies = ["a 1", "42", None, "b 2", "c 3"]
    assert masked_lines(types, bodies) == [mask("a 1"), None, None, None, mask("c 3")]


def test_bodies_arrow_cannot_encode_take_the_reference_path() -> None:
    assert_same(["lone \udc80 surrogate 12", "fine 12"])


def test_empty_request_and_length_mismatch() -> None:
    assert masked_lines([], []) == []
    assert masked_column([], []).type == pa.string()
    with pytest.raises(ValueError, match="body types"):
        masked_lines([STRING], [])


PIECES = [
    " ", "  ", "\t", "\n", "\x0b", "\x1c", ",", ";", "=", "(", ")", "[", "]", "{", "}", "<",
    ">", '"', "'", "|", "/", "://", ":", ".", "-", "_", "~", "<*>", "0", "7", "12", "2023",
    "12:00", "12.", "a", "x", "Z", "http", "user", "ms", "s", "sec", "seconds", "min", "h", "hours",
    "day", "us", "ns", "Jan", "Dec", "Mon", "Sun", "é", "\u00a0", "\u0663", "日",
]  # fmt: skip
BODIES = st.lists(st.sampled_from(PIECES), max_size=24).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(BODIES, st.none()), max_size=12))
def test_property_same_as_the_reference(bodies: list[str | None]) -> None:
    assert_same(bodies)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([STRING, 2, 5]), BODIES), max_size=8))
def test_property_any_body_types(rows: list[tuple[int, str]]) -> None:
    assert_same([body for _, body in rows], [body_type for body_type, _ in rows])


def loghub_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted(LOGHUB.glob("*/*_2k.log")):
        lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines


@pytest.mark.skipif(not LOGHUB.is_dir(), reason="loghub samples not present")
def test_every_loghub_line_masks_like_the_reference() -> None:
    lines = loghub_lines()
    assert len(lines) >= 30_000
    for start in range(0, len(lines), 1_024):
        assert_same(lines[start : start + 1_024])


@pytest.mark.skipif(not LOGHUB.is_dir(), reason="loghub samples not present")
def test_few_loghub_lines_need_the_python_expression() -> None:
    lines = pa.array([line for line in loghub_lines() if line.strip()], pa.string())
    _, first = masking._mask(lines, masking._TOKENS, masking._UNDECIDED)
    retried = lines.filter(pa.array(first))
    _, second = masking._mask(retried, masking._TOKENS_AND_DATES, masking._UNDECIDED_WITH_DATES)
    assert second.sum() < 0.025 * len(lines)  # 578 of 32,000 when written


def benchmark_bodies(requests: int) -> list[str]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ingest import build_pool
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    bodies: list[str] = []
    for pooled in build_pool("logs", requests, seed=8):
        request = ExportLogsServiceRequest.FromString(pooled.body)
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                bodies += [record.body.string_value for record in scope_logs.log_records]
    return bodies


def test_benchmark_bodies_mask_like_the_reference_without_the_slow_path() -> None:
    bodies = benchmark_bodies(8)
    for start in range(0, len(bodies), 1_024):
        assert_same(bodies[start : start + 1_024])
    lines = pa.array([mined_line(body, MINED_LINE_CHARS) for body in bodies], pa.string())
    _, undecided = masking._mask(lines, masking._TOKENS, masking._UNDECIDED)
    assert not undecided.any()  # the benchmark's lines all take the first, cheapest try
