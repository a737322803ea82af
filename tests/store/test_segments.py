"""Spans and log records sealed in Parquet segments: every row readable once, wherever the
directory goes, whatever crashed, and retention that drops whole segments but never imported
rows."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from stethoscope.errors import DataError
from stethoscope.logs.masking import MASKED_COLUMN
from stethoscope.model.batch import SignalBatch
from stethoscope.model.schema import TABLES
from stethoscope.sources.otlp.decode import decode_logs, decode_traces
from stethoscope.store.base import LogQuery, TemplateRow, TraceQuery
from stethoscope.store.duckdb.compaction import compact
from stethoscope.store.duckdb.schema import SCHEMA_VERSION, TEMPLATES_DDL
from stethoscope.store.duckdb.store import DuckDBStore

SEGMENT = 100  # rows a segment takes at once in these tests (the store's default: 122,880)
HOUR_NS = 3600 * 10**9


def spans(first: int, count: int, *, start_ns: int = 0, imported: bool = False) -> SignalBatch:
    """`count` spans numbered from `first`, four to a trace, each with one attribute."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value="seg"))
    scope_spans = resource_spans.scope_spans.add()
    start = start_ns or time.time_ns()
    for number in range(first, first + count):
        span = scope_spans.spans.add()
        span.trace_id = (number // 4 + 1).to_bytes(16, "big")
        span.span_id = (number + 1).to_bytes(8, "big")
        span.name = f"op-{number % 3}"
        span.attributes.add(key="http.route", value=AnyValue(string_value=f"/r/{number % 5}"))
        span.start_time_unix_nano = start + number
        span.end_time_unix_nano = start + number + 1000
    batch = decode_traces(request)
    if imported:
        table = batch.tables["spans"]
        column = table.schema.get_field_index("imported")
        batch.tables["spans"] = table.set_column(column, "imported", pa.array([True] * count))
    return batch


def records(first: int, count: int, *, start_ns: int = 0) -> SignalBatch:
    """`count` log records numbered from `first`, each in the trace of span `first` (spans())."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name", value=AnyValue(string_value="seg"))
    scope_logs = resource_logs.scope_logs.add()
    start = start_ns or time.time_ns()
    for number in range(first, first + count):
        record = scope_logs.log_records.add()
        record.time_unix_nano = start + number
        record.body.string_value = f"record {number}"
        record.trace_id = (first // 4 + 1).to_bytes(16, "big")
    batch = decode_logs(request)
    batch.tables["logs"] = batch.tables["logs"].drop_columns([MASKED_COLUMN])
    return batch


def traced_spans(ids: list[tuple[int, int]]) -> SignalBatch:
    """A span for each (trace id, span id)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value="seg"))
    scope_spans = resource_spans.scope_spans.add()
    start = time.time_ns()
    for trace_id, span_id in ids:
        span = scope_spans.spans.add()
        span.trace_id = trace_id.to_bytes(16, "big")
        span.span_id = span_id.to_bytes(8, "big")
        span.name = "op"
        span.start_time_unix_nano = start + span_id
        span.end_time_unix_nano = start + span_id + 1000
    return decode_traces(request)


def indexed_files(store: DuckDBStore) -> list[str]:
    found = store.cursor().execute("SELECT DISTINCT file FROM segment_traces ORDER BY 1")
    return [row[0] for row in found.fetchall()]


def bodies(store: DuckDBStore) -> list[str]:
    return [r["body"] for r in store.logs(LogQuery(limit=100_000))]


def span_ids(store: DuckDBStore) -> list[int]:
    found = store.cursor().execute("SELECT span_id FROM spans ORDER BY span_id").fetchall()
    return [row[0] for row in found]


def segment_files(data: Path) -> list[str]:
    folder = data / "segments"
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def test_whole_segments_are_written_at_once_and_the_rest_sealed_when_it_fills_one(
    tmp_path: Path,
) -> None:
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 250)])  # two segments' worth at once, 50 left in the table
    assert segment_files(tmp_path) == ["spans-000001.parquet", "spans-000002.parquet"]
    store.write([spans(250, 30)])  # 80 in the table: not a segment yet
    assert len(segment_files(tmp_path)) == 2
    store.write([spans(280, 20)])  # 100: sealed
    assert segment_files(tmp_path)[-1] == "spans-000003.parquet"
    assert span_ids(store) == list(range(1, 301))
    rows = store.cursor().execute("SELECT count(*) FROM span_rows").fetchone()
    assert rows == (0,)
    trace = store.trace(f"{2:032x}")  # spans 4-7, half of it written in each of two writes
    assert trace is not None
    assert [s["span_id"] for s in trace["spans"]] == [f"{n:016x}" for n in range(5, 9)]
    assert trace["spans"][0]["attributes"] == {"http.route": "/r/4"}
    found = store.traces(TraceQuery(attributes=(("http.route", "/r/0"),), limit=1000))
    assert len(found) == 60  # of 75 traces of four spans, those with one numbered 0, 5, 10 ...
    store.close()


