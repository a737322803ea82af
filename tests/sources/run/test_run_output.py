"""`steth run` output: passed through byte for byte, and parsed into log records."""

from __future__ import annotations

import os
import select
import subprocess
import textwrap
import time
from pathlib import Path

from conftest import RunningServer, cli_env
from runhelpers import (
    NO_OTEL,
    PY,
    WAIT_S,
    events,
    has_event,
    output_records,
    run_command,
    steth_run,
    wait_for,
)


def test_output_reaches_the_terminal_byte_for_byte(server: RunningServer) -> None:
    program = """
        import sys
        out, err = sys.stdout.buffer, sys.stderr.buffer
        out.write(b"plain line\\n")
        out.write(b"crlf line\\r\\n")
        out.write("caf\\xe9 \\u2603\\n".encode())
        out.write(b"bad utf8 \\xff\\xfe\\n")
        out.write(b"\\x1b[31mcolour\\x1b[0m\\n")
        out.write(b"no newline at end")
        err.write(b"to stderr\\n")
        err.write(b"stderr partial")
    """
    done = steth_run(server, "passthrough", [PY, "-c", textwrap.dedent(program)], NO_OTEL)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        b"plain line\ncrlf line\r\n" + "caf\xe9 \u2603\n".encode() + b"bad utf8 \xff\xfe\n"
        b"\x1b[31mcolour\x1b[0m\nno newline at end"
    )
    assert done.stderr == b"to stderr\nstderr partial"
    rows = wait_for(server, "passthrough", lambda rows: len(output_records(rows)) >= 8)
    bodies = {row["body"] for row in output_records(rows)}
    assert {"plain line", "crlf line", "caf\xe9 \u2603", "no newline at end"} <= bodies
    assert {"to stderr", "stderr partial", "bad utf8 \ufffd\ufffd"} <= bodies


def test_lines_become_records_with_parsed_time_severity_and_fields(server: RunningServer) -> None:
    program = """
        import sys
        STAMP = "2024-01-02T03:04:05Z"
        print('{"level": "error", "msg": "payment failed", "order": 42, "ts": "%s"}' % STAMP)
        print('level=warn msg="slow query" took_ms=1200')
        print("2024-05-06 07:08:09,123 DEBUG app.db: connected")
        print("just some output")
        print("just a complaint", file=sys.stderr)
    """
    done = steth_run(server, "parsing", [PY, "-c", textwrap.dedent(program)], NO_OTEL)
    assert done.returncode == 0, done.stderr
    rows = output_records(wait_for(server, "parsing", lambda r: len(output_records(r)) >= 5))
    by_body = {row["body"]: row for row in rows}
    json_line = by_body["payment failed"]
    assert json_line["severity_number"] == 17
    assert json_line["attributes"]["order"] == 42
    assert json_line["time_ns"] == 1_704_164_645_000_000_000
    assert by_body["slow query"]["severity_number"] == 13
    assert by_body["slow query"]["attributes"]["took_ms"] == "1200"
    assert by_body["2024-05-06 07:08:09,123 DEBUG app.db: connected"]["severity_number"] == 5
    plain = by_body["just some output"]
    assert (plain["severity_text"], plain["attributes"]["log.iostream"]) == ("INFO", "stdout")
    complaint = by_body["just a complaint"]
    assert (complaint["severity_text"], complaint["attributes"]["log.iostream"]) == (
        "WARN",
        "stderr",
    )


def test_a_python_traceback_arrives_as_one_error_record(server: RunningServer) -> None:
    program = """
        def handler():
            raise ValueError("boom in handler")
        print("before the crash", flush=True)
        handler()
    """
    done = steth_run(server, "traceback", [PY, "-c", textwrap.dedent(program)])
    assert done.returncode == 1
    assert b"ValueError: boom in handler" in done.stderr
    rows = wait_for(server, "traceback", has_event("process.exit"))
    crashes = [row for row in output_records(rows) if "Traceback" in row["body"]]
    assert len(crashes) == 1, [row["body"] for row in output_records(rows)]
    assert crashes[0]["body"].startswith("Traceback (most recent call last):")
    assert crashes[0]["body"].endswith("ValueError: boom in handler")
    assert crashes[0]["severity_text"] == "ERROR"
    exit_event = events(rows, "process.exit")[0]
    assert "ValueError: boom in handler" in exit_event["attributes"]["process.stderr_tail"]


def test_a_node_program_is_captured(server: RunningServer, tmp_path: Path) -> None:
    script = tmp_path / "app.js"
    script.write_text(
        'console.log("node says hi");\n'
        'console.log(JSON.stringify({level: "warn", msg: "from node", port: 8080}));\n'
        'console.error("node error line");\n'
    )
    done = steth_run(server, "node-app", ["node", str(script)])
    assert (done.returncode, done.stdout) == (
        0,
        b'node says hi\n{"level":"warn","msg":"from node","port":8080}\n',
    )
    assert done.stderr == b"node error line\n"
    rows = wait_for(server, "node-app", lambda r: len(output_records(r)) >= 3)
    by_body = {row["body"]: row for row in output_records(rows)}
    assert by_body["from node"]["severity_text"] == "warn"
    assert by_body["from node"]["attributes"]["port"] == 8080
    assert by_body["node error line"]["attributes"]["log.iostream"] == "stderr"


def test_a_partial_line_reaches_the_terminal_while_the_child_still_runs(
    server: RunningServer, tmp_path: Path
) -> None:
    flag = tmp_path / "answered"
    program = f"""
        import os, sys, time
        sys.stdout.write("password? ")
        sys.stdout.flush()
        while not os.path.exists({str(flag)!r}):
            time.sleep(0.05)
        print("thanks")
    """
    command = run_command(server.otlp_url, "prompting", [NO_OTEL])
    command += [PY, "-c", textwrap.dedent(program)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=cli_env())
    assert process.stdout is not None
    seen = b""
    deadline = time.monotonic() + WAIT_S
    while seen != b"password? " and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            seen += os.read(process.stdout.fileno(), 100)
    flag.touch()  # only now may the child go on
    out, _ = process.communicate(timeout=30)
    assert (seen, out, process.returncode) == (b"password? ", b"thanks\n", 0)
