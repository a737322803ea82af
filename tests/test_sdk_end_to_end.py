"""The real OpenTelemetry SDK exporters against a real `steth up`, read back through the CLI.

Each transport (OTLP/HTTP protobuf, OTLP/HTTP JSON, OTLP/gRPC) sends traces, logs and metrics
under its own service name; the assertions are on what `steth ... --json` shows a user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import RunningServer
from opentelemetry.exporter.otlp.json.http import OTLPMetricExporter as JsonMetricExporter
from opentelemetry.exporter.otlp.json.http import OTLPSpanExporter as JsonSpanExporter
from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter as JsonLogExporter
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

TRANSPORTS = ("http-protobuf", "http-json", "grpc")

# Every attribute type the SDK can send, and what must come back (same value, same type).
SPAN_ATTRIBUTES: dict[str, Any] = {
    "attr.str": "hello",
    "attr.int": 42,
    "attr.negative": -7,
    "attr.big": 2**62 + 1,
    "attr.float": 3.25,
    "attr.whole_float": 2.0,
    "attr.bool": True,
    "attr.false": False,
    "attr.strs": ["a", "b", "c"],
    "attr.ints": [1, 2, 3],
    "attr.floats": [1.5, 2.5],
    "attr.bools": [True, False, True],
}
RESOURCE_ATTRIBUTES: dict[str, Any] = {
    "service.instance.id": "instance-1",
    "deployment.environment.name": "e2e",
    "host.cpu.count": 8,
}
ERROR_MESSAGE = "card declined: insufficient funds"


@dataclass
class Sent:
    """What one transport sent, to compare with what the CLI shows."""

    transport: str
    service: str
    trace_id: str = ""
    span_ids: dict[str, str] = field(default_factory=dict)
    other_trace_id: str = ""


def _exporters(transport: str, server: RunningServer) -> tuple[Any, Any, Any]:
    if transport == "http-protobuf":
        return (
            HttpSpanExporter(endpoint=f"{server.otlp_url}/v1/traces", timeout=10),
            HttpLogExporter(endpoint=f"{server.otlp_url}/v1/logs", timeout=10),
            HttpMetricExporter(endpoint=f"{server.otlp_url}/v1/metrics", timeout=10),
        )
    if transport == "http-json":
        return (
            JsonSpanExporter(endpoint=f"{server.otlp_url}/v1/traces", timeout=10),
            JsonLogExporter(endpoint=f"{server.otlp_url}/v1/logs", timeout=10),
            JsonMetricExporter(endpoint=f"{server.otlp_url}/v1/metrics", timeout=10),
        )
    target = f"http://{server.grpc_target}"
    return (
        GrpcSpanExporter(endpoint=target, insecure=True, timeout=10),
        GrpcLogExporter(endpoint=target, insecure=True, timeout=10),
        GrpcMetricExporter(endpoint=target, insecure=True, timeout=10),
    )


def _emit_traces_and_logs(sent: Sent, provider: TracerProvider, log: logging.Logger) -> None:
    tracer = provider.get_tracer("steth.e2e", "1.2.3")
    with tracer.start_as_current_span("background-job") as other:
        other_context = other.get_span_context()
    log.info("service started")  # outside any span: no trace id
    with tracer.start_as_current_span(
        "GET /checkout", kind=SpanKind.SERVER, attributes=SPAN_ATTRIBUTES
    ) as root:
        root.add_event("cart loaded", {"items": 3, "total": 19.99, "gift": False})
        with tracer.start_as_current_span(
            "charge card",
            kind=SpanKind.CLIENT,
            links=[Link(other_context, {"link.reason": "batched", "link.n": 1})],
        ) as child:
            log.warning("payment retry %d", 1)
            child.add_event("retry", {"attempt": 1})
            log.error("payment failed")
            child.set_status(Status(StatusCode.ERROR, ERROR_MESSAGE))
        with tracer.start_as_current_span("render receipt", kind=SpanKind.INTERNAL) as leaf:
            leaf.set_attribute("receipt.pages", 2)
    sent.trace_id = format(root.get_span_context().trace_id, "032x")
    sent.other_trace_id = format(other_context.trace_id, "032x")
    sent.span_ids = {
        "GET /checkout": format(root.get_span_context().span_id, "016x"),
        "charge card": format(child.get_span_context().span_id, "016x"),
        "render receipt": format(leaf.get_span_context().span_id, "016x"),
        "background-job": format(other_context.span_id, "016x"),
    }


def _emit_metrics(provider: MeterProvider) -> None:
    meter = provider.get_meter("steth.e2e", "1.2.3")
    counter = meter.create_counter("e2e.requests", unit="1", description="requests served")
    counter.add(3, {"route": "/checkout"})
    counter.add(4, {"route": "/checkout"})
    updown = meter.create_up_down_counter("e2e.inflight", unit="1")
    updown.add(5)
    updown.add(-2)
    histogram = meter.create_histogram("e2e.latency", unit="ms")
    for value in (10, 20, 30):
        histogram.record(value, {"route": "/checkout"})
    exponential = meter.create_histogram("e2e.latency.exp", unit="ms")
    for value in (1, 2, 4, 8):
        exponential.record(value)

    def pool_size(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(42.5, {"pool": "main"})

    meter.create_observable_gauge("e2e.pool.size", callbacks=[pool_size], unit="1")


def _send(transport: str, server: RunningServer) -> Sent:
    sent = Sent(transport=transport, service=f"e2e-{transport}")
    resource = Resource.create({"service.name": sent.service, **RESOURCE_ATTRIBUTES})
    span_exporter, log_exporter, metric_exporter = _exporters(transport, server)

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider)
    log = logging.getLogger(f"steth.e2e.{transport}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(handler)
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        views=[
            View(
                instrument_name="e2e.latency.exp",
                aggregation=ExponentialBucketHistogramAggregation(),
            )
        ],
    )
    try:
        _emit_traces_and_logs(sent, tracer_provider, log)
        _emit_metrics(meter_provider)
        assert tracer_provider.force_flush(10_000)
        assert logger_provider.force_flush(10_000)
        assert meter_provider.force_flush(10_000)
    finally:
        log.removeHandler(handler)
        tracer_provider.shutdown()
        logger_provider.shutdown()
        meter_provider.shutdown()
    return sent


def _by_name(items: list[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def _services(server: RunningServer) -> dict[str, dict[str, Any]]:
    return _by_name(server.steth_json("services")["services"], "service")


@pytest.fixture(scope="module")
def sent(server: RunningServer) -> dict[str, Sent]:
    """Telemetry from every transport, sent and visible to queries."""
    sent = {transport: _send(transport, server) for transport in TRANSPORTS}
    # Acknowledged means durable, not yet queryable: the writer commits every flush interval.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = _services(server)
        if all(
            found.get(s.service, {}).get(signal)
            for s in sent.values()
            for signal in ("spans", "logs", "metric_points")
        ):
            break
        time.sleep(0.25)
    return sent


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_services_lists_each_exporter(
    server: RunningServer, sent: dict[str, Sent], transport: str
) -> None:
    service = sent[transport].service
    found = _services(server)
    assert service in found
    row = found[service]
    assert row["spans"] == 4
    assert row["error_spans"] == 1
    assert row["logs"] == 3
    assert row["error_logs"] == 1
    assert row["metric_points"] >= 5
    assert [i["instance"] for i in row["instances"]] == ["instance-1"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_traces_by_service(server: RunningServer, sent: dict[str, Sent], transport: str) -> None:
    one = sent[transport]
    traces = _by_name(server.steth_json("traces", "--service", one.service)["traces"], "trace_id")
    assert set(traces) == {one.trace_id, one.other_trace_id}
    checkout = traces[one.trace_id]
    assert checkout["root_service"] == one.service
    assert checkout["root_operation"] == "GET /checkout"
    assert checkout["span_count"] == 3
    assert checkout["error"] is True
    assert checkout["services"] == [one.service]
    assert traces[one.other_trace_id]["error"] is False


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_trace_round_trips_spans(
    server: RunningServer, sent: dict[str, Sent], transport: str
) -> None:
    one = sent[transport]
    found = server.steth_json("trace", one.trace_id)
    assert found["trace_id"] == one.trace_id
    spans = _by_name(found["spans"])
    assert set(spans) == {"GET /checkout", "charge card", "render receipt"}
    root, child, leaf = spans["GET /checkout"], spans["charge card"], spans["render receipt"]

    # Parent relations and kinds.
    assert root["span_id"] == one.span_ids["GET /checkout"]
    assert root["parent_span_id"] == ""
    assert child["parent_span_id"] == root["span_id"] == leaf["parent_span_id"]
    assert (root["kind"], child["kind"], leaf["kind"]) == ("server", "client", "internal")
    assert root["duration_ns"] >= child["duration_ns"] > 0

    # Attribute values and their types survive the trip.
    for key, value in SPAN_ATTRIBUTES.items():
        assert root["attributes"][key] == value, key
        assert type(root["attributes"][key]) is type(value), key
        if isinstance(value, list):
            assert [type(v) for v in root["attributes"][key]] == [type(v) for v in value], key
    assert leaf["attributes"] == {"receipt.pages": 2}
    assert root["resource"]["service.name"] == one.service
    for key, value in RESOURCE_ATTRIBUTES.items():
        assert root["resource"][key] == value
        assert type(root["resource"][key]) is type(value)
    assert root["instance"] == "instance-1"
    assert root["scope"] == {"name": "steth.e2e", "version": "1.2.3"}

    # Events, links, status.
    assert [e["name"] for e in root["events"]] == ["cart loaded"]
    assert root["events"][0]["attributes"] == {"items": 3, "total": 19.99, "gift": False}
    assert (
        root["start_ns"] <= root["events"][0]["time_ns"] <= root["start_ns"] + root["duration_ns"]
    )
    assert [e["name"] for e in child["events"]] == ["retry"]
    assert child["links"] == [
        {
            "trace_id": one.other_trace_id,
            "span_id": one.span_ids["background-job"],
            "attributes": {"link.reason": "batched", "link.n": 1},
        }
    ]
    assert child["status_code"] == "error"
    assert child["status_message"] == ERROR_MESSAGE
    assert root["status_code"] == "unset"
    assert root["links"] == [] == leaf["events"]

    # The trace carries its logs too.
    assert sorted(r["body"] for r in found["logs"]) == ["payment failed", "payment retry 1"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logs_by_service_and_trace(
    server: RunningServer, sent: dict[str, Sent], transport: str
) -> None:
    one = sent[transport]
    records = server.steth_json("logs", "--service", one.service, "--trace", one.trace_id)["logs"]
    assert [(r["body"], r["severity_text"], r["severity_number"]) for r in records] == [
        ("payment retry 1", "WARN", 13),
        ("payment failed", "ERROR", 17),
    ]
    for record in records:
        assert record["trace_id"] == one.trace_id
        assert record["span_id"] == one.span_ids["charge card"]
        assert record["service"] == one.service
        assert record["instance"] == "instance-1"
        assert record["time_ns"] > 0

    everything = server.steth_json("logs", "--service", one.service)["logs"]
    assert len(everything) == 3
    started = [r for r in everything if r["body"] == "service started"]
    assert len(started) == 1
    assert started[0]["trace_id"] == "" and started[0]["span_id"] == ""
    assert started[0]["severity_text"] == "INFO"


EXPECTED_TYPES = {
    "e2e.requests": "sum",
    "e2e.inflight": "sum",
    "e2e.latency": "histogram",
    "e2e.latency.exp": "exponential_histogram",
    "e2e.pool.size": "gauge",
}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metrics_list(server: RunningServer, sent: dict[str, Sent], transport: str) -> None:
    one = sent[transport]
    listed = _by_name(server.steth_json("metrics", "--service", one.service)["metrics"])
    assert {name: row["type"] for name, row in listed.items()} == EXPECTED_TYPES
    assert listed["e2e.requests"]["unit"] == "1"
    assert listed["e2e.requests"]["description"] == "requests served"
    assert listed["e2e.latency"]["unit"] == "ms"
    for row in listed.values():
        assert row["services"] == [one.service]
        assert row["series"] == 1
        assert row["points"] >= 1

    everywhere = _by_name(server.steth_json("metrics")["metrics"])
    for name, kind in EXPECTED_TYPES.items():
        assert everywhere[name]["type"] == kind
        assert set(everywhere[name]["services"]) >= {s.service for s in sent.values()}


def _series(server: RunningServer, one: Sent, name: str) -> dict[str, Any]:
    found = server.steth_json("metrics", name, "--service", one.service)
    assert found["name"] == name
    assert found["type"] == EXPECTED_TYPES[name]
    assert len(found["series"]) == 1
    series = found["series"][0]
    assert series["service"] == one.service
    assert series["instance"] == "instance-1"
    return {"metric": found, "series": series, "last": series["points"][-1]}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metric_values(server: RunningServer, sent: dict[str, Sent], transport: str) -> None:
    one = sent[transport]
    counter = _series(server, one, "e2e.requests")
    assert counter["metric"]["temporality"] == "cumulative"
    assert counter["series"]["attributes"] == {"route": "/checkout"}
    assert counter["last"]["value"] == 7
    assert type(counter["last"]["value"]) is int
    assert counter["series"]["last"] == 7

    assert _series(server, one, "e2e.inflight")["last"]["value"] == 3

    histogram = _series(server, one, "e2e.latency")["last"]
    assert histogram["count"] == 3
    assert histogram["sum"] == 60
    assert (histogram["min"], histogram["max"]) == (10, 30)
    assert sum(histogram["bucket_counts"]) == 3
    assert len(histogram["bucket_counts"]) == len(histogram["explicit_bounds"]) + 1

    exponential = _series(server, one, "e2e.latency.exp")["last"]
    assert exponential["count"] == 4
    assert exponential["sum"] == 15
    assert (exponential["min"], exponential["max"]) == (1, 8)
    assert sum(exponential["positive_counts"]) + exponential["zero_count"] == 4

    gauge = _series(server, one, "e2e.pool.size")
    assert gauge["series"]["attributes"] == {"pool": "main"}
    assert gauge["last"]["value"] == 42.5
