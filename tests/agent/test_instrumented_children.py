"""Real child processes run with `child_environment`, reporting to the real `steth up`.

Two instances of a small starlette service (tests/agent/service_app.py) under uvicorn: `front`
started as `python -m uvicorn`, `back` through the `uvicorn` console script (detected by its #!
line). Neither knows about OpenTelemetry; the traces, metrics and trace ids in their log lines
come from the injection alone.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from conftest import RunningServer, ServerFactory, cli_env, free_port, run_steth

from stethoscope.agent.inject import AGENT_PATH_VAR, AGENT_PYTHON_VAR, child_environment

APP_DIR = Path(__file__).parent
WAIT_S = 30.0
TRACE_ID = re.compile(r"trace_id=([0-9a-f]{32})")
ITEMS = ("apple-0", "apple-1", "apple-2")
# What a child reports about itself: whether an SDK tracer provider was installed, and whether
# the user's own sitecustomize ran. A URL in PROBE_URL is fetched with urllib (a client span).
PROBE = """
import json, os, urllib.request
try:
    from opentelemetry import trace
    provider = type(trace.get_tracer_provider()).__name__
except ImportError:
    provider = None
if os.environ.get("PROBE_URL"):
    with urllib.request.urlopen(os.environ["PROBE_URL"], timeout=10) as answer:
        answer.read()
