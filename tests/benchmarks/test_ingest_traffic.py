"""The ingest benchmark's traffic (benchmarks/ingest.py): a pooled request sent again must look
like new traffic to the store (new ids, request ids and timestamps), or disk bytes per row
measure how well a store compresses repeats instead of real spans and log records."""

from __future__ import annotations

import sys
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

# The benchmarks are scripts, not an installed package (see test_rca_eval.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from ingest import REQUEST_ID, build_pool, known_trace, patched_body  # noqa: E402


def sent_spans(body: bytes | bytearray) -> list[Span]:
    request = ExportTraceServiceRequest.FromString(bytes(body))
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def sent_records(body: bytes | bytearray) -> list[LogRecord]:
    request = ExportLogsServiceRequest.FromString(bytes(body))
    return [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]


def request_ids(spans: list[Span]) -> list[str]:
    return [a.value.string_value for s in spans for a in s.attributes if a.key == REQUEST_ID]


def test_every_send_of_a_pooled_trace_request_has_new_ids_request_ids_and_times() -> None:
    [pooled] = build_pool("traces", 1, seed=7)
    original = sent_spans(pooled.body)
    first, second = (sent_spans(patched_body(pooled, number)) for number in (0, 1))
    both = first + second
    assert len({s.span_id for s in both}) == len(both)
    assert len({s.trace_id for s in both}) == 2 * len({s.trace_id for s in original})
    assert len(set(request_ids(both))) == len(both)
    assert len({s.start_time_unix_nano for s in both}) == len(both)
    # ... and stays the same traffic: the same trees, durations, names and other attributes.
    for sent in (first, second):
        ids = {s.span_id for s in sent}
        assert all(not s.parent_span_id or s.parent_span_id in ids for s in sent)
        assert sum(not s.parent_span_id for s in sent) == sum(
            not s.parent_span_id for s in original
        )
        for new, old in zip(sent, original, strict=True):
            assert new.end_time_unix_nano - new.start_time_unix_nano == (
                old.end_time_unix_nano - old.start_time_unix_nano
            )
            assert abs(new.start_time_unix_nano - old.start_time_unix_nano) < 1_000_000
            assert [a for a in new.attributes if a.key != REQUEST_ID] == [
                a for a in old.attributes if a.key != REQUEST_ID
            ]
    trace_id, spans = known_trace([pooled])
    assert sum(s.trace_id.hex() == trace_id for s in first) == spans


def test_every_send_of_a_pooled_log_request_has_new_ids_tokens_and_times() -> None:
    [pooled] = build_pool("logs", 1, seed=8)
    original = sent_records(pooled.body)
    first, second = (sent_records(patched_body(pooled, number)) for number in (0, 1))
    traced = [r for r in first + second if r.trace_id]
    assert len({(r.trace_id, r.span_id) for r in traced}) == len(traced)
    assert len({r.time_unix_nano for r in first + second}) > 1.9 * len(
        {r.time_unix_nano for r in original}
    )
    changed = [
        (new.body.string_value, old.body.string_value)
        for new, old in zip(first, original, strict=True)
        if new.body.string_value != old.body.string_value
    ]
    assert changed  # the templates with a hex request id
    assert all(new.split()[:-1] == old.split()[:-1] for new, old in changed)