def test_log_records_are_sealed_and_found_by_trace_and_text(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 4), records(0, 130)])
    store.write([records(130, 80)])  # 30 + 80 in the table: sealed
    assert segment_files(tmp_path) == ["logs-000001.parquet", "logs-000002.parquet"]
    assert bodies(store) == [f"record {n}" for n in range(210)]
    trace = store.trace(f"{1:032x}")
    assert trace is not None and len(trace["logs"]) == 130
    found = store.logs(LogQuery(text="record 20"))
    assert [r["body"] for r in found] == ["record 20", *(f"record {n}" for n in range(200, 210))]
    store.close()


def test_log_records_from_an_older_log_lacking_columns_are_sealed_with_nulls(
    tmp_path: Path,
) -> None:
    older = records(0, 100)  # as a write-ahead log from before templates holds them
    older.tables["logs"] = older.tables["logs"].drop_columns(["template_id", "template_params"])
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([older])
    assert segment_files(tmp_path) == ["logs-000001.parquet"]
    found = store.logs(LogQuery(limit=1000))
    assert len(found) == 100 and {r["template_id"] for r in found} == {None}
    store.close()


def test_a_copied_data_directory_reads_its_segments_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DuckDBStore(tmp_path / "original", segment_rows=SEGMENT)
    store.write([spans(0, 120)])
    store.close()
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tmp_path / "original", copy)
    shutil.rmtree(tmp_path / "original")
    monkeypatch.chdir(tmp_path)
    reader = DuckDBStore(copy, read_only=True)
    assert span_ids(reader) == list(range(1, 121))
    reader.close()


def test_a_failed_write_leaves_no_segment_and_can_be_made_again(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 100)], seqs=[1])
    bad = TemplateRow(  # an id the store cannot hold
        service="seg", template_id=-1, ordinal=0, template="x", overflow=False,
        first_seen_ns=0, last_seen_ns=0, example="x",
    )  # fmt: skip
    with pytest.raises(duckdb.Error):
        store.write([spans(100, 100)], seqs=[2], templates=[bad])
    assert segment_files(tmp_path) == ["spans-000001.parquet"]  # the second one deleted
    assert span_ids(store) == list(range(1, 101))
    assert store.applied_seq() == 1
    assert store.write([spans(100, 100)], seqs=[2]) == 2  # replayed from the log
    assert span_ids(store) == list(range(1, 201))
    store.close()


def test_a_segment_a_crash_left_unlisted_is_deleted_when_a_writer_opens(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 100)], seqs=[1])
    store.close()
    # What a kill -9 between writing a segment and committing its transaction leaves.
    folder = tmp_path / "segments"
    shutil.copy(folder / "spans-000001.parquet", folder / "spans-000002.parquet")

    reader = DuckDBStore(tmp_path, read_only=True)
    assert span_ids(reader) == list(range(1, 101))  # never listed, never read
    reader.close()
    assert "spans-000002.parquet" in segment_files(tmp_path)  # a reader deletes nothing
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    assert segment_files(tmp_path) == ["spans-000001.parquet"]
    store.write([spans(100, 100)], seqs=[2])
    assert span_ids(store) == list(range(1, 201))
    store.close()


