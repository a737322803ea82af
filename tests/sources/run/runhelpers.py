"""Running the real `steth run` against the real `steth up` and reading what arrived."""

from __future__ import annotations

import http.server
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from conftest import RunningServer, cli_env

STETH_RUN = [sys.executable, "-m", "stethoscope.cli.main", "run"]
WAIT_S = 20.0
PY = sys.executable
# Python children start faster without OpenTelemetry; tests that do not look at traces use it.
NO_OTEL = "--no-instrument"


def run_command(server_url: str, service: str, options: Sequence[str] = ()) -> list[str]:
    """The `steth run` command line up to and including `--`."""
    return [*STETH_RUN, "--endpoint", server_url, "--service", service, *options, "--"]


def steth_run(
    server: RunningServer,
    service: str,
    command: Sequence[str],
    *options: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `steth run ... -- COMMAND` to the end; its exit status and exact output bytes."""
    return subprocess.run(
        [*run_command(server.otlp_url, service, options), *command],
        capture_output=True,
        timeout=60,
        env=env or cli_env(),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def wait_for(
    server: RunningServer, service: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The service's records from `steth logs --json` (oldest first), once `done(records)`.

    The query API is polled until then (a CLI process per poll would be slow).
    """
    deadline = time.monotonic() + WAIT_S
    params = {"service": service, "limit": "5000"}
    while time.monotonic() < deadline:
        found = httpx.get(f"{server.api_url}/api/logs", params=params, timeout=10).json()["logs"]
        if done(found):
            break
        time.sleep(0.1)
    return server.steth_json("logs", "--service", service, "--limit", "5000")["logs"]


def events(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [row for row in rows if row["event_name"] == name]


def has_event(name: str, count: int = 1) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda rows: len(events(rows, name)) >= count


def output_records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if "log.iostream" in row["attributes"]]


def write_script(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    path.chmod(0o755)
    return path


def start_and_wait_ready(command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start `steth run`, wait for the child's first stdout line 'ready'."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(), **kwargs
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    return process


def metric(server: RunningServer, service: str, name: str) -> dict[str, Any]:
    """One metric's series for a service, from the query API, polled until it has some."""
    deadline = time.monotonic() + WAIT_S
    params = {"name": name, "service": service, "points": "1000"}
    while True:
        found = httpx.get(f"{server.api_url}/api/metrics", params=params, timeout=10).json()
        if found["series"] or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def peak(server: RunningServer, service: str, name: str) -> float:
    """The largest value of a one-series metric (samples at start and exit see less)."""
    series = metric(server, service, name)["series"]
    return max(point["value"] for point in series[0]["points"])


class HealthServer:
    """A tiny HTTP server on 127.0.0.1 answering 200 to every GET, until stopped."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/healthz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
