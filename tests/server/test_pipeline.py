"""The ingest pipeline over a real DuckDB file: write-through, replay, retention."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from stethoscope.errors import Overloaded
from stethoscope.model.batch import SignalBatch
from stethoscope.server.pipeline import IngestPipeline, PipelineConfig
from stethoscope.sources.otlp.decode import decode_traces
from stethoscope.store.base import TraceQuery
from stethoscope.store.duckdb.rowgroups import ROW_GROUP_ROWS
from stethoscope.store.duckdb.store import DuckDBStore
from stethoscope.store.wal import WalConfig

HOUR_NS = 3600 * 10**9


def spans(service: str, start_ns: int, *, imported: bool = False, n: int = 1) -> SignalBatch:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
    scope_spans = resource_spans.scope_spans.add()
    for _ in range(n):
        span = scope_spans.spans.add()
        span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
        span.name = "work"
        span.start_time_unix_nano = start_ns
        span.end_time_unix_nano = start_ns + 1000
    return decode_traces(request, imported=imported)


def make_pipeline(data: Path, **config: object) -> IngestPipeline:
    store = DuckDBStore(data)
    settings = {"flush_interval_s": 0.05, **config}
    pipeline = IngestPipeline(store, WalConfig(directory=data / "wal"), PipelineConfig(**settings))
    pipeline.start()
    return pipeline


def wait_written(pipeline: IngestPipeline) -> None:
    deadline = time.monotonic() + 10
    while pipeline.stats.pending_bytes and time.monotonic() < deadline:
        time.sleep(0.02)


def services_with_spans(store: DuckDBStore) -> dict[str, int]:
    return {row["service"]: row["spans"] for row in store.services(TraceQuery().window)}


def test_retention_prunes_old_live_data_but_never_imports(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path, retention_ns=HOUR_NS, prune_interval_s=0.05)
    now = time.time_ns()
    pipeline.submit(spans("fresh", now))
    pipeline.submit(spans("stale", now - 2 * HOUR_NS))
    pipeline.submit(spans("archive", now - 30 * 24 * HOUR_NS, imported=True))
    wait_written(pipeline)
    deadline = time.monotonic() + 10
    while "stale" in services_with_spans(pipeline.store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert services_with_spans(pipeline.store) == {"fresh": 1, "archive": 1}
    assert pipeline.stats.pruned_rows == 1
    pipeline.close()
    pipeline.store.close()


def test_a_full_pipeline_refuses_with_a_retryable_error(tmp_path: Path) -> None:
    pipeline = make_pipeline(
        tmp_path, max_pending_bytes=1024 * 1024, flush_interval_s=5.0, admission_wait_s=0.2
    )
    big = spans("big", time.time_ns(), n=20_000)
    assert big.nbytes > 512 * 1024
    pipeline.submit(big)  # admitted: nothing else was pending
    started = time.monotonic()
    with pytest.raises(Overloaded) as refused:
        pipeline.submit(big)
    assert time.monotonic() - started >= 0.2  # it waited for room first
    assert refused.value.retry_after >= 1
    assert pipeline.stats.refused_overload == 1
    pipeline.close()
    assert services_with_spans(pipeline.store) == {"big": 20_000}
    pipeline.store.close()


def test_a_batch_waits_for_room_rather_than_being_refused(tmp_path: Path) -> None:
    # The writer commits within 0.3 s, well inside the 5 s a batch may wait for room.
    pipeline = make_pipeline(
        tmp_path, max_pending_bytes=1024 * 1024, flush_interval_s=0.3, admission_wait_s=5.0
    )
    big = spans("big", time.time_ns(), n=20_000)
    pipeline.submit(big)
    pipeline.submit(big)  # admitted once the first is stored
    assert pipeline.stats.refused_overload == 0
    pipeline.close()
    assert services_with_spans(pipeline.store) == {"big": 40_000}
    pipeline.store.close()


def test_a_waiting_batch_has_the_queue_stored_without_waiting_for_a_full_group(
    tmp_path: Path,
) -> None:
    # The writer gathers up to a million rows or 10 s, yet a batch waiting for room has what is
    # queued (one whole row group, nothing held back) stored well inside its 5 s.
    pipeline = make_pipeline(
        tmp_path,
        max_pending_bytes=1024 * 1024,
        batch_rows=1_000_000,
        flush_interval_s=10.0,
        admission_wait_s=5.0,
    )
    pipeline.submit(spans("bulk", time.time_ns(), n=ROW_GROUP_ROWS))
    pipeline.submit(spans("next", time.time_ns(), n=10))
    assert pipeline.stats.refused_overload == 0
    assert services_with_spans(pipeline.store) == {"bulk": ROW_GROUP_ROWS}
    pipeline.close()
    pipeline.store.close()


def test_the_log_is_replayed_into_the_store_exactly_once(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    pipeline.submit(spans("once", time.time_ns(), n=5))
    wait_written(pipeline)
    pipeline.close()
    pipeline.store.close()
    # Restarting replays nothing that the store already holds.
    again = make_pipeline(tmp_path)
    assert services_with_spans(again.store) == {"once": 5}
    again.close()
    again.store.close()


def stored_spans(store: DuckDBStore) -> tuple[int, int]:
    found = store.cursor().execute("SELECT count(*), count(DISTINCT span_id) FROM spans").fetchone()
    assert found is not None
    return found[0], found[1]


def test_rows_held_back_under_load_are_stored_when_the_load_passes(tmp_path: Path) -> None:
    # Only whole row groups go in at once; the rest waits for more rows or a quiet writer.
    pipeline = make_pipeline(tmp_path, batch_rows=1000, flush_interval_s=0.3)
    n = ROW_GROUP_ROWS + 500
    pipeline.submit(spans("bulk", time.time_ns(), n=n))
    wait_written(pipeline)  # the bytes of a batch are released only once all of it is stored
    assert stored_spans(pipeline.store) == (n, n)
    assert not pipeline.store.holding
    pipeline.close()
    pipeline.store.close()


def test_rows_are_held_back_no_longer_than_max_hold(tmp_path: Path) -> None:
    # Steady traffic keeps the writer busy (no 5 s of quiet), far below a row group a second.
    pipeline = make_pipeline(tmp_path, batch_rows=1000, flush_interval_s=5.0, max_hold_s=0.5)
    n = ROW_GROUP_ROWS + 500
    pipeline.submit(spans("bulk", time.time_ns(), n=n))
    started = time.monotonic()
    while services_with_spans(pipeline.store).get("bulk", 0) < n:
        assert time.monotonic() - started < 4, "held back past max_hold"
        pipeline.submit(spans("trickle", time.time_ns(), n=1000))
        time.sleep(0.1)
    pipeline.close()
    pipeline.store.close()


def test_closing_stores_the_rows_held_back(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path, batch_rows=1000, flush_interval_s=5.0)
    n = ROW_GROUP_ROWS + 500
    pipeline.submit(spans("bulk", time.time_ns(), n=n))
    deadline = time.monotonic() + 30
    while not pipeline.store.holding and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pipeline.store.holding  # the 500 wait for more load (or 5 s of quiet)
    pipeline.close()
    assert stored_spans(pipeline.store) == (n, n)
    pipeline.store.close()
    again = make_pipeline(tmp_path)
    assert stored_spans(again.store) == (n, n)  # and nothing is replayed twice
    again.close()
    again.store.close()
