"""`steth run` supervising: lifecycle events, exit status, signals, restarts, metrics."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningServer, run_steth
from runhelpers import (
    NO_OTEL,
    PY,
    events,
    has_event,
    metric,
    peak,
    run_command,
    start_and_wait_ready,
    steth_run,
    wait_for,
    write_script,
)


@pytest.mark.parametrize(
    ("script", "status", "exit_attributes"),
    [
        pytest.param("exit 0", 0, {"process.exit.code": 0}, id="success"),
        pytest.param("exit 3", 3, {"process.exit.code": 3}, id="failure-code"),
        pytest.param("kill -9 $$", 137, {"process.exit.signal": "SIGKILL"}, id="killed-by-signal"),
    ],
)
def test_the_exit_status_is_the_childs(
    server: RunningServer, script: str, status: int, exit_attributes: dict[str, Any]
) -> None:
    service = f"exit-{status}"
    done = steth_run(server, service, ["sh", "-c", f"echo started; {script}"])
    assert done.returncode == status
    rows = wait_for(server, service, has_event("process.exit"))
    start, exit_ = events(rows, "process.start")[0], events(rows, "process.exit")[0]
    assert start["attributes"]["process.command_args"] == ["sh", "-c", f"echo started; {script}"]
    assert start["attributes"]["process.working_directory"] == os.getcwd()
    assert start["attributes"]["process.pid"] == exit_["attributes"]["process.pid"]
    assert exit_attributes.items() <= exit_["attributes"].items()
    assert exit_["severity_text"] == ("INFO" if status == 0 else "ERROR")
    assert exit_["attributes"]["process.run_seconds"] >= 0
    listed = server.steth_json("services")["services"]
    (instance,) = next(s for s in listed if s["service"] == service)["instances"]
    assert instance["state"] == "exited"
    assert (instance["exit_code"], instance["exit_signal"]) == (
        exit_attributes.get("process.exit.code"),
        exit_attributes.get("process.exit.signal"),
    )


def test_a_missing_command_exits_127() -> None:
    code, _, err = run_steth(
        "run",
        "--endpoint",
        "http://127.0.0.1:9",
        "--flush-timeout",
        "0s",
        "--",
        "no-such-program-xyz",
    )
    assert code == 127
    assert "cannot start no-such-program-xyz" in err


SIGNAL_SCRIPT = """\
    #!/bin/sh
    trap 'echo "got USR1"' USR1
    trap 'echo "got TERM"; exit 0' TERM
    echo ready
    while true; do sleep 0.05; done
"""


def test_signals_are_forwarded_and_sigterm_stops_restarts(
    server: RunningServer, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "service.sh", SIGNAL_SCRIPT)
    options = ("--restart", "always", "--restart-delay", "50ms")
    process = start_and_wait_ready([*run_command(server.otlp_url, "signals", options), str(script)])
    process.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out == b"got USR1\ngot TERM\n"
    rows = wait_for(server, "signals", has_event("process.exit"))
    assert len(events(rows, "process.start")) == 1
    assert events(rows, "process.restart") == []


def test_a_second_interrupt_kills_a_child_that_ignores_the_first(
    server: RunningServer, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path / "stubborn.sh",
        "#!/bin/sh\ntrap 'echo ignoring INT' INT\necho ready\nwhile true; do sleep 0.05; done\n",
    )
    process = start_and_wait_ready([*run_command(server.otlp_url, "stubborn"), str(script)])
    process.send_signal(signal.SIGINT)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ignoring INT\n"
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGKILL
    rows = wait_for(server, "stubborn", has_event("process.exit"))
    assert events(rows, "process.exit")[0]["attributes"]["process.exit.signal"] == "SIGKILL"


def test_restarts_on_failure_with_backoff_and_a_crash_loop_event(
    server: RunningServer, tmp_path: Path
) -> None:
    script = (
        "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; "
        'echo "attempt $n"; [ $n -ge 4 ] && exit 0; exit 1'
    )
    options = ["--restart", "on-failure", "--restart-delay", "50ms", "--max-restart-delay", "100ms"]
    done = steth_run(
        server, "flaky", ["sh", "-c", script], *options, "--crash-loop-restarts", "3", cwd=tmp_path
    )
    assert done.returncode == 0
    assert done.stdout == b"attempt 1\nattempt 2\nattempt 3\nattempt 4\n"
    rows = wait_for(server, "flaky", has_event("process.exit", 4))
    starts = events(rows, "process.start")
    assert [row["attributes"]["steth.restart_count"] for row in starts] == [0, 1, 2, 3]
    restarts = events(rows, "process.restart")
    assert [row["attributes"]["steth.restart_count"] for row in restarts] == [1, 2, 3]
    assert [row["attributes"]["steth.restart_delay_s"] for row in restarts] == [0.05, 0.1, 0.1]
    assert len({row["instance"] for row in rows}) == 1  # one instance across restarts
    loops = server.steth_json("events", "--service", "flaky", "--name", "process.crash_loop")
    assert len(loops["events"]) == 1, loops
    assert loops["events"][0]["attributes"]["steth.restart_count"] == 3
    exits = [row["attributes"]["process.exit.code"] for row in events(rows, "process.exit")]
    assert exits == [1, 1, 1, 0]


def test_process_metrics_with_tcp_connections_per_peer(server: RunningServer) -> None:
    program = """
        import socket, threading, time
        server = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
        time.sleep(1.5)
        print(server.getsockname()[1])
    """
    done = steth_run(
        server, "metered", [PY, "-c", textwrap.dedent(program)], "--metrics-every", "200ms", NO_OTEL
    )
    assert done.returncode == 0, done.stderr
    port = int(done.stdout)
    connections = metric(server, "metered", "process.tcp.connections")
    by_direction = {
        s["attributes"]["network.connection.direction"]: s for s in connections["series"]
    }
    assert by_direction["listen"]["attributes"]["network.local.port"] == port
    assert by_direction["inbound"]["attributes"]["network.peer.address"] == "127.0.0.1"
    assert by_direction["outbound"]["attributes"]["network.peer.port"] == port
    assert by_direction["outbound"]["attributes"]["network.connection.state"] == "established"
    assert by_direction["outbound"]["last"] == 1
    assert peak(server, "metered", "process.memory.usage") > 1_000_000
    assert peak(server, "metered", "process.thread.count") >= 2
    assert peak(server, "metered", "process.open_file_descriptor.count") >= 6
    cpu = metric(server, "metered", "process.cpu.time")
    assert {s["attributes"]["cpu.mode"] for s in cpu["series"]} == {"user", "system"}
    assert metric(server, "metered", "process.cpu.utilization")["series"]