print(json.dumps({"provider": provider, "user_site": os.environ.get("USER_SITE_RAN")}))
"""

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str) -> T:
    """The first truthy answer of `probe`, asked until WAIT_S has passed."""
    deadline = time.monotonic() + WAIT_S
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


def environment(
    server: RunningServer, argv: list[str], service: str, **extra: str
) -> dict[str, str]:
    # PYTHONPATH only as the test gives it: an inherited one could hand the bare venv packages.
    base = {**{k: v for k, v in cli_env().items() if k != "PYTHONPATH"}, **extra}
    return child_environment(
        argv,
        base,
        service=service,
        instance=f"{service}-1",
        endpoint=server.otlp_url,
        token=None,
    )


@dataclass
class Shop:
    """The two running service instances and their captured output."""

    front_url: str
    front_log: Path
    back_log: Path


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            pytest.fail(f"service exited {process.returncode}:\n{log.read_text()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    eventually(listening, f"port {port}")


@pytest.fixture(scope="module")
def shop(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    base = tmp_path_factory.mktemp("shop")
    front_port, back_port = free_port(), free_port()
    app = ["service_app:app", "--app-dir", str(APP_DIR), "--host", "127.0.0.1"]
    uvicorn_script = shutil.which("uvicorn", path=str(Path(sys.executable).parent))
    assert uvicorn_script, "uvicorn's console script is installed beside this Python"
    back_argv = [uvicorn_script, *app, "--port", str(back_port)]
    front_argv = [sys.executable, "-m", "uvicorn", *app, "--port", str(front_port)]
    # A user's own tuning wins over steth's defaults: metrics every half second here.
    tuning = {"OTEL_METRIC_EXPORT_INTERVAL": "500"}
    back_env = environment(server, back_argv, "shop-back", **tuning)
    front_env = environment(server, front_argv, "shop-front", **tuning)
    front_env["BACKEND_URL"] = f"http://127.0.0.1:{back_port}"
    front_log, back_log = base / "front.log", base / "back.log"
    processes = [
        (_start(back_argv, back_env, back_log), back_port, back_log),
        (_start(front_argv, front_env, front_log), front_port, front_log),
    ]
    try:
        for process, port, log in processes:
            _wait_listening(port, process, log)
        front_url = f"http://127.0.0.1:{front_port}"
        for item in ITEMS:
            answer = httpx.get(f"{front_url}/hello", params={"item": item}, timeout=10)
            assert answer.status_code == 200, answer.text
        yield Shop(front_url=front_url, front_log=front_log, back_log=back_log)
    finally:
        for process, _, _ in processes:
            process.terminate()
            process.wait(timeout=WAIT_S)


def stored_trace(server: RunningServer, trace_id: str, *, services: int) -> dict[str, Any]:
    """The trace as `steth trace --json` shows it, once spans of `services` services are in."""

    def complete() -> dict[str, Any] | None:
        code, out, _ = server.steth("trace", trace_id, "--json")
        if code != 0:
            return None
        found: dict[str, Any] = json.loads(out)
        return found if len({span["service"] for span in found["spans"]}) >= services else None

    return eventually(complete, f"trace {trace_id} in the store")


def logged_trace_ids(log: Path, message: str) -> dict[str, str]:
    """item -> the trace id printed on the `logging` line `<message> <item>`."""
    found = {}
    for line in log.read_text().splitlines():
        for item in ITEMS:
            if line.endswith(f"{message} {item}"):
                match = TRACE_ID.search(line)
                assert match, f"no trace id in {line!r}"
                found[item] = match.group(1)
    return found


def test_server_and_client_spans_are_linked_across_the_http_hop(
    server: RunningServer, shop: Shop
) -> None:
    def front_traces() -> list[dict[str, Any]]:
        rows = server.steth_json("traces", "--service", "shop-front")["traces"]
        hello = [row for row in rows if row["root_operation"] == "GET /hello"]
        return hello if len(hello) >= len(ITEMS) else []

    for summary in eventually(front_traces, "a trace per request"):
        spans = stored_trace(server, summary["trace_id"], services=2)["spans"]
        by_id = {span["span_id"]: span for span in spans}
        (front,) = [s for s in spans if s["kind"] == "server" and s["service"] == "shop-front"]
        (client,) = [s for s in spans if s["kind"] == "client"]
        (back,) = [s for s in spans if s["kind"] == "server" and s["service"] == "shop-back"]
        assert (front["name"], front["instance"], front["parent_span_id"]) == (
            "GET /hello",
            "shop-front-1",
            "",
        )
        assert front["resource"]["service.instance.id"] == "shop-front-1"
        assert (client["service"], client["instance"]) == ("shop-front", "shop-front-1")
        assert by_id[client["parent_span_id"]] is front
        assert back["parent_span_id"] == client["span_id"]
        assert (back["name"], back["instance"]) == ("GET /work", "shop-back-1")
        assert back["resource"]["service.name"] == "shop-back"
        assert client["attributes"]["http.response.status_code"] == 200


def test_logging_lines_carry_the_trace_id_of_their_request(
    server: RunningServer, shop: Shop
) -> None:
    def every_item(log: Path, message: str) -> Callable[[], dict[str, str] | None]:
        def found() -> dict[str, str] | None:
            ids = logged_trace_ids(log, message)
            return ids if len(ids) == len(ITEMS) else None

        return found

    front_ids = eventually(every_item(shop.front_log, "hello for"), "front log lines")
    back_ids = eventually(every_item(shop.back_log, "working on"), "back log lines")
    assert back_ids == front_ids  # one trace id per request, printed by both services
    assert len(set(front_ids.values())) == len(ITEMS)
    for trace_id in front_ids.values():
        spans = stored_trace(server, trace_id, services=2)["spans"]
        assert {"GET /hello", "GET /work"} <= {span["name"] for span in spans}


def test_http_duration_metrics_arrive(server: RunningServer, shop: Shop) -> None:
    def names() -> set[str]:
        rows = server.steth_json("metrics", "--service", "shop-back")["metrics"]
        found = {row["name"] for row in rows}
        return found if "http.server.request.duration" in found else set()

    eventually(names, "the HTTP server duration histogram")


def test_logs_are_not_exported_twice(server: RunningServer, shop: Shop) -> None:
    stored_trace(server, logged_trace_ids(shop.back_log, "working on")[ITEMS[0]], services=2)
    rows = server.steth_json("logs", "--service", "shop-back")["logs"]
    assert rows == []  # the lines reach steth through `steth run`'s capture, not OTLP


# -- small probe children: which Python, whose sitecustomize, what fails ----------------------


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A venv of the same interpreter with nothing installed: no OpenTelemetry, no pip."""
    root = tmp_path_factory.mktemp("bare") / "venv"
    venv.create(root, with_pip=False, symlinks=True)
    python = str(root / "bin" / "python")
    lacks = subprocess.run([python, "-c", "import opentelemetry"], capture_output=True)
    assert lacks.returncode != 0, "the bare venv must not see steth's packages by itself"
    return python


