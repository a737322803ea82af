"""`steth scrape` end to end: a real prometheus_client exposition, misbehaving targets, the real
collector (`steth up`), and the CLI reading back what was stored."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningServer, cli_env, free_port, run_steth
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from stethoscope.sources.scrape.exposition import ACCEPT

INTERVAL = "0.5s"
TIMEOUT = "0.4s"
WAIT_S = 20.0

TARGET_PROGRAM = """
import sys
from prometheus_client import (
    CollectorRegistry, Counter, Gauge, Histogram, Info, Summary, start_http_server,
)
registry = CollectorRegistry()
requests = Counter("shop_requests", "Requests served", ["method", "code"], registry=registry)
requests.labels("GET", "200").inc(7)
requests.labels("POST", "500").inc(2)
Gauge("shop_queue_depth", "Jobs waiting", registry=registry).set(4)
latency = Histogram("shop_latency_seconds", "Latency", registry=registry, buckets=(0.1, 1.0))
for value in (0.05, 0.5, 3.0):
    latency.observe(value)
size = Summary("shop_response_bytes", "Response size", registry=registry)
size.observe(100)
size.observe(300)
Info("shop_build", "Build", registry=registry).info({"version": "1.2.3"})
start_http_server(int(sys.argv[1]), addr="127.0.0.1", registry=registry)
print("ready", flush=True)
sys.stdin.read()  # serve until the test closes stdin
"""


@contextmanager
def prometheus_target(port: int) -> Iterator[str]:
    """prometheus_client's own HTTP server in a child process; yields its /metrics URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", TARGET_PROGRAM, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=cli_env(),
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        process.terminate()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


@dataclass
class Scrape:
    """A running `steth scrape` child process."""

    process: subprocess.Popen[bytes]
    stderr_path: Path

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        """Signal it, wait; (exit code, what it wrote on stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return int(self.process.returncode), self.stderr_path.read_text()


@contextmanager
def steth_scrape(
    server: RunningServer, tmp_path: Path, service: str, urls: list[str], *extra: str
) -> Iterator[Scrape]:
    """Run the real `steth scrape` against the test server; stopped (SIGTERM) on leaving."""
    stderr_path = tmp_path / f"scrape-{service}.err"
    command = [sys.executable, "-m", "stethoscope.cli.main", "scrape", *urls]
    command += ["--service", service, "--interval", INTERVAL, "--timeout", TIMEOUT]
    command += ["--endpoint", server.otlp_url, *extra]
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=cli_env(),
        )
    scrape = Scrape(process, stderr_path)
    try:
        yield scrape
    finally:
        scrape.stop()


def api(server: RunningServer, path: str, **params: Any) -> Any:
    response = httpx.get(f"{server.api_url}{path}", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


def up_series(server: RunningServer, service: str, key: str = "value") -> dict[str, list[Any]]:
    """`up` values (or their times, with key="time_ns") per instance, oldest first."""
    found = api(server, "/api/metrics", name="up", service=service, points=100)
    return {
        series["instance"]: [point[key] for point in series["points"]] for series in found["series"]
    }


def events(server: RunningServer, service: str) -> list[dict[str, Any]]:
    """The service's `scrape.target` events, oldest first."""
    logs = api(server, "/api/logs", service=service, limit=1000)["logs"]
    found = [row for row in logs if row["attributes"].get("event.name") == "scrape.target"]
    return sorted(found, key=lambda row: row["time_ns"])


