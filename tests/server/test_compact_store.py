"""`steth up` seals spans in Parquet segments (unless `--no-compact-store`), every one found."""

from __future__ import annotations

import json
import time

import httpx
from conftest import ServerFactory, run_steth
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from stethoscope.store.duckdb.rowgroups import ROW_GROUP_ROWS

SPANS_PER_REQUEST = 4096
REQUESTS = ROW_GROUP_ROWS // SPANS_PER_REQUEST + 2  # a segment's worth and some left over


def request_body(number: int) -> bytes:
    """Spans of one service, 16 to a trace, trace ids unique across requests."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(
        key="service.name", value=AnyValue(string_value="compact")
    )
    spans = resource_spans.scope_spans.add().spans
    start = time.time_ns()
    for index in range(SPANS_PER_REQUEST):
        span = spans.add()
        span.trace_id = (number * SPANS_PER_REQUEST + index // 16 + 1).to_bytes(16, "big")
        span.span_id = (number * SPANS_PER_REQUEST + index + 1).to_bytes(8, "big")
        span.name = f"op-{index % 7}"
        span.attributes.add(key="http.route", value=AnyValue(string_value=f"/r/{index % 11}"))
        span.start_time_unix_nano, span.end_time_unix_nano = start + index, start + index + 1000
    return request.SerializeToString()


def send_all(otlp_url: str) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    with httpx.Client(base_url=otlp_url, headers=headers, timeout=30) as client:
        for number in range(REQUESTS):
            assert client.post("/v1/traces", content=request_body(number)).status_code == 200


def test_spans_sent_to_a_default_server_are_sealed_and_all_found(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    send_all(server.otlp_url)
    data = server.data
    assert server.stop() == 0

    # A segment's worth sealed while running, the rest as the server stopped.
    files = sorted(path.name for path in (data / "segments").iterdir())
    assert files == ["spans-000001.parquet", "spans-000002.parquet"]
    code, out, err = run_steth("services", "--json", "--data", str(data))
    assert code == 0, err
    assert [s["spans"] for s in json.loads(out)["services"]] == [REQUESTS * SPANS_PER_REQUEST]
    last_id = (REQUESTS - 1) * SPANS_PER_REQUEST + SPANS_PER_REQUEST // 16
    last = f"{last_id:032x}"  # the last trace: in the segment sealed at the stop
    first = f"{1:032x}"  # the first: in the first segment
    for trace_id in (first, last):
        code, out, err = run_steth("trace", trace_id, "--json", "--data", str(data))
        assert code == 0, err
        spans = json.loads(out)["spans"]
        assert len(spans) == 16
        for span in spans:  # in the segment, http.route is a column of its own
            index = (int(span["span_id"], 16) - 1) % SPANS_PER_REQUEST
            assert span["attributes"] == {"http.route": f"/r/{index % 11}"}


def test_a_server_told_no_compact_store_keeps_every_span_in_its_table(
    start_server: ServerFactory,
) -> None:
    server = start_server(extra_args=["--no-compact-store"])
    send_all(server.otlp_url)
    data = server.data
    assert server.stop() == 0

    assert not (data / "segments").exists() or not any((data / "segments").iterdir())
    code, out, err = run_steth("services", "--json", "--data", str(data))
    assert code == 0, err
    assert [s["spans"] for s in json.loads(out)["services"]] == [REQUESTS * SPANS_PER_REQUEST]
