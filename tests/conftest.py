"""Shared fixtures: the real `steth up` as a child process, and the CLI run against it.

`start_server(token=None, extra_args=())` starts a server on fresh loopback ports and waits until
`GET /healthz` answers 200 on the OTLP/HTTP port and `<data>/server.json` exists; teardown sends
SIGTERM and asserts a clean exit (0, or `expected_exit`). `server` is one such server shared
by a test module.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> tuple[int, ...]:
    """Distinct free ports: all are held at once while chosen, so none is handed out twice."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return tuple(int(sock.getsockname()[1]) for sock in sockets)


def cli_env() -> dict[str, str]:
    """The environment for child processes, without the user's own steth settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("STETH_DATA", "STETH_TOKEN")}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_steth(*args: str, timeout: float = CLI_TIMEOUT_S) -> tuple[int, str, str]:
    """Run `steth ARGS` as a subprocess; (returncode, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "stethoscope.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stdout, done.stderr


@dataclass
class RunningServer:
    """A `steth up` child process and how to reach it."""

    data: Path
    grpc_port: int
    http_port: int
    ui_port: int
    token: str | None
    process: subprocess.Popen[bytes]
    log_path: Path
    headers: dict[str, str] = field(default_factory=dict)
    expected_exit: int = 0  # what teardown requires; a test that kills the server changes it

    @property
    def otlp_url(self) -> str:
        """Base URL of the OTLP/HTTP receiver (append /v1/traces etc.)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api_url(self) -> str:
        """Base URL of the query API."""
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def grpc_target(self) -> str:
        """host:port of the OTLP/gRPC receiver."""
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def steth(self, *args: str, timeout: float = CLI_TIMEOUT_S) -> tuple[int, str, str]:
        """Run `steth ARGS --data DATA`; (returncode, stdout, stderr)."""
        return run_steth(*args, "--data", str(self.data), timeout=timeout)

    def steth_json(self, *args: str) -> Any:
        """Run `steth ARGS --json --data DATA`, require exit 0, and parse stdout."""
        code, out, err = self.steth(*args, "--json")
        assert code == 0, f"steth {' '.join(args)} exited {code}: {err}"
        return json.loads(out)

    def healthy(self) -> bool:
        """Whether both HTTP ports answer /healthz with 200 and the process is alive."""
        if self.process.poll() is not None:
            return False
        try:
            for port in (self.http_port, self.ui_port):
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                if response.status_code != 200:
                    return False
        except httpx.HTTPError:
            return False
        return True

    def stop(self) -> int:
        """SIGTERM, wait, kill if needed; the exit code (-9 when it had to be killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        return int(self.process.returncode)


def _wait_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(f"steth up exited {server.process.returncode}:\n{server.log()}")
            try:
                ok = client.get(f"{server.otlp_url}/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok and (server.data / "server.json").exists():
                return
            time.sleep(0.05)
    pytest.fail(f"steth up was not ready within {STARTUP_TIMEOUT_S}s:\n{server.log()}")


@contextmanager
def launch_server(
    base: Path,
    *,
    token: str | None = None,
    extra_args: Sequence[str] = (),
    ports: tuple[int, int, int] | None = None,
) -> Iterator[RunningServer]:
    """Start `steth up` with its data under `base`; stop it (and check exit 0) on leaving.

    `ports` (grpc, http, api) lets a test start the collector late on ports a client already uses.
    """
    data = base / "data"
    ports = ports or free_ports(3)
    command = [
        sys.executable,
        "-m",
        "stethoscope.cli.main",
        "up",
        "--data",
        str(data),
        "--host",
        "127.0.0.1",
        "--grpc-port",
        str(ports[0]),
        "--http-port",
        str(ports[1]),
        "--ui-port",
        str(ports[2]),
        *extra_args,
    ]
    if token is not None:
        command += ["--token", token]
    log_path = base / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=cli_env()
        )
    server = RunningServer(
        data=data,
        grpc_port=ports[0],
        http_port=ports[1],
        ui_port=ports[2],
        token=token,
        process=process,
        log_path=log_path,
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    try:
        _wait_ready(server)
        yield server
    finally:
        code = server.stop()
    assert code == server.expected_exit, f"steth up exited {code}:\n{server.log()}"


ServerFactory = Callable[..., RunningServer]


@contextmanager
def _server_factory(make_base: Callable[[], Path]) -> Iterator[ServerFactory]:
    with ExitStack() as stack:

        def start(
            *,
            token: str | None = None,
            extra_args: Sequence[str] = (),
            ports: tuple[int, int, int] | None = None,
        ) -> RunningServer:
            base = make_base()
            return stack.enter_context(
                launch_server(base, token=token, extra_args=extra_args, ports=ports)
            )

        yield start


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """A factory: `start_server(token=None, extra_args=(), ports=None)` starts a server."""
    with _server_factory(lambda: tmp_path_factory.mktemp("server")) as start:
        yield start


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Like `start_server`, but the servers live until the module's tests are done."""
    with _server_factory(lambda: tmp_path_factory.mktemp("server")) as start:
        yield start


@pytest.fixture(scope="module")
def server(start_module_server: ServerFactory) -> RunningServer:
    """One server without a token, shared by the tests of a module."""
    return start_module_server()


# -- OTLP request builders shared by the receiver tests ----------------------------------------

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def varint(value: int) -> bytes:
    """A protobuf base-128 varint."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def pb_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, hand-encoded (upb refuses to build some of these)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def nested_array_value(depth: int) -> bytes:
    """An AnyValue holding an array holding an array... `depth` levels deep, as bytes."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    value = AnyValue(string_value="bottom").SerializeToString()
    for _ in range(depth):
        value = pb_field(5, pb_field(1, value))  # AnyValue.array_value, ArrayValue.values
    return value


def trace_id_for(name: str) -> bytes:
    """A stable 16-byte trace id derived from a name (so each test has its own trace)."""
    import hashlib

    return hashlib.blake2b(name.encode(), digest_size=16).digest()


def span_dict(trace_id: bytes, span_id: bytes, name: str, **extra: Any) -> dict[str, Any]:
    """One span as an OTLP/JSON object (hex ids), started now."""
    now = time.time_ns()
    return {
        "traceId": trace_id.hex(),
        "spanId": span_id.hex(),
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 1_000_000),
        **extra,
    }


def json_traces(service: str, spans: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """An OTLP/JSON ExportTraceServiceRequest with one resource and one scope."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "steth.tests"}, "spans": list(spans)}],
            }
        ]
    }


def traces_request(service: str, spans: Sequence[dict[str, Any]]) -> Any:
    """The same request as a protobuf ExportTraceServiceRequest (ids given as hex)."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    document = json_traces(service, spans)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = _b64(bytes.fromhex(span[key]))
    return json_format.ParseDict(document, ExportTraceServiceRequest())


def good_spans(service: str, count: int = 2) -> list[dict[str, Any]]:
    """`count` valid spans of one trace named after the service: good-0, good-1, ..."""
    trace_id = trace_id_for(service)
    return [span_dict(trace_id, (i + 1).to_bytes(8, "big"), f"good-{i}") for i in range(count)]


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


def stored_span_names(server: RunningServer, trace_id: bytes, *, expect: int = 1) -> list[str]:
    """Names of the stored spans of a trace, read from the API (waiting for `expect` of them)."""
    names: list[str] = []
    deadline = time.monotonic() + 10
    with httpx.Client(base_url=server.api_url, headers=server.headers, timeout=10) as client:
        while True:
            response = client.get(f"/api/traces/{trace_id.hex()}")
            if response.status_code == 200:
                names = sorted(span["name"] for span in response.json()["spans"])
            if len(names) >= expect or time.monotonic() > deadline:
                return names
            time.sleep(0.1)


def stored_log_bodies(server: RunningServer, service: str, *, expect: int = 1) -> list[str]:
    """Bodies of a service's stored log records, from the API (waiting for `expect` of them)."""
    bodies: list[str] = []
    deadline = time.monotonic() + 10
    with httpx.Client(base_url=server.api_url, headers=server.headers, timeout=10) as client:
        while True:
            response = client.get("/api/logs", params={"service": service})
            if response.status_code == 200:
                bodies = sorted(str(record["body"]) for record in response.json()["logs"])
            if len(bodies) >= expect or time.monotonic() > deadline:
                return bodies
            time.sleep(0.1)