def wait_for(condition: Callable[[], bool], what: str, scrape: Scrape | None = None) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        if scrape is not None and scrape.process.poll() is not None:
            pytest.fail(f"steth scrape exited: {scrape.stderr_path.read_text()}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def cli_json(server: RunningServer, *args: str) -> Any:
    code, out, err = server.steth(*args, "--json")
    assert code == 0, err
    return json.loads(out)


# -- a real exposition ----------------------------------------------------------------------


def test_scraped_series_are_stored_with_their_types(server: RunningServer, tmp_path: Path) -> None:
    port = free_port()
    instance = f"127.0.0.1:{port}"
    with prometheus_target(port) as url, steth_scrape(server, tmp_path, "shop", [url]) as scrape:
        wait_for(
            lambda: len(up_series(server, "shop").get(instance, [])) >= 2, "two scrapes", scrape
        )
        exposed = httpx.get(url, headers={"Accept": ACCEPT}, timeout=5)
        code, stderr = scrape.stop()
    assert code == 0, stderr
    assert f"{url} ({instance}): " in stderr and "0 failed, now up" in stderr

    listed = {m["name"]: m for m in cli_json(server, "metrics", "--service", "shop")["metrics"]}
    assert {name: listed[name]["type"] for name in listed} == {
        "shop_requests_total": "sum",
        "shop_queue_depth": "gauge",
        "shop_latency_seconds": "histogram",
        "shop_response_bytes": "summary",
        "shop_build_info": "gauge",
        "up": "gauge",
        "scrape_duration_seconds": "gauge",
        "scrape_samples_scraped": "gauge",
    }  # and no `_created` series: those are start times
    assert listed["shop_latency_seconds"]["unit"] == "seconds"
    assert listed["shop_requests_total"]["description"] == "Requests served"

    def last(name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        found = cli_json(server, "metrics", name, "--service", "shop", "--points", "1")
        assert {series["instance"] for series in found["series"]} == {instance}
        return {tuple(sorted(s["attributes"].items())): s["points"][-1] for s in found["series"]}

    requests = cli_json(server, "metrics", "shop_requests_total", "--service", "shop")
    assert requests["temporality"] == "cumulative"
    assert {tuple(sorted(s["attributes"].items())): s["last"] for s in requests["series"]} == {
        (("code", "200"), ("method", "GET")): 7.0,
        (("code", "500"), ("method", "POST")): 2.0,
    }
    (histogram,) = last("shop_latency_seconds").values()
    assert histogram["explicit_bounds"] == [0.1, 1.0] and histogram["bucket_counts"] == [1, 1, 1]
    assert histogram["count"] == 3 and histogram["sum"] == pytest.approx(3.55)
    (summary,) = last("shop_response_bytes").values()
    assert summary["count"] == 2 and summary["sum"] == 400.0
    assert {key: point["value"] for key, point in last("shop_build_info").items()} == {
        (("version", "1.2.3"),): 1.0
    }
    assert [p["value"] for p in last("up").values()] == [1.0]
    samples = sum(len(f.samples) for f in text_string_to_metric_families(exposed.text))
    assert [p["value"] for p in last("scrape_samples_scraped").values()] == [float(samples)]


# -- targets that misbehave -------------------------------------------------------------------


def _respond(status: int, body: bytes, content_type: str = "text/plain; version=0.0.4"):
    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return handle


def _slow(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(5)  # far beyond --timeout
    with contextlib.suppress(ConnectionError):  # the scraper gave up long ago
        _respond(200, b"late 1\n")(handler)


def _stream_without_length(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain; version=0.0.4")
    handler.end_headers()  # HTTP/1.0 without Content-Length: the body ends when the socket does
    with contextlib.suppress(ConnectionError):  # the scraper stops reading at its limit
        for _ in range(MAX_BODY_MIB * 4 + 1):
            handler.wfile.write(b"# " + b"x" * (2**18) + b"\n")


def _hang_up(handler: BaseHTTPRequestHandler) -> None:
    handler.close_connection = True  # no status line at all


MAX_BODY_MIB = 1
MAX_SAMPLES = 40
BAD_TARGETS = {
    "html-page": (
        _respond(200, b"<html><body>Hello</body></html>\n", "text/html"),
        "not valid Prometheus text",
    ),
    "openmetrics-without-eof": (
        _respond(200, b"a 1\n", "application/openmetrics-text; version=1.0.0"),
        "not valid OpenMetrics",
    ),
    "server-error": (_respond(500, b"boom"), "HTTP 500"),
    "not-found": (_respond(404, b"nope"), "HTTP 404"),
    "too-large": (_respond(200, b"# " + b"x" * (MAX_BODY_MIB * 2**20) + b"\n"), "byte limit"),
    "too-large-streamed": (_stream_without_length, "answer is over the"),
    "too-many-samples": (
        _respond(200, b"".join(b"s%d 1\n" % i for i in range(MAX_SAMPLES + 1))),
        f"more than {MAX_SAMPLES} samples",
    ),
    "slow": (_slow, "timed out after 0.4s"),
    "slow-too": (_slow, "timed out after 0.4s"),
    "slow-as-well": (_slow, "timed out after 0.4s"),
    "hangs-up": (_hang_up, "RemoteProtocolError"),
    "unreachable": (None, "ConnectError"),
}


@contextmanager
def http_target(handle: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            handle(self)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/metrics"
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class BadRun:
    urls: dict[str, str]  # case -> URL
    good_url: str
    duplicates_url: str  # answers, but repeats a series
    up: dict[str, list[float]]
    times: dict[str, list[int]]
    events: list[dict[str, Any]]
    exit_code: int
    stderr: str


@pytest.fixture(scope="module")
def bad_run(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> BadRun:
    """One `steth scrape` over every bad target and one good one, until each was scraped."""
    with contextlib.ExitStack() as stack:
        urls = {
            case: stack.enter_context(http_target(handle))
            if handle
            else f"http://127.0.0.1:{free_port()}/metrics"
            for case, (handle, _) in BAD_TARGETS.items()
        }
        good = stack.enter_context(prometheus_target(free_port()))
        duplicates = stack.enter_context(http_target(_respond(200, b'd{a="1"} 5\nd{a="1"} 6\n')))
        every = [*urls.values(), good, duplicates]
        extra = ("--max-body", str(MAX_BODY_MIB), "--max-samples", str(MAX_SAMPLES))
        scrape = stack.enter_context(
            steth_scrape(server, tmp_path_factory.mktemp("bad"), "bad", every, *extra)
        )

        def every_target_scraped_and_good_thrice() -> bool:
            up = up_series(server, "bad")
            return len(up) == len(every) and len(up.get(good.split("/")[2], [])) >= 3

        wait_for(every_target_scraped_and_good_thrice, "every target scraped", scrape)
        wait_for(lambda: len(events(server, "bad")) >= len(every), "the events", scrape)
        code, stderr = scrape.stop()
        times = up_series(server, "bad", "time_ns")
        up = up_series(server, "bad")
        return BadRun(urls, good, duplicates, up, times, events(server, "bad"), code, stderr)


def summary_line(stderr: str, url: str) -> str:
    """The line of the final summary about one target."""
    (line,) = [line for line in stderr.splitlines() if line.startswith(f"steth scrape: {url} (")]
    return line


@pytest.mark.parametrize("case", list(BAD_TARGETS))
def test_a_bad_target_is_down_with_its_reason(bad_run: BadRun, case: str) -> None:
    url = bad_run.urls[case]
    instance = url.split("/")[2]
    assert bad_run.up[instance] and set(bad_run.up[instance]) == {0.0}
    (event,) = [e for e in bad_run.events if e["attributes"]["url.full"] == url]
    assert event["attributes"]["scrape.state"] == "down"
    assert event["severity_text"] == "WARN"
    assert BAD_TARGETS[case][1] in event["attributes"]["error.message"]
    line = summary_line(bad_run.stderr, url)
    assert "now down (" in line and BAD_TARGETS[case][1] in line


def test_bad_targets_neither_crash_nor_delay_the_good_one(bad_run: BadRun) -> None:
    assert bad_run.exit_code == 0, bad_run.stderr
    good = bad_run.up[bad_run.good_url.split("/")[2]]
    assert len(good) >= 3 and set(good) == {1.0}
    # Three targets each take the whole 0.4 s timeout: scraped one after another they would
    # space the good target's scrapes 1.2 s or more apart; concurrently it keeps its 0.5 s.
    times = bad_run.times[bad_run.good_url.split("/")[2]]
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    assert gaps[len(gaps) // 2] < 1.0e9, gaps
    (event,) = [e for e in bad_run.events if e["attributes"]["url.full"] == bad_run.good_url]
    assert event["attributes"]["scrape.state"] == "up" and event["severity_text"] == "INFO"


def test_refused_samples_are_counted_not_fatal(bad_run: BadRun) -> None:
    assert set(bad_run.up[bad_run.duplicates_url.split("/")[2]]) == {1.0}
    line = summary_line(bad_run.stderr, bad_run.duplicates_url)
    assert "samples refused (duplicate series d{'a': '1'})" in line and line.endswith("now up")


# -- a target that comes and goes -------------------------------------------------------------


def test_a_target_going_up_and_down_is_reported(server: RunningServer, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with steth_scrape(server, tmp_path, "flappy", [url]) as scrape:
        wait_for(lambda: len(events(server, "flappy")) == 1, "the down event", scrape)
        with prometheus_target(port):
            wait_for(lambda: len(events(server, "flappy")) == 2, "the up event", scrape)
        wait_for(lambda: len(events(server, "flappy")) == 3, "the second down event", scrape)
        code, stderr = scrape.stop(signal.SIGINT)  # Ctrl-C
    assert code == 0, stderr
    assert "now down" in stderr
    logs = cli_json(server, "logs", "--service", "flappy")["logs"]
    found = [
        (row["severity_text"], row["attributes"]["scrape.state"], row["body"])
        for row in sorted(logs, key=lambda row: row["time_ns"])
        if row["attributes"].get("event.name") == "scrape.target"
    ]
    assert [(severity, state) for severity, state, _ in found] == [
        ("WARN", "down"),
        ("INFO", "up"),
        ("WARN", "down"),
    ]
    assert "is back up" in found[1][2] and "ConnectError" in found[2][2]
    values = up_series(server, "flappy")[f"127.0.0.1:{port}"]
    assert values[0] == 0.0 and 1.0 in values and values[-1] == 0.0


# -- usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["ftp://h/metrics", "--service", "s"], "http:// or https://", id="bad-scheme"),
        pytest.param(["http://h:x/metrics", "--service", "s"], "bad port", id="bad-port"),
        pytest.param(
            ["http://h/m", "--service", " "], "--service must not be empty", id="blank-service"
        ),
        pytest.param(
            ["http://h/m", "--service", "s", "--interval", "5s", "--timeout", "10s"],
            "must not exceed --interval",
            id="timeout-over-interval",
        ),
        pytest.param(
            ["http://a/m", "http://b/m", "--service", "s", "--instance", "i"],
            "--instance names one target",
            id="instance-with-two-urls",
        ),
        pytest.param(
            ["http://a:80/m", "http://a/other", "--service", "s"],
            "share the instance a:80",
            id="same-host-port-twice",
        ),
        pytest.param(
            ["http://h/m", "--service", "s", "--interval", "soon"],
            "not a duration",
            id="bad-interval",
        ),
        pytest.param(
            ["http://h/m", "--service", "s", "--endpoint", "h:4318"],
            "--endpoint",
            id="bad-endpoint",
        ),
        pytest.param(
            ["http://h/m", "--service", "s", "--max-body", "0"], "--max-body", id="zero-max-body"
        ),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    code, _, stderr = run_steth("scrape", *args)
    assert code == 2
    assert message in stderr
