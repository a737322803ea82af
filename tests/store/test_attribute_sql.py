"""Attributes read by key from a compact store's split columns answer as the stored list does:
error counts, attribute filters and peers, for keys split in some segments and not others,
repeated keys and values that are no number; and a store's views from before still read."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp.decode import decode_traces
from stethoscope.sources.records import any_value
from stethoscope.store.base import TraceQuery, Window
from stethoscope.store.duckdb.attribute_sql import UNSPLIT
from stethoscope.store.duckdb.store import DuckDBStore

SEGMENT = 100
MINUTE_NS = 60 * 10**9


def answered(number: int) -> list[tuple[str, Any]]:
    """Span `number`'s attributes: an HTTP status on most spans (500 on every third, as text
    on some), a second status entry on some, the older status key and a text status on few,
    and a peer named by address and port."""
    found: list[tuple[str, Any]] = [("http.route", f"/r/{number % 4}")]
    status: Any = 200 + (number % 3) * 150  # 200, 350, 500
    if number % 10 == 1:
        status = str(status)
    if number % 9 != 4:
        found.append(("http.response.status_code", status))
    if number % 7 == 0:
        found.append(("http.response.status_code", 502))  # a repeat: the highest counts
    if number % 97 == 5:
        found.append(("http.status_code", 503))  # too rare to be split
    if number == 13:
        found.append(("http.response.status_code", "oops"))
    found += [("server.address", f"db{number % 2}"), ("server.port", 5432 + number % 2)]
    if number % 60 == 0:
        found.append(("rare.key", f"v{number}"))
    return found


def spans(first: int, count: int, attributes=answered, *, start_ns: int) -> SignalBatch:
    """`count` client spans numbered from `first`, four to a trace, each its own parent."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value="api"))
    scope_spans = resource_spans.scope_spans.add()
    for number in range(first, first + count):
        span = scope_spans.spans.add()
        span.trace_id = (number // 4 + 1).to_bytes(16, "big")
        span.span_id = (number + 1).to_bytes(8, "big")
        span.name = "call"
        span.kind = 3  # client: a call to an uninstrumented peer
        for key, value in attributes(number):
            span.attributes.add(key=key, value=any_value(value))
        span.start_time_unix_nano = start_ns + number
        span.end_time_unix_nano = start_ns + number + 1000
    return decode_traces(request)


def unsplit(number: int) -> list[tuple[str, Any]]:
    """Attributes no segment splits: each key on too few spans."""
    return [(f"k{number % 70}", "x"), ("http.status_code", 500 + number % 2)]


def write_both(tmp_path: Path) -> tuple[DuckDBStore, DuckDBStore, int]:
    """A table store and a compact one with the same spans: two segments of split keys, one
    of keys no segment split, and rows not sealed yet."""
    start = time.time_ns() - 10 * MINUTE_NS
    table = DuckDBStore(tmp_path / "table")
    compact = DuckDBStore(tmp_path / "compact", segment_rows=SEGMENT)
    for store in (table, compact):
        store.write([spans(0, 200, start_ns=start)])
        store.write([spans(200, 100, unsplit, start_ns=start)])
        store.write([spans(300, 60, start_ns=start)])
    return table, compact, start


def answers(store: DuckDBStore, start: int) -> dict[str, Any]:
    """What the queries that read attributes by key answer."""
    window = Window(since_ns=start, until_ns=start + MINUTE_NS)
    peers = store.peer_profile(window, MINUTE_NS).to_pylist()
    return {
        "services": store.services(Window()),
        "filters": {
            (key, value): [t["trace_id"] for t in store.traces(query)]
            for key, value in [
                ("http.route", "/r/1"),
                ("http.response.status_code", "502"),
                ("http.response.status_code", "oops"),
                ("http.status_code", "501"),
                ("rare.key", "v120"),
                ("k3", "x"),
                ("server.port", "5433"),
                ("no.such.key", "x"),
            ]
            for query in [TraceQuery(attributes=((key, value),), limit=1000)]
        },
        "peers": sorted(
            (row["peer"], row["port"], row["calls"], row["errors"])
            for row in peers
            if row["bucket"] is None and row["instance"] is None
        ),
    }


def test_queries_by_key_on_split_columns_answer_as_the_attribute_list_does(
    tmp_path: Path,
) -> None:
    table, compact, start = write_both(tmp_path)
    expected = answers(table, start)
    assert expected["services"][0]["error_spans"] > 100
    assert all(expected["filters"][key] for key in list(expected["filters"])[:-1])
    assert expected["filters"][("no.such.key", "x")] == []
    assert {peer for peer, *_ in expected["peers"]} == {"db0:5432", "db1:5433", "call"}
    view = compact.cursor().execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'spans'"
    )
    names = {row[0] for row in view.fetchall()}
    assert {UNSPLIT, "attributes.http.response.status_code", "attributes.server.port"} <= names
    assert answers(compact, start) == expected
    table.close()
    compact.close()


