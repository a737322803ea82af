"""Whole row groups under load, the rest held back: every row stored exactly once, in order,
whenever the writer crashes and its write-ahead log is replayed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp.decode import decode_traces
from stethoscope.store.duckdb.rowgroups import ROW_GROUP_ROWS, RowGroups
from stethoscope.store.duckdb.store import DuckDBStore

KEYED = {"resources"}
GROUP = 4  # rows per row group in the model tests


class Model:
    """A store of plain lists behind `RowGroups`: what a commit inserts is kept, as DuckDB does."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {"spans": [], "logs": [], "metric_points": []}
        self.resources: set[int] = set()
        self.applied_seq, self.ahead = 0, {}
        self.open()

    def open(self) -> None:
        """A restart: the held rows are lost, the recorded position read back."""
        self.groups = RowGroups(self.applied_seq, self.ahead, keyed=KEYED, group_rows=GROUP)

    def write(self, batches: list[SignalBatch], seqs: list[int], *, whole: bool) -> int:
        plan = self.groups.plan(batches, seqs, whole=whole)
        for name, tables in plan.tables.items():
            values = [v for table in tables for v in table.column("id").to_pylist()]
            if name in KEYED:
                self.resources.update(values)
            else:
                self.rows[name].extend(values)
        self.applied_seq, self.ahead = plan.applied_seq, plan.ahead
        self.groups.accept(plan)
        return plan.applied_seq


def batch(name: str, first: int, rows: int) -> SignalBatch:
    ids = pa.array(range(first, first + rows), pa.int64())
    tables = {name: pa.table({"id": ids}), "resources": pa.table({"id": pa.array([7], pa.int64())})}
    return SignalBatch("logs", tables=tables)


batches_strategy = st.lists(
    st.tuples(st.sampled_from(["spans", "logs", "metric_points"]), st.integers(0, 9)),
    min_size=1,
    max_size=30,
)


@settings(max_examples=400, deadline=None)
# A restart that stores the held log record before it meets the spans stored ahead of it:
# the second restart must still skip them.
@example(sent=[("logs", 1), ("spans", 5)], cuts=[2, 1], wholes=[True], crashes=[1, 1])
@given(
    sent=batches_strategy,
    cuts=st.lists(st.integers(1, 6), min_size=1, max_size=10),
    wholes=st.lists(st.booleans(), min_size=1, max_size=10),
    crashes=st.lists(st.integers(0, 6), max_size=3),
)
def test_replay_after_crashes_at_any_write_stores_every_row_once_in_order(
    sent: list[tuple[str, int]], cuts: list[int], wholes: list[bool], crashes: list[int]
) -> None:
    log: list[tuple[int, SignalBatch]] = []  # the write-ahead log: (seq, batch)
    expected: dict[str, list[int]] = {"spans": [], "logs": [], "metric_points": []}
    next_id = 0
    for seq, (name, rows) in enumerate(sent, start=1):
        log.append((seq, batch(name, next_id, rows)))
        expected[name].extend(range(next_id, next_id + rows))
        next_id += rows
    model = Model()
    writes = 0

    def run(limit: int) -> None:  # the writer from the stored position on, for `limit` writes
        nonlocal writes
        todo = [(seq, b) for seq, b in log if seq > model.applied_seq]
        for _ in range(limit):
            if not todo:
                return
            cut = cuts[writes % len(cuts)]
            group, todo = todo[:cut], todo[cut:]
            whole = wholes[writes % len(wholes)]
            model.write([b for _, b in group], [s for s, _ in group], whole=whole)
            writes += 1

    for crash_after in crashes:
        run(crash_after)
        model.open()  # kill -9: what was held back is gone; the log still has it
    run(len(log))
    assert model.write([], [], whole=False) == len(log)  # a last write with no load
    assert model.rows == expected
    assert model.resources == {7}
    assert not model.groups.holding


def test_under_load_only_whole_row_groups_are_inserted() -> None:
    model = Model()
    assert model.write([batch("logs", 0, 3)], [1], whole=True) == 0  # held: less than a group
    assert model.rows["logs"] == []
    assert model.groups.holding
    assert model.write([batch("logs", 3, 6)], [2], whole=True) == 1  # 9 rows: 8 in, 1 held
    assert model.rows["logs"] == list(range(8))
    assert model.ahead == {"logs": 5}  # of batch 2, already stored
    assert model.write([], [], whole=False) == 2
    assert model.rows["logs"] == list(range(9))
    assert not any(model.ahead.values())


def many_spans(n: int) -> SignalBatch:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value="bulk"))
    scope_spans = resource_spans.scope_spans.add()
    start = time.time_ns()
    for i in range(n):
        span = scope_spans.spans.add()
        span.trace_id, span.span_id = os.urandom(16), (i + 1).to_bytes(8, "big")
        span.name = "work"
        span.start_time_unix_nano, span.end_time_unix_nano = start + i, start + i + 1000
    return decode_traces(request)


def stored_span_ids(store: DuckDBStore) -> list[int]:
    found = store.cursor().execute("SELECT span_id FROM spans ORDER BY span_id").fetchall()
    return [row[0] for row in found]


def test_a_real_store_keeps_its_position_across_a_crash_with_rows_held(tmp_path: Path) -> None:
    first, second = many_spans(ROW_GROUP_ROWS - 1000), many_spans(3000)
    store = DuckDBStore(tmp_path)
    assert store.write([first, second], seqs=[1, 2], whole_row_groups=True) == 1
    assert store.holding  # 2,000 spans of batch 2 wait for the next write
    assert len(stored_span_ids(store)) == ROW_GROUP_ROWS
    store.close()  # as a crash would leave it: the held rows were only in memory

    store = DuckDBStore(tmp_path)
    assert store.applied_seq() == 1
    assert store.write([second], seqs=[2]) == 2  # replayed from the log
    ids = sorted(
        first.tables["spans"].column("span_id").to_pylist()
        + second.tables["spans"].column("span_id").to_pylist()
    )
    assert stored_span_ids(store) == ids  # batch 2's first 1,000 spans not stored twice
    store.close()
    reopened = DuckDBStore(tmp_path)
    assert reopened.applied_seq() == 2
    assert not reopened.holding
    reopened.close()