def test_retention_drops_whole_segments_of_old_live_spans_and_keeps_imported_ones(
    tmp_path: Path,
) -> None:
    now = time.time_ns()
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 100, start_ns=now - 48 * HOUR_NS)])  # old, live
    store.write([spans(100, 100, start_ns=now - 48 * HOUR_NS, imported=True)])
    store.write([spans(200, 100, start_ns=now)])
    store.write([spans(300, 10, start_ns=now - 48 * HOUR_NS)])  # old, live, not sealed
    store.write([records(0, 100, start_ns=now - 48 * HOUR_NS)])
    assert store.prune(older_than_ns=now - 24 * HOUR_NS) == 210
    assert span_ids(store) == list(range(101, 301))
    assert bodies(store) == []
    assert "spans-000001.parquet" in segment_files(tmp_path)  # a query may still be opening it
    assert store.trace(f"{1:032x}") is None
    kept = ["spans-000002.parquet", "spans-000003.parquet"]
    assert indexed_files(store) == [f"segments/{name}" for name in kept]
    assert store.prune(older_than_ns=now - 24 * HOUR_NS) == 0
    assert segment_files(tmp_path) == ["spans-000002.parquet", "spans-000003.parquet"]
    store.close()
    reopened = DuckDBStore(tmp_path, read_only=True)
    assert span_ids(reopened) == list(range(101, 301))
    reopened.close()


def test_a_compact_store_reopened_without_sealing_reads_and_grows(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 100), records(0, 100)])
    store.close()
    store = DuckDBStore(tmp_path)  # as `steth up` without --compact-store opens it
    store.write([spans(100, 300), records(100, 300)])
    assert segment_files(tmp_path) == ["logs-000002.parquet", "spans-000001.parquet"]
    assert span_ids(store) == list(range(1, 401))
    assert bodies(store) == [f"record {n}" for n in range(400)]
    trace = store.trace(f"{1:032x}")  # its spans and records, all in segments
    assert trace is not None and len(trace["spans"]) == 4 and len(trace["logs"]) == 100
    store.close()


# Traces whose ids share their first 32 bits, the trace index's key, and one that does not.
TRACE_A = 0x1234_5678 << 96 | 1
TRACE_B = 0x1234_5678 << 96 | 2
TRACE_C = 0x9ABC_DEF0 << 96 | 1


