"""The OTLP/HTTP receiver as an exporter sees it: responses, partial success, methods, health."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from conftest import (
    JSON,
    PROTOBUF,
    RunningServer,
    ServerFactory,
    good_spans,
    json_traces,
    run_steth,
    span_dict,
    stored_log_bodies,
    stored_span_names,
    trace_id_for,
    traces_request,
)
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

RESPONSES = {
    "traces": ExportTraceServiceResponse,
    "logs": ExportLogsServiceResponse,
    "metrics": ExportMetricsServiceResponse,
}
REJECTED_FIELD = {
    "traces": "rejected_spans",
    "logs": "rejected_log_records",
    "metrics": "rejected_data_points",
}


def _traces_with_bad_ids(service: str) -> dict[str, Any]:
    """Two good spans and two with invalid ids (the receiver must keep the good ones)."""
    trace_id = trace_id_for(service)
    bad = [
        span_dict(b"\x01" * 15, b"\x05" * 8, "short-trace-id"),
        span_dict(trace_id, b"\x00" * 8, "zero-span-id"),
    ]
    return json_traces(service, [*good_spans(service, 2), *bad])


def _logs_with_bad_ids(service: str) -> dict[str, Any]:
    now = str(time.time_ns())
    records = [
        {"timeUnixNano": now, "body": {"stringValue": "kept"}, "severityNumber": 9},
        {"timeUnixNano": now, "body": {"stringValue": "bad trace"}, "traceId": "ab" * 3},
        {"timeUnixNano": now, "body": {"stringValue": "bad span"}, "spanId": "cd" * 3},
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": records}]}]}


def _metrics_with_empty_metric(service: str) -> dict[str, Any]:
    now = str(time.time_ns())
    metrics = [
        {"name": "http.kept", "gauge": {"dataPoints": [{"asInt": "5", "timeUnixNano": now}]}},
        {"name": "http.no_data"},
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": metrics}]}]}


PARTIAL = {
    "traces": (_traces_with_bad_ids, 2),
    "logs": (_logs_with_bad_ids, 2),
    "metrics": (_metrics_with_empty_metric, 1),
}
REQUEST_TYPES = {
    "traces": type(traces_request("x", [])),
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}


def _protobuf_body(signal: str, document: dict[str, Any]) -> bytes:
    """The protobuf form of an OTLP/JSON document (hex ids made into bytes)."""
    if signal == "traces":
        spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
        service = document["resourceSpans"][0]["resource"]["attributes"][0]["value"]
        return traces_request(service["stringValue"], spans).SerializeToString()
    for record in (
        document.get("resourceLogs", [{}])[0].get("scopeLogs", [{}])[0].get("logRecords", [])
    ):
        for key in ("traceId", "spanId"):
            if key in record:
                record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
    return json_format.ParseDict(document, REQUEST_TYPES[signal]()).SerializeToString()


def _post(server: RunningServer, signal: str, body: bytes, content_type: str) -> httpx.Response:
    return httpx.post(
        f"{server.otlp_url}/v1/{signal}",
        content=body,
        headers={"Content-Type": content_type},
        timeout=30,
    )


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_partial_success_in_protobuf(server: RunningServer, signal: str) -> None:
    build, rejected = PARTIAL[signal]
    service = f"http-partial-pb-{signal}"
    response = _post(server, signal, _protobuf_body(signal, build(service)), PROTOBUF)

    assert response.status_code == 200
    assert response.headers["content-type"] == PROTOBUF
    answer = RESPONSES[signal].FromString(response.content)
    assert answer.HasField("partial_success")
    assert getattr(answer.partial_success, REJECTED_FIELD[signal]) == rejected
    assert answer.partial_success.error_message
    _assert_kept(server, signal, service)


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_partial_success_in_json(server: RunningServer, signal: str) -> None:
    build, rejected = PARTIAL[signal]
    service = f"http-partial-json-{signal}"
    response = _post(server, signal, json.dumps(build(service)).encode(), JSON)

    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    answer = response.json()
    # OTLP/JSON: lowerCamelCase keys; int64 counts may be numbers or strings (proto3 JSON).
    camel = {
        "traces": "rejectedSpans",
        "logs": "rejectedLogRecords",
        "metrics": "rejectedDataPoints",
    }
    assert set(answer) == {"partialSuccess"}
    assert int(answer["partialSuccess"][camel[signal]]) == rejected
    assert answer["partialSuccess"]["errorMessage"]
    # And it is a valid Export*ServiceResponse for a protobuf JSON parser.
    parsed = json_format.Parse(response.text, RESPONSES[signal]())
    assert getattr(parsed.partial_success, REJECTED_FIELD[signal]) == rejected
    _assert_kept(server, signal, service)


def _assert_kept(server: RunningServer, signal: str, service: str) -> None:
    if signal == "traces":
        assert stored_span_names(server, trace_id_for(service), expect=2) == ["good-0", "good-1"]
    elif signal == "logs":
        assert stored_log_bodies(server, service) == ["kept"]
    else:
        found = _wait_for_metric(server, service)
        assert [m["name"] for m in found] == ["http.kept"]


def _wait_for_metric(server: RunningServer, service: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(f"{server.api_url}/api/metrics", params={"service": service})
        found = response.json()["metrics"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_full_success_has_no_partial_success(server: RunningServer) -> None:
    body = traces_request("http-ok", good_spans("http-ok")).SerializeToString()
    response = _post(server, "traces", body, PROTOBUF)
    assert response.status_code == 200
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")

    document = json_traces("http-ok-json", good_spans("http-ok-json"))
    response = _post(server, "traces", json.dumps(document).encode(), JSON)
    assert response.status_code == 200
    assert response.json() == {}


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (PROTOBUF, PROTOBUF),
        (JSON, JSON),
        ("application/json; charset=utf-8", JSON),
        ("Application/JSON", JSON),
        ("application/x-protobuf; proto=opentelemetry", PROTOBUF),
    ],
)
@pytest.mark.parametrize("outcome", ["ok", "error"])
def test_response_encoding_matches_request(
    server: RunningServer, content_type: str, expected: str, outcome: str
) -> None:
    if outcome == "ok":
        document = json_traces("http-encoding", good_spans("http-encoding"))
        body = (
            json.dumps(document).encode()
            if expected == JSON
            else _protobuf_body("traces", document)
        )
    else:
        body = b"\x0a\xff\xff\xff\xff\xff" if expected == PROTOBUF else b"{not json"
    response = _post(server, "traces", body, content_type)

    assert response.status_code == (200 if outcome == "ok" else 400)
    assert response.headers["content-type"] == expected
    if outcome == "error":
        if expected == JSON:
            status = json_format.Parse(response.text, status_pb2.Status())
        else:
            status = status_pb2.Status.FromString(response.content)
        assert status.code == 3  # INVALID_ARGUMENT
        assert status.message


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs", "/v1/metrics"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_only_post_is_allowed(server: RunningServer, path: str, method: str) -> None:
    response = httpx.request(method, f"{server.otlp_url}{path}")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


def test_unknown_path_is_404(server: RunningServer) -> None:
    response = httpx.post(f"{server.otlp_url}/v1/profiles", content=b"", headers={})
    assert response.status_code == 404


def test_healthz_on_both_http_ports(server: RunningServer) -> None:
    for port in (server.http_port, server.ui_port):
        response = httpx.get(f"http://127.0.0.1:{port}/healthz")
        assert response.status_code == 200
        assert response.text.strip() == "ok"


def _decode_workers(server: RunningServer) -> list[psutil.Process]:
    """The server's worker processes (children of its multiprocessing forkserver): its decode
    workers and its mining process."""
    children = psutil.Process(server.process.pid).children(recursive=True)
    forkservers = {
        child.pid
        for child in children
        if child.ppid() == server.process.pid and "forkserver" in " ".join(child.cmdline())
    }
    return [child for child in children if child.ppid() in forkservers]


def test_a_killed_decode_worker_is_replaced(start_server: ServerFactory) -> None:
    server = start_server()
    body = traces_request("http-before-kill", good_spans("http-before-kill")).SerializeToString()
    assert _post(server, "traces", body, PROTOBUF).status_code == 200
    workers = _decode_workers(server)
    if not workers:
        pytest.skip("this server decodes in its own process")
    for worker in workers:
        worker.kill()
    psutil.wait_procs(workers, timeout=10)

    body = traces_request("http-after-kill", good_spans("http-after-kill")).SerializeToString()
    statuses = []
    for _ in range(5):
        response = _post(server, "traces", body, PROTOBUF)
        statuses.append(response.status_code)
        if response.status_code == 200:
            break
        # Whatever was in flight is answered "retry later", never refused for good.
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        time.sleep(0.2)
    assert statuses[-1] == 200, statuses
    assert stored_span_names(server, trace_id_for("http-after-kill"), expect=2) == [
        "good-0",
        "good-1",
    ]
    assert server.healthy()


def test_decode_workers_exit_when_the_server_is_killed(start_server: ServerFactory) -> None:
    server = start_server()
    body = traces_request("http-kill-9", good_spans("http-kill-9")).SerializeToString()
    assert _post(server, "traces", body, PROTOBUF).status_code == 200
    workers = _decode_workers(server)
    if not workers:
        pytest.skip("this server decodes in its own process")
    server.expected_exit = -9
    server.process.kill()
    server.process.wait(timeout=10)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == [], "decode workers outlived their server"


def test_decode_workers_0_decodes_in_the_servers_own_process(start_server: ServerFactory) -> None:
    server = start_server(extra_args=("--decode-workers", "0"))
    services = [f"http-no-workers-{n}" for n in range(8)]
    bodies = [traces_request(s, good_spans(s)).SerializeToString() for s in services]
    with ThreadPoolExecutor(8) as threads:
        answers = list(threads.map(lambda body: _post(server, "traces", body, PROTOBUF), bodies))
    assert [answer.status_code for answer in answers] == [200] * 8
    # The mining process is the one worker process left (a default server starts decode
    # workers beside it as requests need them).
    assert len(_decode_workers(server)) == 1
    for service in services:
        assert stored_span_names(server, trace_id_for(service), expect=2) == ["good-0", "good-1"]


def test_a_negative_decode_worker_count_is_refused(tmp_path: Path) -> None:
    code, _, err = run_steth("up", "--decode-workers", "-1", "--data", str(tmp_path))
    assert code == 2
    assert "--decode-workers must be 0 or more" in err
    assert not (tmp_path / "steth.duckdb").exists()
