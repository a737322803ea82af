"""The OTLP/gRPC receiver through the generated service stubs, as an exporter would call it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from conftest import (
    RunningServer,
    ServerFactory,
    good_spans,
    nested_array_value,
    pb_field,
    span_dict,
    stored_log_bodies,
    stored_span_names,
    trace_id_for,
    traces_request,
)
from google.rpc import status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

MIB = 1024 * 1024
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def small_server(start_module_server: ServerFactory) -> RunningServer:
    """A server that takes at most 1 MiB per request."""
    return start_module_server(extra_args=["--max-body", "1"])


def _channel(server: RunningServer) -> grpc.Channel:
    return grpc.insecure_channel(
        server.grpc_target, options=[("grpc.max_send_message_length", 64 * MIB)]
    )


@pytest.fixture(scope="module")
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with _channel(server) as opened:
        yield opened


@pytest.fixture(scope="module")
def small_channel(small_server: RunningServer) -> Iterator[grpc.Channel]:
    with _channel(small_server) as opened:
        yield opened


def _export_traces(
    channel: grpc.Channel, request: trace_service_pb2.ExportTraceServiceRequest, **kwargs: object
) -> trace_service_pb2.ExportTraceServiceResponse:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    return stub.Export(request, timeout=30, **kwargs)


def _status_message(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    return status.message if status is not None else str(error.details())  # type: ignore[attr-defined]


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.NoCompression])
def test_export_is_stored(
    server: RunningServer, channel: grpc.Channel, compression: grpc.Compression
) -> None:
    service = f"grpc-{compression.name}"
    response = _export_traces(
        channel, traces_request(service, good_spans(service, 3)), compression=compression
    )
    assert not response.HasField("partial_success")
    names = stored_span_names(server, trace_id_for(service), expect=3)
    assert names == ["good-0", "good-1", "good-2"]


def test_invalid_ids_are_a_partial_success_with_counts(
    server: RunningServer, channel: grpc.Channel
) -> None:
    service = "grpc-bad-ids"
    trace_id = trace_id_for(service)
    bad = [
        span_dict(b"\x01" * 15, b"\x05" * 8, "short-trace-id"),
        span_dict(b"\x00" * 16, b"\x06" * 8, "zero-trace-id"),
        span_dict(trace_id, b"\x07" * 7, "short-span-id"),
        span_dict(trace_id, b"\x08" * 8, "long-parent", parentSpanId=(b"\x09" * 9).hex()),
    ]
    request = traces_request(service, [*good_spans(service, 2), *bad])
    response = _export_traces(channel, request, compression=grpc.Compression.Gzip)

    assert response.partial_success.rejected_spans == 4
    message = response.partial_success.error_message
    assert "trace id" in message and "span id" in message
    assert stored_span_names(server, trace_id, expect=2) == ["good-0", "good-1"]


def test_deeply_nested_attribute_rejects_only_its_span(
    server: RunningServer, channel: grpc.Channel
) -> None:
    service = "grpc-deep"
    request = traces_request(service, good_spans(service, 2))
    scope_spans = request.resource_spans[0].scope_spans[0]
    deep_span = scope_spans.spans[0].SerializeToString()
    deep_span += pb_field(9, pb_field(1, b"deep") + pb_field(2, nested_array_value(40)))
    del scope_spans.spans[0]
    # Protobuf messages concatenate: this request holds good-1 and the deep good-0.
    raw = request.SerializeToString() + pb_field(1, pb_field(2, pb_field(2, deep_span)))
    call = channel.unary_unary(
        TRACE_EXPORT,
        request_serializer=None,
        response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
    )
    response = call(raw, timeout=30)

    assert response.partial_success.rejected_spans == 1
    assert "nested" in response.partial_success.error_message
    assert stored_span_names(server, trace_id_for(service), expect=1) == ["good-1"]


def test_logs_and_metrics_partial_success(server: RunningServer, channel: grpc.Channel) -> None:
    logs = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = logs.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "grpc-logs"
    records = resource_logs.scope_logs.add().log_records
    for body, trace_id in (("kept", b"\x01" * 16), ("no trace", b""), ("bad", b"\x02" * 5)):
        record = records.add(time_unix_nano=time.time_ns(), trace_id=trace_id)
        record.body.string_value = body
    answer = logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs, timeout=30)
    assert answer.partial_success.rejected_log_records == 1
    assert "trace id" in answer.partial_success.error_message
    assert stored_log_bodies(server, "grpc-logs", expect=2) == ["kept", "no trace"]

    metrics = metrics_service_pb2.ExportMetricsServiceRequest()
    scope_metrics = metrics.resource_metrics.add().scope_metrics.add()
    gauge = scope_metrics.metrics.add(name="grpc.gauge").gauge
    gauge.data_points.add(as_int=3, time_unix_nano=time.time_ns())
    scope_metrics.metrics.add(name="grpc.no_data")
    answer = metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(metrics, timeout=30)
    assert answer.partial_success.rejected_data_points == 1
    assert "grpc.no_data" in answer.partial_success.error_message


def test_empty_request_is_accepted(channel: grpc.Channel) -> None:
    response = _export_traces(channel, trace_service_pb2.ExportTraceServiceRequest())
    assert not response.HasField("partial_success")


def test_malformed_protobuf_is_invalid_argument(channel: grpc.Channel) -> None:
    call = channel.unary_unary(TRACE_EXPORT, request_serializer=None)
    with pytest.raises(grpc.RpcError) as failed:
        call(b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", timeout=30)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "not a valid" in _status_message(failed.value)


def _big_request(service: str, size: int) -> trace_service_pb2.ExportTraceServiceRequest:
    spans = good_spans(service, 1)
    spans[0]["attributes"] = [{"key": "blob", "value": {"stringValue": "x" * size}}]
    return traces_request(service, spans)


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_message_over_the_limit_is_resource_exhausted(
    small_server: RunningServer, small_channel: grpc.Channel, compression: grpc.Compression
) -> None:
    request = _big_request(f"grpc-big-{compression.name}", 2 * MIB)
    with pytest.raises(grpc.RpcError) as failed:
        _export_traces(small_channel, request, compression=compression)
    assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]

    # Under the limit still works, on the same channel.
    service = f"grpc-under-{compression.name}"
    response = _export_traces(small_channel, _big_request(service, MIB // 2))
    assert not response.HasField("partial_success")
    assert stored_span_names(small_server, trace_id_for(service)) == ["good-0"]
    assert small_server.healthy()


def test_server_still_healthy(server: RunningServer) -> None:
    assert server.healthy(), server.log()
    assert stored_span_names(server, trace_id_for("grpc-Gzip"), expect=3)


def test_error_status_is_a_google_rpc_status(channel: grpc.Channel) -> None:
    """The error detail travels as grpc-status-details-bin, as exporters read it."""
    call = channel.unary_unary(TRACE_EXPORT, request_serializer=None)
    with pytest.raises(grpc.RpcError) as failed:
        call(b"\xff", timeout=30)
    status = rpc_status.from_call(failed.value)  # type: ignore[arg-type]
    assert isinstance(status, status_pb2.Status)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