def run_probe(argv: list[str], env: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Run the probe; its report and its stderr lines (it must exit 0)."""
    env = {**env, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [*argv, "-c", PROBE], env=env, capture_output=True, text=True, timeout=WAIT_S
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stderr.splitlines()


def test_a_python_without_opentelemetry_borrows_steths(
    server: RunningServer, bare_python: str
) -> None:
    env = environment(server, [bare_python], "bare-venv", PROBE_URL=f"{server.otlp_url}/healthz")
    report, errors = run_probe([bare_python], env)
    assert report["provider"] == "TracerProvider"
    assert errors == []

    def traces() -> list[dict[str, Any]]:
        return list(server.steth_json("traces", "--service", "bare-venv")["traces"])

    (summary,) = eventually(traces, "the urllib client span of the bare venv")
    (span,) = stored_trace(server, summary["trace_id"], services=1)["spans"]
    assert (span["kind"], span["instance"]) == ("client", "bare-venv-1")
    assert span["attributes"]["url.full"].endswith("/healthz")


def test_the_users_sitecustomize_still_runs(server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import os\nos.environ['USER_SITE_RAN'] = 'yes'\n")
    env = environment(server, [sys.executable], "with-user-site", PYTHONPATH=str(tmp_path))
    report, errors = run_probe([sys.executable], env)
    assert report == {"provider": "TracerProvider", "user_site": "yes"}
    assert errors == []


def test_instrument_off_leaves_python_alone(server: RunningServer) -> None:
    base = cli_env()
    env = child_environment(
        [sys.executable],
        base,
        service="plain",
        instance="plain-1",
        endpoint=server.otlp_url,
        token=None,
        instrument=False,
    )
    report, errors = run_probe([sys.executable], env)
    assert report["provider"] == "ProxyTracerProvider"
    assert errors == []


FAILURES = [
    # (id, use the bare venv, environment after injection, user files, stderr note, provider)
    ("other-python", True, {AGENT_PYTHON_VAR: "cpython-399"}, {}, "this Python is cpython-3", None),
    ("packages-not-there", True, {AGENT_PATH_VAR: "/nonexistent"}, {}, "no OpenTelemetry", None),
    (
        "partial-opentelemetry",
        True,
        {},
        {"opentelemetry/__init__.py": ""},
        "has OpenTelemetry without its instrumentation",
        None,
    ),
    (
        "user-sitecustomize-raises",
        False,
        {},
        {"sitecustomize.py": "raise RuntimeError('boom')\n"},
        "your sitecustomize failed: RuntimeError: boom",
        "TracerProvider",
    ),
    (
        "otel-configuration-broken",
        False,
        {"OTEL_PROPAGATORS": "no-such-propagator"},
        {},
        "OpenTelemetry not started: ValueError",
        "ProxyTracerProvider",
    ),
]


@pytest.mark.parametrize(
    ("bare", "extra", "files", "note", "provider"),
    [c[1:] for c in FAILURES],
    ids=[c[0] for c in FAILURES],
)
def test_failures_cost_one_line_and_never_the_program(
    server: RunningServer,
    bare_python: str,
    tmp_path: Path,
    bare: bool,
    extra: dict[str, str],
    files: dict[str, str],
    note: str,
    provider: str | None,
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    python = bare_python if bare else sys.executable
    env = environment(server, [python], "failing", PYTHONPATH=str(tmp_path))
    report, errors = run_probe([python], {**env, **extra})
    assert len(errors) == 1 and errors[0].startswith("steth: ") and note in errors[0], errors
    assert report["provider"] == provider


def _node() -> str | None:
    return shutil.which("node")


@pytest.mark.parametrize(
    "argv",
    [
        ["sh", "-c", 'echo "$OTEL_SERVICE_NAME ${PYTHONPATH-none} ${OTEL_LOGS_EXPORTER-none}"'],
        pytest.param(
            [
                "node",
                "-e",
                "const e = process.env; console.log("
                "[e.OTEL_SERVICE_NAME, e.PYTHONPATH || 'none', e.OTEL_LOGS_EXPORTER || 'none']"
                ".join(' '))",
            ],
            marks=pytest.mark.skipif(_node() is None, reason="node is not installed"),
        ),
    ],
    ids=["sh", "node"],
)
def test_other_languages_get_only_the_otel_variables(
    server: RunningServer, argv: list[str]
) -> None:
    base = {key: value for key, value in cli_env().items() if key != "PYTHONPATH"}
    env = child_environment(
        argv, base, service="other", instance="o-1", endpoint=server.otlp_url, token=None
    )
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=WAIT_S)
    assert done.stdout.split() == ["other", "none", "none"]


LOGGING_PROGRAM = """
import logging
from opentelemetry import trace
{config}
log = logging.getLogger("app")
with trace.get_tracer("t").start_as_current_span("work") as span:
    log.warning("inside")
    log.debug("detail")
    print(format(span.get_span_context().trace_id, "032x"))
"""
LOGGING_CASES = [
    # (id, the program's own logging set-up, what a line looks like, whether DEBUG shows)
    ("no-config", "", r"WARNING \[app\] .*\[trace_id={id} span_id=[0-9a-f]{{16}} ", False),
    (
        "percent-format",
        "logging.basicConfig(level=logging.DEBUG, format='%(levelname)s|%(message)s')",
        r"^WARNING\|inside trace_id={id} span_id=[0-9a-f]{{16}}$",
        True,
    ),
    (
        "brace-style",
        "logging.basicConfig(level=logging.DEBUG, format='{levelname}|{message}', style='{')",
        r"^WARNING\|inside trace_id={id} span_id=[0-9a-f]{{16}}$",
        True,
    ),
    (
        "default-format",
        "logging.basicConfig(level=logging.DEBUG)",
        r"^WARNING:app:inside trace_id={id} span_id=[0-9a-f]{{16}}$",
        True,
    ),
    (
        "format-already-correlated",
        "logging.basicConfig(level=logging.DEBUG, format='%(otelTraceID)s %(message)s')",
        r"^{id} inside$",
        True,
    ),
]


@pytest.mark.parametrize(
    ("config", "line", "debug"),
    [c[1:] for c in LOGGING_CASES],
    ids=[c[0] for c in LOGGING_CASES],
)
def test_the_programs_logging_config_holds_and_lines_carry_trace_ids(
    server: RunningServer, config: str, line: str, debug: bool
) -> None:
    argv = [sys.executable, "-c", LOGGING_PROGRAM.format(config=config)]
    env = environment(server, argv, "logging-config")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode == 0, done.stderr
    trace_id = done.stdout.strip()
    pattern = re.compile(line.format(id=trace_id))
    lines = done.stderr.splitlines()
    assert [text for text in lines if "inside" in text and pattern.search(text)], lines
    assert any("detail" in text for text in lines) is debug


def test_spans_reach_a_server_that_requires_a_token(start_server: ServerFactory) -> None:
    token = "s3cr+t/with=reserved%chars"
    secured = start_server(token=token)
    base = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}
    env = child_environment(
        [sys.executable],
        {**base, "PROBE_URL": f"{secured.otlp_url}/healthz"},
        service="with-token",
        instance="t-1",
        endpoint=secured.otlp_url,
        token=token,
    )
    report, errors = run_probe([sys.executable], env)
    assert (report["provider"], errors) == ("TracerProvider", [])

    def traces() -> list[dict[str, Any]]:
        code, out, _ = run_steth(
            "traces",
            "--service",
            "with-token",
            "--json",
            "--data",
            str(secured.data),
            "--token",
            token,
        )
        return list(json.loads(out)["traces"]) if code == 0 else []

    eventually(traces, "the span sent with the token")
