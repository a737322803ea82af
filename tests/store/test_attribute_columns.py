"""Common attribute keys in columns of their own in a segment: every span reads back with the
attributes it was sent, whichever keys its segment split out."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from stethoscope.model.batch import SignalBatch
from stethoscope.model.codes import ValueType
from stethoscope.model.schema import ATTRIBUTES
from stethoscope.sources.otlp.decode import decode_traces
from stethoscope.sources.records import any_value
from stethoscope.store.base import TraceQuery
from stethoscope.store.duckdb.attribute_columns import (
    MAX_KEYS,
    SegmentKeys,
    SplitColumn,
    rebuilt,
    split_batches,
)
from stethoscope.store.duckdb.store import DuckDBStore

SEGMENT = 100
HOUR_NS = 3600 * 10**9


def mixed(number: int) -> list[tuple[str, Any]]:
    """Span `number`'s attributes: common keys of every type, some on some spans only, one
    rare, and on span 7 one key twice."""
    found: list[tuple[str, Any]] = [
        ("http.route", f"/r/{number % 5}"),
        ("app.request_id", f"{number * 7919:016x}"),
        ("http.response.status_code", 200 + number % 3),
        ("app.ratio", number / 8),
        ("app.cache_hit", number % 2 == 0),
        ("app.tags", ["a", number]),
        ("app.ctx", {"n": number}),
        ("app.blob", bytes([number % 256])),
        ("a 'quoted' \"key\"", "q"),
    ]
    if number % 4 == 0:
        found.append(("db.system.name", "postgresql"))
    if number == 3:
        found.append(("rare.key", "once"))
    if number == 7:
        found.append(("app.request_id", "again"))
    return found


def spans(first: int, count: int, attributes=mixed, *, start_ns: int = 0) -> SignalBatch:
    """`count` spans numbered from `first`, four to a trace."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value="col"))
    scope_spans = resource_spans.scope_spans.add()
    start = start_ns or time.time_ns()
    for number in range(first, first + count):
        span = scope_spans.spans.add()
        span.trace_id = (number // 4 + 1).to_bytes(16, "big")
        span.span_id = (number + 1).to_bytes(8, "big")
        span.name = "op"
        for key, value in attributes(number):
            span.attributes.add(key=key, value=any_value(value))
        span.start_time_unix_nano = start + number
        span.end_time_unix_nano = start + number + 1000
    return decode_traces(request)


def attributes_by_span(store: DuckDBStore, traces: range) -> dict[str, dict[str, Any]]:
    """{span id: attributes} of the traces numbered `traces`, each of which must be there."""
    found: dict[str, dict[str, Any]] = {}
    for number in traces:
        trace = store.trace(f"{number:032x}")
        assert trace is not None
        found |= {span["span_id"]: span["attributes"] for span in trace["spans"]}
    return found


def split_columns_of(path: Path) -> list[SplitColumn]:
    """The attribute keys a segment file holds in columns of their own, by key."""
    names = duckdb.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()
    return sorted(split for row in names if (split := SplitColumn.named(row[0])) is not None)


def split_keys(path: Path) -> list[str]:
    """The attribute keys a segment file holds in columns of their own."""
    return [split.key for split in split_columns_of(path)]


def test_a_segments_common_keys_are_split_and_every_span_reads_back_as_sent(
    tmp_path: Path,
) -> None:
    table = DuckDBStore(tmp_path / "table")
    compact = DuckDBStore(tmp_path / "compact", segment_rows=SEGMENT)
    for store in (table, compact):
        store.write([spans(0, 250)])  # two segments (the second a slice from row 100) + 50 rows
    assert attributes_by_span(compact, range(1, 64)) == attributes_by_span(table, range(1, 64))
    twice = attributes_by_span(compact, range(2, 3))[f"{8:016x}"]
    assert twice["app.request_id"] == "again"  # the last, as the table reads it
    segment = tmp_path / "compact" / "segments" / "spans-000001.parquet"
    assert split_keys(segment) == sorted(
        [
            "http.route",
            "app.request_id",
            "http.response.status_code",
            "app.ratio",
            "app.cache_hit",
            "app.tags",
            "app.ctx",
            "app.blob",
            "a 'quoted' \"key\"",
            "db.system.name",
        ]
    )  # not the rare key
    # Each key's values have one type in the segment: its column holds the values alone.
    assert dict(split_columns_of(segment))["http.response.status_code"] == ValueType.INT
    assert all(split.type is not None for split in split_columns_of(segment))
    for key, value in [("http.route", "/r/2"), ("app.request_id", "again"), ("rare.key", "once")]:
        query = TraceQuery(attributes=((key, value),), limit=1000)
        assert len(compact.traces(query)) == len(table.traces(query)) > 0
    table.close()
    compact.close()


def other(number: int) -> list[tuple[str, Any]]:
    return [("peer.service", f"p{number % 2}"), ("http.route", number)]


def test_segments_splitting_different_keys_read_together_after_reopening_and_pruning(
    tmp_path: Path,
) -> None:
    now = time.time_ns()
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    old = lambda n: [("old.only", n)]  # noqa: E731 - a key no later segment has
    store.write([spans(0, 100, old, start_ns=now - 48 * HOUR_NS)])  # pruned below
    store.write([spans(100, 100, start_ns=now)])
    store.close()
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)  # learns the keys from the files
    store.write([spans(200, 100, lambda n: [], start_ns=now)])  # nothing to split
    store.write([spans(300, 100, other, start_ns=now)])
    found = attributes_by_span(store, range(26, 101))
    assert store.prune(older_than_ns=now - 24 * HOUR_NS) == 100  # spans 0-99: traces 1-25
    assert attributes_by_span(store, range(26, 101)) == found
    assert found[f"{101:016x}"]["app.ctx"] == {"n": 100}
    assert found[f"{201:016x}"] == {}
    assert found[f"{301:016x}"] == {"peer.service": "p0", "http.route": 300}
    store.close()
    shutil.copytree(tmp_path, tmp_path.parent / "copy")
    reader = DuckDBStore(tmp_path.parent / "copy", read_only=True)
    assert attributes_by_span(reader, range(26, 101)) == found
    reader.close()


