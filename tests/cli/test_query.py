"""The query commands against a running server: `logs --follow`, `trace` by a short id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from conftest import RunningServer, cli_env


def log_request(body: str) -> dict:
    record = {"timeUnixNano": str(time.time_ns()), "severityNumber": 13, "severityText": "WARN",
              "body": {"stringValue": body}}  # fmt: skip
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "tailing"}}]}
    return {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [record]}]}]}


def send(server: RunningServer, body: str) -> None:
    response = httpx.post(f"{server.otlp_url}/v1/logs", json=log_request(body))
    assert response.status_code == 200, response.text


def test_follow_prints_new_records_once_in_order(start_server) -> None:
    server: RunningServer = start_server()
    send(server, "before the follow started")
    follower = subprocess.Popen(
        [sys.executable, "-m", "stethoscope.cli.main", "logs", "--follow", "--json",
         "--service", "tailing", "--data", str(server.data)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        first = json.loads(follower.stdout.readline())
        assert first["body"] == "before the follow started"
        for i in range(3):
            send(server, f"arrived later {i}")
        later = [json.loads(follower.stdout.readline())["body"] for _ in range(3)]
        assert later == ["arrived later 0", "arrived later 1", "arrived later 2"]
    finally:
        follower.terminate()
        follower.communicate(timeout=10)


def test_follow_without_a_server_is_a_usage_error(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stethoscope.cli.main", "logs", "--follow", "--data", str(tmp_path)],
        capture_output=True, text=True, env=cli_env(), timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "needs a running server" in done.stderr


def test_steth_trace_takes_the_short_id_a_log_line_shows(start_server) -> None:
    server: RunningServer = start_server()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    request = log_request("with a trace")
    request["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["traceId"] = trace_id
    assert httpx.post(f"{server.otlp_url}/v1/logs", json=request).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        code, out, _ = server.steth("logs", "--service", "tailing")
        if "trace=4bf92f35" in out:
            break
        time.sleep(0.2)
    assert "trace=4bf92f35" in out
    found = server.steth_json("trace", "4bf92f35")
    assert found["trace_id"] == trace_id
    assert [r["body"] for r in found["logs"]] == ["with a trace"]
    code, _, err = server.steth("trace", "00000000")
    assert code == 2 and "no trace id starts with 00000000" in err


# What `steth trace ID --json` through a server's API must not import: each was part of its
# start-up once (the store's query types ~8 ms, the idna codec ~1 ms, rich far more).
NOT_ON_THE_TRACE_PATH = (
    "stethoscope.store.base",
    "stethoscope.server.queryparams",
    "stethoscope.model.timeutil",
    "encodings.idna",
    "rich",
    # HTTP clients and what they bring, 10-20 ms of start-up each (cli/http11.py)
    "dataclasses",
    "h11",
    "http.client",
)


class _TraceAnswer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.dumps({"trace_id": self.path.rsplit("/", 1)[-1], "spans": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def api_on(data: Path) -> Iterator[None]:
    """A stand-in API on loopback, recorded in `data` as a running server (this process)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TraceAnswer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    record = {"host": "127.0.0.1", "grpc_port": 1, "http_port": 1, "pid": os.getpid()}
    (data / "server.json").write_text(json.dumps(record | {"api_port": server.server_port}))
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_trace_through_the_api_imports_only_what_it_needs(tmp_path: Path) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    code = (
        "import sys\n"
        "from stethoscope.cli.main import main\n"
        f"main(['trace', {trace_id!r}, '--json', '--data', {str(tmp_path)!r}])\n"
        f"print(sorted(set(sys.modules) & set({NOT_ON_THE_TRACE_PATH!r})))"
    )
    with api_on(tmp_path):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True, text=True, check=True, timeout=60, env=cli_env(),
        )  # fmt: skip
    answer, imported = done.stdout.rstrip("\n").rsplit("\n", 1)
    assert json.loads(answer)["trace_id"] == trace_id
    assert imported == "[]"