def test_a_trace_is_read_whole_from_the_segments_its_index_names_and_the_table(
    tmp_path: Path,
) -> None:
    filler = [(n // 4 + 1, 1000 + n) for n in range(200)]  # traces of other first bits
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([traced_spans([(TRACE_C, 9), *filler[:99]])])
    store.write([traced_spans([(TRACE_A, 1), (TRACE_A, 2), (TRACE_B, 3), (TRACE_C, 10)])])
    store.write([traced_spans(filler[99:195])])  # with the four above: sealed
    store.write([traced_spans([(TRACE_A, 4), (TRACE_B, 5)])])  # in the table, not sealed
    store.write([records(0, 100)])  # in the trace of span 1 (spans()), sealed
    assert segment_files(tmp_path) == [
        "logs-000003.parquet", "spans-000001.parquet", "spans-000002.parquet"
    ]  # fmt: skip
    expected = {
        TRACE_A: ["0000000000000001", "0000000000000002", "0000000000000004"],
        TRACE_B: ["0000000000000003", "0000000000000005"],
        TRACE_C: ["0000000000000009", "000000000000000a"],
    }
    for read_only in (False, True):  # the writer, then a reader of the closed store
        if read_only:
            store.close()
            store = DuckDBStore(tmp_path, read_only=True)
        for trace_id, span_ids_hex in expected.items():
            trace = store.trace(f"{trace_id:032x}")
            assert trace is not None
            assert sorted(s["span_id"] for s in trace["spans"]) == span_ids_hex
            assert trace["logs"] == []
        with_logs = store.trace(f"{1:032x}")
        assert with_logs is not None and len(with_logs["logs"]) == 100
        assert len(store.logs(LogQuery(trace_id=f"{1:032x}", limit=1000))) == 100
        assert store.logs(LogQuery(trace_id=f"{TRACE_A:032x}")) == []
        assert store.trace(f"{TRACE_A + 7:032x}") is None
        # The first 8 digits are the index's key, which A and B share.
        assert store.trace_ids(f"{TRACE_A:032x}"[:8]) == [f"{TRACE_A:032x}", f"{TRACE_B:032x}"]
        assert store.trace_ids(f"{TRACE_C:032x}"[:12]) == [f"{TRACE_C:032x}"]
        summaries = {t["trace_id"]: t for t in store.traces(TraceQuery(limit=1000))}
        for trace_id, span_ids_hex in expected.items():
            assert summaries[f"{trace_id:032x}"]["span_count"] == len(span_ids_hex)
    store.close()


def test_a_segment_keeps_its_rows_in_small_row_groups_each_with_a_trace_id_bloom_filter(
    tmp_path: Path,
) -> None:
    # A column chunk is one page: a lookup decodes every column of each row group the trace
    # ids' bloom filters let through, so the groups must be small (segment_writer.py).
    count = 60_000
    store = DuckDBStore(tmp_path, segment_rows=count)
    store.write([spans(0, count)])
    [name] = segment_files(tmp_path)
    groups = store.cursor().execute(
        "SELECT row_group_id, any_value(row_group_num_rows), "
        "bool_and(bloom_filter_offset IS NOT NULL) FILTER (WHERE path_in_schema = 'trace_hi') "
        "FROM parquet_metadata(?) GROUP BY 1 ORDER BY 1",
        [str(tmp_path / "segments" / name)],
    )
    assert groups.fetchall() == [
        (0, 24_576, True), (1, 24_576, True), (2, 10_848, True)
    ]  # fmt: skip
    for number in (0, 30_000, count - 1):  # a trace in each group
        trace = store.trace(f"{number // 4 + 1:032x}")
        assert trace is not None and len(trace["spans"]) == 4
    store.close()


def test_segments_encode_few_valued_columns_by_dictionary_and_others_by_view(
    tmp_path: Path,
) -> None:
    # What keeps a segment as small as DuckDB's writer made it (segment_writer.py): spans'
    # distinct ids and times as deltas, log records' plain, few-valued columns by dictionary.
    count = 8_000
    store = DuckDBStore(tmp_path, segment_rows=count)
    store.write([spans(0, count), records(0, count)])
    encodings = {}
    for name in segment_files(tmp_path):
        view = name.split("-")[0]
        found = store.cursor().execute(
            "SELECT path_in_schema, any_value(encodings) FROM parquet_metadata(?) GROUP BY 1",
            [str(tmp_path / "segments" / name)],
        )
        encodings[view] = dict(found.fetchall())
    store.close()
    assert "DELTA_BINARY_PACKED" in encodings["spans"]["span_id"]
    assert "DELTA_BINARY_PACKED" in encodings["spans"]["start_ns"]
    for view in ("spans", "logs"):
        assert "DICTIONARY" in encodings[view]["service"]
    assert "DICTIONARY" not in encodings["logs"]["time_ns"]
    assert "DELTA" not in encodings["logs"]["time_ns"]


def test_a_version_3_store_is_read_without_its_trace_index_and_a_writer_builds_it(
    tmp_path: Path,
) -> None:
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([traced_spans([(TRACE_A, 1), *((TRACE_C, n) for n in range(2, 101))])])
    store.write([traced_spans([(TRACE_A, 101), (TRACE_B, 102)]), records(0, 100)])
    store.close()
    con = duckdb.connect(str(tmp_path / "steth.duckdb"))  # as steth with version 3 left it
    con.execute("DROP TABLE segment_traces")
    con.execute("UPDATE meta SET value = 3 WHERE key = 'schema_version'")
    con.close()

    def trace_spans(reader: DuckDBStore) -> int:
        trace = reader.trace(f"{TRACE_A:032x}")
        return len(trace["spans"]) if trace else 0

    reader = DuckDBStore(tmp_path, read_only=True)
    assert reader.schema_version == 3 and trace_spans(reader) == 2
    reader.close()
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    assert store.schema_version == SCHEMA_VERSION
    assert indexed_files(store) == ["segments/logs-000002.parquet", "segments/spans-000001.parquet"]
    assert trace_spans(store) == 2
    store.close()
    reader = DuckDBStore(tmp_path, read_only=True)
    assert reader.schema_version == SCHEMA_VERSION and trace_spans(reader) == 2
    reader.close()


def make_version_2_store(data: Path) -> None:
    """A store as steth with schema version 2 left it: spans in a plain table."""
    data.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(data / "steth.duckdb"))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', 2)")
    written = spans(0, 8)
    for name, schema in TABLES.items():
        rows = written.tables.get(name, pa.Table.from_pylist([], schema=schema))  # noqa: F841
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM rows")
    con.execute(TEMPLATES_DDL)  # version 2 added it
    con.close()


def test_a_version_2_store_reads_as_it_is_and_a_writer_migrates_it(tmp_path: Path) -> None:
    make_version_2_store(tmp_path)
    reader = DuckDBStore(tmp_path, read_only=True)
    assert reader.schema_version == 2
    trace = reader.trace(f"{1:032x}")
    assert trace is not None and len(trace["spans"]) == 4
    reader.close()

    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    assert store.schema_version == SCHEMA_VERSION
    assert span_ids(store) == list(range(1, 9))
    store.write([spans(8, 100)])
    assert span_ids(store) == list(range(1, 109))
    assert segment_files(tmp_path) == ["spans-000001.parquet"]
    store.close()


def rows_waiting(store: DuckDBStore) -> tuple[int, int]:
    """(spans, log records) in the rows tables, not sealed."""
    cursor = store.cursor()
    found = cursor.execute(
        "SELECT (SELECT count(*) FROM span_rows), (SELECT count(*) FROM log_rows)"
    )
    row = found.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_compact_writer_closing_seals_what_waits_and_the_next_takes_it_back(
    tmp_path: Path,
) -> None:
    now = time.time_ns()
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 130, start_ns=now), records(0, 40, start_ns=now)])
    assert rows_waiting(store) == (30, 40)
    store.close()
    # At rest: all in segments, the rows that waited in short ones, read as before.
    assert segment_files(tmp_path) == [
        "logs-000003.parquet", "spans-000001.parquet", "spans-000002.parquet"
    ]  # fmt: skip
    reader = DuckDBStore(tmp_path, read_only=True)
    assert rows_waiting(reader) == (0, 0)
    assert span_ids(reader) == list(range(1, 131))
    trace = reader.trace(f"{32:032x}")  # spans 124-127, in the short segment
    assert trace is not None and [s["attributes"] for s in trace["spans"]] == [
        {"http.route": f"/r/{n % 5}"} for n in range(124, 128)
    ]
    reader.close()
    # Three more runs of a writer, each adding less than a segment: the short segments go back
    # into the tables as a writer opens, so none is left behind but the last run's.
    for run, first in enumerate((130, 160, 190)):
        store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
        assert rows_waiting(store) == (first - 100, 40 + 10 * run)
        assert not any(name.startswith("logs") for name in segment_files(tmp_path))
        store.write([spans(first, 30, start_ns=now), records(40 + 10 * run, 10, start_ns=now)])
        store.close()
    # The third run's write filled the table (90 taken back + 30): one segment of 120.
    spans_files = [name for name in segment_files(tmp_path) if name.startswith("spans")]
    assert spans_files == ["spans-000001.parquet", "spans-000008.parquet"]
    reader = DuckDBStore(tmp_path, read_only=True)
    assert rows_waiting(reader) == (0, 0)
    assert span_ids(reader) == list(range(1, 221))
    assert bodies(reader) == [f"record {n}" for n in range(70)]
    assert len(indexed_files(reader)) == 3  # every listed file, none of the removed ones
    reader.close()