def test_split_and_rebuilt_keep_every_entry_repeats_and_null_values() -> None:
    entry = lambda key, kind, value: {"key": key, "type": kind, "value": value}  # noqa: E731
    lists = [
        [entry("a", 1, "x"), entry("b", 3, "1"), entry("c", 1, None)],
        [entry("b", None, None)],
        [],
        [entry("a", 1, ""), entry("c", 1, "z"), entry("a", 1, "again")],  # "a" repeated
    ] * 10_000  # three batches of the split
    lists[1] = [entry("b", 6, None), entry("d", 1, "only")]  # "d": in one row, too rare
    for row in range(36_000, 40_000, 4):  # "e": only in the last batch
        lists[row] = [*lists[row], entry("e", 2, "true")]
    rows = pa.table({"n": range(len(lists)), "attributes": pa.array(lists, ATTRIBUTES)})
    segment_keys = SegmentKeys(rows)
    keys = segment_keys.common()
    assert keys == ["a", "b", "c", "e"]
    # "a" and "e" have one type and a value in every entry: their values alone; "b" has three
    # types (one null), "c" a null value: type and value; "f", which no row has, too.
    columns = segment_keys.columns([*keys, "f"])
    assert columns == (
        SplitColumn("a", 1), SplitColumn("b"), SplitColumn("c"), SplitColumn("e", 2),
        SplitColumn("f"),
    )  # fmt: skip
    for split in (columns, tuple(SplitColumn(key) for key in keys)):  # and all type and value
        out = pa.Table.from_batches(split_batches(segment_keys, split))  # noqa: F841 - read by DuckDB
        left = duckdb.execute("SELECT attributes FROM out WHERE n IN (1, 3) ORDER BY n")
        assert [row[0] for row in left.fetchall()] == [
            [entry("d", 1, "only")], [entry("a", 1, "again")]
        ]  # fmt: skip
        found = duckdb.execute(f"SELECT {rebuilt(split)} FROM out ORDER BY n").fetchall()
        assert [row[0] for row in found] == lists


def test_a_segment_splits_its_keys_and_those_of_the_one_before_while_at_most_64() -> None:
    def rows(*keys: str) -> pa.Table:
        lists = [[{"key": key, "type": 1, "value": "v"} for key in keys]] * 10
        return pa.table({"attributes": pa.array(lists, ATTRIBUTES)})

    assert SegmentKeys(rows("b")).after(("a", "b")) == ("a", "b")  # "a" a column of nulls
    assert SegmentKeys(rows("b", "c")).after(("a", "b")) == ("a", "b", "c")
    many = tuple(f"k{n:02d}" for n in range(MAX_KEYS))
    assert SegmentKeys(rows("b", "c")).after(many) == ("b", "c")  # too many together: a new set


def test_segments_of_type_and_value_columns_read_with_those_of_values_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first segment as a steth from before values alone wrote them: type and value.
    as_before = lambda self, keys: tuple(SplitColumn(key) for key in keys)  # noqa: E731
    monkeypatch.setattr(SegmentKeys, "columns", as_before)
    table = DuckDBStore(tmp_path / "table")
    compact = DuckDBStore(tmp_path / "compact", segment_rows=SEGMENT)
    for store in (table, compact):
        store.write([spans(0, 100)])
    monkeypatch.undo()
    for store in (table, compact):
        store.write([spans(100, 100)])
    folder = tmp_path / "compact" / "segments"
    first, second = (split_columns_of(folder / f"spans-00000{n}.parquet") for n in (1, 2))
    assert [split.key for split in first] == [split.key for split in second]
    assert all(split.type is None for split in first)
    assert all(split.type is not None for split in second)
    compact.close()
    compact = DuckDBStore(tmp_path / "compact", read_only=True)  # learns both from the files
    assert attributes_by_span(compact, range(1, 51)) == attributes_by_span(table, range(1, 51))
    for key, value in [("http.route", "/r/2"), ("http.response.status_code", "201")]:
        query = TraceQuery(attributes=((key, value),), limit=1000)
        assert len(compact.traces(query)) == len(table.traces(query)) > 0
    table.close()
    compact.close()
