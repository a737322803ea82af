"""`steth run` reporting: fingerprint and secrets, a collector away or guarded, probes, traces."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import RunningServer, ServerFactory, cli_env, free_port, run_steth
from runhelpers import (
    NO_OTEL,
    PY,
    WAIT_S,
    HealthServer,
    events,
    has_event,
    metric,
    output_records,
    run_command,
    steth_run,
    wait_for,
)

from stethoscope.cli.main import main

CANARIES = ("canary-env-7f3a", "canary-url-91bd", "canary-arg-c0de", "canary-opt-55aa")


def test_fingerprint_hashes_files_and_never_lets_a_secret_reach_the_store(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    private = start_server()
    config = tmp_path / "app.yaml"
    config.write_text("workers: 4\n")
    app = tmp_path / "app.py"
    app.write_text("print('configured')\n")
    env = cli_env() | {
        "APP_API_TOKEN": CANARIES[0],
        "DATABASE_URL": f"postgres://app:{CANARIES[1]}@db.internal:5432/orders",
    }
    command = [PY, str(app), f"--config={config}", f"--password={CANARIES[2]}"]
    command += ["--upstream", f"http://svc:{CANARIES[3]}@upstream.internal/"]
    done = steth_run(private, "fingerprinted", command, env=env)
    assert (done.returncode, done.stdout) == (0, b"configured\n"), done.stderr
    rows = wait_for(private, "fingerprinted", has_event("process.fingerprint"))
    found = events(rows, "process.fingerprint")[0]["attributes"]
    assert found["config.files"] == {
        str(app): hashlib.sha256(app.read_bytes()).hexdigest(),
        str(config): hashlib.sha256(b"workers: 4\n").hexdigest(),
    }
    executable = Path(PY).resolve()
    assert found["process.executable.sha256"] == hashlib.sha256(executable.read_bytes()).hexdigest()
    assert "duckdb" in found["python.packages"]
    assert found["process.environment"]["APP_API_TOKEN"] == "<redacted>"
    assert found["process.environment"]["DATABASE_URL"].startswith("postgres://<redacted>@db")
    assert len(found["steth.fingerprint"]) == 64
    code, everything, _ = private.steth("logs", "--json", "--limit", "100000")
    assert code == 0 and "fingerprinted" in everything
    assert not [canary for canary in CANARIES if canary in everything]
    assert private.stop() == 0
    stored = b"".join(p.read_bytes() for p in private.data.rglob("*") if p.is_file())
    assert b"fingerprinted" in stored
    assert not [canary for canary in CANARIES if canary.encode() in stored]


@contextmanager
def server_on_port(base: Path, http_port: int) -> Iterator[RunningServer]:
    """`steth up` on a given OTLP/HTTP port (the fixtures choose their own ports)."""
    ports = free_port(), http_port, free_port()
    names = ("--grpc-port", "--http-port", "--ui-port")
    command = [sys.executable, "-m", "stethoscope.cli.main", "up", "--data", str(base / "data")]
    command += [arg for name, port in zip(names, ports, strict=True) for arg in (name, str(port))]
    log_path = base / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=cli_env())
    late = RunningServer(base / "data", *ports, None, process, log_path)
    try:
        deadline = time.monotonic() + 60
        while not (late.healthy() and (late.data / "server.json").exists()):
            assert time.monotonic() < deadline and process.poll() is None, late.log()
            time.sleep(0.1)
        yield late
    finally:
        assert late.stop() == 0, late.log()


def test_records_spooled_while_the_collector_is_down_arrive_when_it_is_up(tmp_path: Path) -> None:
    port = free_port()
    flag = tmp_path / "collector-is-up"
    program = f"""
        import os, time
        for i in range(50):
            print(f"early line {{i}}", flush=True)
        while not os.path.exists({str(flag)!r}):
            time.sleep(0.05)
        print("late line")
    """
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            *run_command(endpoint, "patient", ["--flush-timeout", "20s", NO_OTEL]),
            PY,
            "-c",
            textwrap.dedent(program),
        ],  # noqa: E501
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    time.sleep(1.0)  # the shipper finds nobody home and keeps everything spooled
    assert process.poll() is None
    with server_on_port(tmp_path, port) as late:
        flag.touch()
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert out.count(b"early line") == 50
        assert b"could not be delivered" not in err
        rows = wait_for(late, "patient", lambda r: len(output_records(r)) >= 51)
    bodies = [row["body"] for row in output_records(rows)]
    assert sorted(bodies) == sorted([f"early line {i}" for i in range(50)] + ["late line"])
    assert events(rows, "process.start") and events(rows, "process.exit")


def test_undelivered_records_are_counted_on_stderr() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    code, out, err = run_steth(
        "run", "--endpoint", dead, "--flush-timeout", "200ms", "--", "echo", "lost"
    )  # noqa: E501
    assert (code, out) == (0, "lost\n")
    assert "records could not be delivered to " + dead in err


def test_probe_reports_up_then_down(server: RunningServer) -> None:
    health = HealthServer()
    try:
        options = ["--probe", health.url, "--probe-every", "100ms", "--probe-timeout", "1s"]
        process = subprocess.Popen(
            [
                *run_command(server.otlp_url, "probed", [*options, NO_OTEL]),
                PY,
                "-c",
                "import time; time.sleep(60)",
            ],  # noqa: E501
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for(server, "probed", has_event("probe.state"))
    finally:
        health.stop()
    rows = wait_for(server, "probed", has_event("probe.state", 2))
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM
    states = events(rows, "probe.state")
    assert [s["attributes"]["probe.state"] for s in states[:2]] == ["up", "down"]
    assert states[0]["attributes"]["http.response.status_code"] == 200
    assert states[1]["severity_text"] == "WARN" and states[1]["attributes"]["error.message"]
    up = server.steth_json("metrics", "probe.up", "--service", "probed", "--points", "1000")
    values = {point["value"] for point in up["series"][0]["points"]}
    assert values == {0, 1}
    assert up["series"][0]["attributes"]["url.full"] == health.url
    assert metric(server, "probed", "probe.duration")["series"]


@pytest.mark.parametrize(
    ("grace", "states"),
    [
        pytest.param("0s", ["down"], id="no-grace-down-at-once"),
        pytest.param("30s", [], id="still-starting-no-event"),
    ],
)
def test_a_probe_that_never_answers(server: RunningServer, grace: str, states: list[str]) -> None:
    service = f"unprobed-{grace}"
    dead = f"http://127.0.0.1:{free_port()}/healthz"
    options = ["--probe", dead, "--probe-every", "100ms", "--probe-grace", grace]
    done = steth_run(server, service, [PY, "-c", "import time; time.sleep(1)"], *options, NO_OTEL)
    assert done.returncode == 0, done.stderr
    rows = wait_for(server, service, has_event("process.exit"))
    assert [row["attributes"]["probe.state"] for row in events(rows, "probe.state")] == states
    up = metric(server, service, "probe.up")["series"][0]["points"]
    assert up and {point["value"] for point in up} == {0}


def test_a_collector_with_a_token(start_server: ServerFactory) -> None:
    guarded = start_server(token="s3cr3t-token")
    env = cli_env() | {"STETH_TOKEN": "s3cr3t-token"}
    done = steth_run(guarded, "guarded", ["echo", "let in"], env=env)
    assert (done.returncode, done.stderr) == (0, b"")
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = httpx.get(
            f"{guarded.api_url}/api/logs",
            params={"service": "guarded"},
            headers=guarded.headers,
            timeout=10,
        ).json()["logs"]
        if any(row["body"] == "let in" for row in found):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the record did not arrive")
    refused = steth_run(guarded, "guarded", ["echo", "kept out"], "--flush-timeout", "1s")
    assert b"could not be delivered" in refused.stderr


@pytest.mark.parametrize(
    ("options", "expect_traces"),
    [
        pytest.param([], True, id="instrumented"),
        pytest.param(["--no-instrument"], False, id="no-instrument"),
    ],
)
def test_a_python_child_sends_traces_unless_told_not_to(
    server: RunningServer, options: list[str], expect_traces: bool
) -> None:
    service = f"traced{''.join(options)}"
    health = HealthServer()
    program = f"""
        import urllib.request
        urllib.request.urlopen({health.url!r}).read()
        print("fetched")
    """
    try:
        done = steth_run(server, service, [PY, "-c", textwrap.dedent(program)], *options)
    finally:
        health.stop()
    assert (done.returncode, done.stdout) == (0, b"fetched\n"), done.stderr
    wait_for(server, service, has_event("process.exit"))  # the child's spans were sent before
    deadline = time.monotonic() + (WAIT_S if expect_traces else 1.0)
    while not (traces := server.steth_json("traces", "--service", service)["traces"]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert bool(traces) == expect_traces
    if expect_traces:
        assert traces[0]["services"] == [service]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "no command given", id="no-command"),
        pytest.param(
            ["--restart", "sometimes", "--", "true"],
            "--restart must be one of: no, on-failure, always",
            id="bad-restart",
        ),  # noqa: E501
        pytest.param(
            ["--metrics-every", "often", "--", "true"],
            "--metrics-every: not a duration",
            id="bad-duration",
        ),  # noqa: E501
        pytest.param(
            ["--probe-every", "0s", "--", "true"],
            "--probe-every must be positive",
            id="zero-interval",
        ),  # noqa: E501
        pytest.param(
            ["--endpoint", "localhost:4318", "--", "true"],
            "--endpoint must be an http",
            id="bad-endpoint",
        ),  # noqa: E501
        pytest.param(
            ["--probe", "ftp://x", "--", "true"], "--probe must be an http", id="bad-probe"
        ),
        pytest.param(
            ["--crash-loop-restarts", "0", "--", "true"],
            "--crash-loop-restarts must be at least 1",
            id="zero-restarts",
        ),  # noqa: E501
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *args]) == 2
    assert message in capsys.readouterr().err