def test_imported_rows_taken_back_from_a_short_segment_stay_exempt_from_retention(
    tmp_path: Path,
) -> None:
    old = time.time_ns() - 48 * HOUR_NS
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 20, start_ns=old, imported=True), spans(20, 10, start_ns=old)])
    store.close()
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    assert rows_waiting(store) == (30, 0)
    assert store.prune(older_than_ns=old + HOUR_NS) == 10  # the live ones alone
    assert span_ids(store) == list(range(1, 21))
    store.close()


def test_a_table_writer_neither_seals_at_close_nor_takes_segments_back(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 30)])
    store.close()  # a short segment
    store = DuckDBStore(tmp_path)  # as `steth up` without --compact-store opens it
    assert rows_waiting(store) == (0, 0)
    store.write([spans(30, 10)])
    store.close()
    assert segment_files(tmp_path) == ["spans-000001.parquet"]
    reader = DuckDBStore(tmp_path, read_only=True)
    assert rows_waiting(reader) == (10, 0)
    assert span_ids(reader) == list(range(1, 41))
    reader.close()


def test_rows_that_cannot_be_sealed_at_close_stay_stored_with_a_clear_error(
    tmp_path: Path,
) -> None:
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 30)])
    (tmp_path / "segments").write_text("a file where the segments' folder goes")
    with pytest.raises(DataError, match="could not seal the 30 rows waiting in span_rows"):
        store.close()
    reader = DuckDBStore(tmp_path, read_only=True)
    assert rows_waiting(reader) == (30, 0)
    assert span_ids(reader) == list(range(1, 31))
    reader.close()


