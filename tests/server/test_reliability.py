"""What an operator relies on when things go wrong: kill -9, restarts, overload, retention."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import cli_env, free_ports, launch_server, run_steth
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from stethoscope.store.duckdb.rowgroups import ROW_GROUP_ROWS
from stethoscope.store.duckdb.store import DuckDBStore

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def span_request(service: str, trace_ids: list[bytes], *, spans_per_trace: int = 1) -> bytes:
    """An export request with one root span (plus children) per trace id."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
    scope_spans = resource_spans.scope_spans.add()
    now = time.time_ns()
    for trace_id in trace_ids:
        for i in range(spans_per_trace):
            span = scope_spans.spans.add()
            span.trace_id = trace_id
            span.span_id = (i + 1).to_bytes(8, "big")
            if i:
                span.parent_span_id = (1).to_bytes(8, "big")
            span.name = f"op-{i}"
            span.start_time_unix_nano = now
            span.end_time_unix_nano = now + 1_000_000
            span.attributes.add(key="payload", value=AnyValue(string_value="x" * 200))
    return request.SerializeToString()


def start_raw_server(data: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int, int]:
    """`steth up` on fresh ports; (process, http port, api port) once healthy."""
    grpc_port, http_port, api_port = free_ports(3)
    data.mkdir(parents=True, exist_ok=True)
    log = data.parent / f"server-{http_port}.log"  # what it said, should it not start
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "stethoscope.cli.main", "up", "--data", str(data),
             "--grpc-port", str(grpc_port), "--http-port", str(http_port),
             "--ui-port", str(api_port), *extra],
            stdout=output, stderr=output, stdin=subprocess.DEVNULL, env=cli_env(),
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1).status_code == 200:
                return process, http_port, api_port
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError(f"server did not start (exit {process.returncode}): {log.read_text()}")


def stored_trace_count(data: Path, service: str) -> int:
    """Traces of a service as the CLI reports them from the store itself."""
    code, out, err = run_steth("traces", "--service", service, "--limit", "100000", "--json",
                               "--data", str(data))  # fmt: skip
    assert code == 0, err
    return len(json.loads(out)["traces"])


def stored_spans_per_trace(data: Path) -> dict[bytes, int]:
    """Spans of each trace id in the store file itself."""
    store = DuckDBStore(data, read_only=True)
    query = "SELECT trace_hi, trace_lo, count(*) FROM spans GROUP BY ALL"
    found = store.cursor().execute(query).fetchall()
    store.close()
    return {hi.to_bytes(8, "big") + lo.to_bytes(8, "big"): count for hi, lo, count in found}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("traces_per_request", "spans_per_trace", "at_least", "flush_interval"),
    [
        (20, 1, 100, "0.5"),
        # Groups big enough for the writer to store whole row groups and hold the rest back.
        (100, 10, 2 * ROW_GROUP_ROWS, "10"),
    ],
)
def test_every_acknowledged_span_survives_kill_9(
    tmp_path: Path,
    traces_per_request: int,
    spans_per_trace: int,
    at_least: int,
    flush_interval: str,
) -> None:
    data = tmp_path / "data"
    process, http_port, _ = start_raw_server(data, "--flush-interval", flush_interval)
    acknowledged: list[bytes] = []
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as client:
            while not stop.is_set():
                ids = [os.urandom(16) for _ in range(traces_per_request)]
                body = span_request("victim", ids, spans_per_trace=spans_per_trace)
                try:
                    response = client.post("/v1/traces", content=body, headers=PROTOBUF)
                except httpx.HTTPError:
                    return  # the server is gone: nothing more was acknowledged
                if response.status_code == 200:
                    acknowledged.extend(ids)

    senders = [threading.Thread(target=send) for _ in range(4)]
    for thread in senders:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) * spans_per_trace < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    process.kill()  # SIGKILL while requests are in flight
    process.wait()
    stop.set()
    for thread in senders:
        thread.join()
    assert len(acknowledged) * spans_per_trace >= at_least, "the test sent too little"

    process, _, _ = start_raw_server(data)  # replays the write-ahead log
    process.terminate()
    assert process.wait(timeout=60) == 0
    stored = stored_spans_per_trace(data)
    assert all(stored.get(trace_id) == spans_per_trace for trace_id in acknowledged)
    assert set(stored.values()) == {spans_per_trace}  # none twice, none in part
    assert len(stored) <= len(acknowledged) + 4 * traces_per_request  # in flight at the kill
    assert stored_trace_count(data, "victim") == len(stored)