def closed_with_view_copy(
    tmp_path: Path, name: str
) -> tuple[dict[str, Any], int, duckdb.DuckDBPyConnection]:
    """Both stores written and closed: the table store's answers, the start time, and a
    connection to the compact store's file holding a copy of its `spans` view named `name`."""
    table, compact, start = write_both(tmp_path)
    expected = answers(table, start)
    table.close()
    compact.close()
    con = duckdb.connect(str(tmp_path / "compact" / "steth.duckdb"))
    con.execute(f"SET file_search_path = '{tmp_path / 'compact'}'")
    [(full,)] = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'spans'").fetchall()
    con.execute(full.replace("VIEW spans AS", f"VIEW {name} AS", 1))
    return expected, start, con


def test_a_compact_store_with_views_from_before_reads_the_same_and_a_writer_renews_them(
    tmp_path: Path,
) -> None:
    expected, start, con = closed_with_view_copy(tmp_path, "spans_full")
    columns = [row[0] for row in con.execute("DESCRIBE span_rows").fetchall()]
    listed = ", ".join(f'"{name}"' for name in columns)
    con.execute(f"CREATE OR REPLACE VIEW spans AS SELECT {listed} FROM spans_full")  # as before
    con.close()
    reader = DuckDBStore(tmp_path / "compact", read_only=True)
    assert answers(reader, start) == expected
    reader.close()
    writer = DuckDBStore(tmp_path / "compact", segment_rows=SEGMENT)
    view = writer.cursor().execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'spans'"
    )
    assert UNSPLIT in {row[0] for row in view.fetchall()}
    assert answers(writer, start) == expected
    writer.close()


def test_a_compact_store_whose_views_show_split_keys_as_structs_reads_the_same(
    tmp_path: Path,
) -> None:
    expected, start, con = closed_with_view_copy(tmp_path, "spans_text")
    split = [
        row[0]
        for row in con.execute("DESCRIBE spans_text").fetchall()
        if row[0].startswith("attributes.")
    ]
    # Each split key as a STRUCT of type and value, as views showed them before 2026-11-27.
    structs = ", ".join(
        f"""CASE WHEN "{name}" IS NOT NULL THEN {{'type': 1::UTINYINT, 'value': "{name}"}} END"""
        f' AS "{name}"'
        for name in split
    )
    con.execute(f"CREATE OR REPLACE VIEW spans AS SELECT * REPLACE ({structs}) FROM spans_text")
    con.close()
    reader = DuckDBStore(tmp_path / "compact", read_only=True)
    types = reader.cursor().execute(
        "SELECT DISTINCT data_type FROM duckdb_columns() "
        "WHERE table_name = 'spans' AND starts_with(column_name, 'attributes.')"
    )
    assert [row[0] for row in types.fetchall()] == ['STRUCT("type" UTINYINT, "value" VARCHAR)']
    assert answers(reader, start) == expected
    reader.close()
    writer = DuckDBStore(tmp_path / "compact", segment_rows=SEGMENT)  # renews the views
    assert answers(writer, start) == expected
    writer.close()