def table_digests(store: DuckDBStore) -> dict[str, tuple[int, int]]:
    """(rows, a hash of them all) of every table in the store but the rows tables."""
    cursor = store.cursor()
    names = [row[0] for row in cursor.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    digests = {}
    for name in sorted(set(names) - {"span_rows", "log_rows"}):
        found = cursor.execute(f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {name} t")
        row = found.fetchone()
        assert row is not None
        digests[name] = (int(row[0]), int(row[1]))
    return digests


def random_spans(count: int, seed: int) -> SignalBatch:
    """`count` spans with random ids and a random request id each: what compresses as little
    as real traffic does."""
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value="seg"))
    scope_spans = resource_spans.scope_spans.add()
    start = time.time_ns()
    for _ in range(count):
        span = scope_spans.spans.add()
        span.trace_id, span.span_id = rng.randbytes(16), rng.randbytes(8)
        span.name = "op"
        value = AnyValue(string_value=rng.randbytes(16).hex())
        span.attributes.add(key="app.request_id", value=value)
        span.start_time_unix_nano = start + rng.getrandbits(40)
        span.end_time_unix_nano = span.start_time_unix_nano + rng.getrandbits(30)
    return decode_traces(request)


def test_a_store_file_left_mostly_free_by_sealing_at_close_is_copied_small(
    tmp_path: Path,
) -> None:
    store_file = tmp_path / "steth.duckdb"
    store = DuckDBStore(tmp_path, segment_rows=100_000)
    store.write([random_spans(90_000, seed=1)], seqs=[1])  # waits in span_rows
    store.cursor().execute("CHECKPOINT")  # as DuckDB does when its own log fills: in the file
    held = store_file.stat().st_size
    assert held > 6 * 2**20
    store.close()  # sealed: the file's blocks holding those rows are free
    assert store_file.stat().st_size < held / 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["segments", "steth.duckdb"]
    reader = DuckDBStore(tmp_path, read_only=True)
    ids = span_ids(reader)
    assert len(ids) == 90_000
    before = table_digests(reader)
    assert reader.applied_seq() == 1
    reader.close()
    # A writer opening the copy takes the short segment back and goes on from log position 1.
    store = DuckDBStore(tmp_path, segment_rows=100_000)
    assert rows_waiting(store) == (90_000, 0)
    assert store.applied_seq() == 1
    store.write([random_spans(10_000, seed=2)], seqs=[2])  # fills a segment
    assert segment_files(tmp_path) == ["spans-000002.parquet"]
    store.close()
    reader = DuckDBStore(tmp_path, read_only=True)
    assert len(span_ids(reader)) == 100_000 and set(ids) <= set(span_ids(reader))
    after = table_digests(reader)
    assert after["resources"] == before["resources"] and after["scopes"] == before["scopes"]
    assert reader.applied_seq() == 2
    reader.close()


def test_a_copy_of_the_store_file_a_crash_cut_short_is_deleted_by_the_next_writer(
    tmp_path: Path,
) -> None:
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 30)])
    store.close()
    for name in ("steth.duckdb.compact", "steth.duckdb.compact.wal"):
        (tmp_path / name).write_bytes(b"what a kill -9 mid-copy leaves")
    DuckDBStore(tmp_path, read_only=True).close()
    assert (tmp_path / "steth.duckdb.compact").exists()  # a reader deletes nothing
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    assert not list(tmp_path.glob("steth.duckdb.compact*"))
    assert span_ids(store) == list(range(1, 31))
    store.close()


def test_a_store_another_writer_has_open_is_not_replaced_by_a_copy(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path, segment_rows=SEGMENT)
    store.write([spans(0, 30)])
    store.close()
    store_file = tmp_path / "steth.duckdb"
    inode = store_file.stat().st_ino
    holder = subprocess.Popen(  # another process's writer, as `steth import` into the store
        [sys.executable, "-c",
         "import sys\n"
         "from pathlib import Path\n"
         "from stethoscope.store.duckdb.store import DuckDBStore\n"
         f"store = DuckDBStore(Path({str(tmp_path)!r}))\n"
         "print('open', flush=True)\n"
         "sys.stdin.read()\n"
         "store.close()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        compact(store_file)
        assert store_file.stat().st_ino == inode
        assert not list(tmp_path.glob("steth.duckdb.compact*"))
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0