@pytest.mark.slow
def test_data_survives_a_clean_restart(tmp_path: Path) -> None:
    with launch_server(tmp_path) as server:
        body = span_request("persistent", [os.urandom(16)], spans_per_trace=3)
        response = httpx.post(f"{server.otlp_url}/v1/traces", headers=PROTOBUF, content=body)
        assert response.status_code == 200
    with launch_server(tmp_path) as server:
        traces = server.steth_json("traces", "--service", "persistent")["traces"]
        assert [t["span_count"] for t in traces] == [3]
    # And with no server running, the CLI reads the store itself.
    assert stored_trace_count(tmp_path / "data", "persistent") == 1


@pytest.mark.slow
def test_overload_is_refused_with_retry_after_and_memory_stays_bounded(tmp_path: Path) -> None:
    # A tiny pending-data bound makes the writer the bottleneck at once.
    with launch_server(tmp_path, extra_args=["--max-pending", "1"]) as server:
        body = span_request("flood", [os.urandom(16) for _ in range(400)], spans_per_trace=2)
        statuses: list[int] = []
        retry_after: set[str] = set()
        acknowledged = 0
        lock = threading.Lock()
        peak_rss = 0
        done = threading.Event()

        def flood() -> None:
            nonlocal acknowledged
            with httpx.Client(base_url=server.otlp_url, timeout=30) as client:
                for _ in range(40):
                    response = client.post("/v1/traces", content=body, headers=PROTOBUF)
                    with lock:
                        statuses.append(response.status_code)
                        if response.status_code == 200:
                            acknowledged += 800
                        elif "retry-after" in response.headers:
                            retry_after.add(response.headers["retry-after"])

        def watch() -> None:
            nonlocal peak_rss
            process = psutil.Process(server.process.pid)
            while not done.is_set():
                rss = process.memory_info().rss + sum(
                    child.memory_info().rss for child in process.children(recursive=True)
                )
                peak_rss = max(peak_rss, rss)
                time.sleep(0.1)

        watcher = threading.Thread(target=watch)
        watcher.start()
        floods = [threading.Thread(target=flood) for _ in range(12)]
        for thread in floods:
            thread.start()
        for thread in floods:
            thread.join()
        done.set()
        watcher.join()

        refused = [s for s in statuses if s in (429, 503)]
        assert refused, f"no backpressure seen: {sorted(set(statuses))}"
        assert set(statuses) <= {200, 429, 503}
        assert retry_after and all(value.isdigit() for value in retry_after)
        assert peak_rss < 1024**3
        assert server.healthy()
        stats = httpx.get(f"{server.api_url}/api/stats").json()
        assert stats["refused_overload"] > 0 or 429 in statuses
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.api_url}/api/stats").json()["pending_bytes"] and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        spans = sum(
            t["span_count"]
            for t in server.steth_json("traces", "--service", "flood", "--limit", "100000")[
                "traces"
            ]
        )
        assert spans == acknowledged


@pytest.mark.slow
def test_grpc_overload_is_unavailable_with_retry_info(tmp_path: Path) -> None:
    import grpc
    from google.rpc import error_details_pb2, status_pb2

    with launch_server(tmp_path, extra_args=["--max-pending", "1"]) as server:
        body = span_request("grpc-flood", [os.urandom(16) for _ in range(400)], spans_per_trace=2)
        request = ExportTraceServiceRequest.FromString(body)
        refusals: list[grpc.RpcError] = []
        lock = threading.Lock()

        def flood() -> None:
            with grpc.insecure_channel(server.grpc_target) as channel:
                export = channel.unary_unary(
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=lambda b: b,
                )
                for _ in range(30):
                    try:
                        export(request, timeout=30)
                    except grpc.RpcError as error:
                        with lock:
                            refusals.append(error)

        threads = [threading.Thread(target=flood) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert refusals, "no backpressure seen over gRPC"
        assert {error.code() for error in refusals} <= {grpc.StatusCode.UNAVAILABLE}
        trailers = dict(refusals[0].trailing_metadata())
        status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        info = error_details_pb2.RetryInfo()
        assert any(detail.Unpack(info) for detail in status.details)
        assert info.retry_delay.seconds >= 1
        assert server.healthy()
