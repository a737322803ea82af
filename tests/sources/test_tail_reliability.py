"""`steth tail` when things go wrong: restarts mid-stream (SIGTERM, kill -9), the collector away."""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import RunningServer, cli_env, free_port
from test_tail import Tail, logs_json, stored_bodies, wait_for_bodies

pytestmark = pytest.mark.slow

LINES = 1500


def write_with_rotation(log: Path, count: int, done: threading.Event) -> None:
    """`count` numbered lines in bursts, renaming the file to .1 halfway (as logrotate does)."""
    try:
        for half in (range(0, count // 2, 25), range(count // 2, count, 25)):
            with open(log, "a") as handle:
                for start in half:
                    handle.write("".join(f"line-{i:05d}\n" for i in range(start, start + 25)))
                    handle.flush()
                    time.sleep(0.05)
            if half.start == 0:
                log.rename(log.with_name(log.name + ".1"))
    finally:
        done.set()


def restart_while_writing(tail: Tail, log: Path, *, kill: bool) -> None:
    """Stop (SIGTERM or kill -9) and start `tail` again and again while lines are written."""
    done = threading.Event()
    writer = threading.Thread(target=write_with_rotation, args=(log, LINES, done))
    writer.start()
    try:
        while not done.wait(0.6):
            tail.kill() if kill else tail.stop()
            tail.start()
    finally:
        writer.join()


EXPECTED = [f"line-{i:05d}" for i in range(LINES)]


def test_sigterm_restarts_mid_stream_deliver_every_line_once(server: RunningServer,
                                                             tmp_path: Path) -> None:  # fmt: skip
    log = tmp_path / "app.log"
    log.touch()
    tail = Tail(server.otlp_url, tmp_path, "tail-sigterm", [str(log)]).start()
    restart_while_writing(tail, log, kill=False)
    assert wait_for_bodies(server, "tail-sigterm", EXPECTED) == EXPECTED
    tail.stop()
    assert sorted(r["body"] for r in logs_json(server, "tail-sigterm")) == EXPECTED


def test_kill_9_mid_stream_loses_nothing(server: RunningServer, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    tail = Tail(server.otlp_url, tmp_path, "tail-kill", [str(log)]).start()
    restart_while_writing(tail, log, kill=True)
    # kill -9 can strike between the collector's acknowledgement and the offset's fsync: the
    # lines of that moment are sent again (at least once). Nothing may be missing.
    deadline = time.monotonic() + 20
    while set(found := stored_bodies(server, "tail-kill")) != set(EXPECTED):
        assert time.monotonic() < deadline, f"missing: {sorted(set(EXPECTED) - set(found))}"
        time.sleep(0.05)
    # Killed once everything is committed, nothing is sent twice.
    wait_until_committed(tail, log)
    before = settled_counts(server, "tail-kill")
    tail.kill()
    with open(log, "a") as handle:
        handle.write("after-kill\n")
    tail.start()
    after = before + collections.Counter(["after-kill"])
    assert wait_for_bodies(server, "tail-kill", list(after.elements())) == sorted(after.elements())
    tail.stop()
    assert collections.Counter(r["body"] for r in logs_json(server, "tail-kill")) == after


def settled_counts(server: RunningServer, service: str) -> collections.Counter[str]:
    """The store's records once acknowledged ones stop appearing (its writer commits late)."""
    previous = collections.Counter(stored_bodies(server, service))
    while True:
        time.sleep(1.0)
        current = collections.Counter(stored_bodies(server, service))
        if current == previous:
            return current
        previous = current


def wait_until_committed(tail: Tail, log: Path) -> None:
    deadline = time.monotonic() + 20
    while tail.committed(log) != log.stat().st_size:
        assert time.monotonic() < deadline, f"offsets {tail.offsets()} never reached the end"
        time.sleep(0.05)


@contextmanager
def server_on(base: Path, http_port: int) -> Iterator[RunningServer]:
    """`steth up` with its OTLP/HTTP receiver on a port chosen in advance."""
    grpc_port, ui_port = free_port(), free_port()
    base.mkdir()
    log_path = base / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stethoscope.cli.main", "up", "--data", str(base / "data"),
             "--grpc-port", str(grpc_port), "--http-port", str(http_port),
             "--ui-port", str(ui_port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=cli_env(),
        )  # fmt: skip
    server = RunningServer(base / "data", grpc_port, http_port, ui_port, None, process, log_path)
    try:
        deadline = time.monotonic() + 60
        while not server.healthy() or not (server.data / "server.json").exists():
            assert process.poll() is None and time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        yield server
    finally:
        assert server.stop() == 0, server.log()


def test_collector_down_then_up_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    tail = Tail(f"http://127.0.0.1:{port}", tmp_path, "tail-outage", [str(log)]).start()
    with open(log, "a") as handle:
        handle.write("".join(f"down-{i:03d}\n" for i in range(200)))
    time.sleep(1.0)
    assert tail.committed(log) == 0  # nothing acknowledged, nothing committed
    summary = tail.stop()  # gives up flushing after its timeout; the lines stay in the file
    assert "200 unsent" in summary, summary
    tail.start()
    with open(log, "a") as handle:
        handle.write("".join(f"down-{i:03d}\n" for i in range(200, 300)))
    with server_on(tmp_path / "server", port) as server:
        expected = [f"down-{i:03d}" for i in range(300)]
        assert wait_for_bodies(server, "tail-outage", expected) == expected
        tail.stop()
        assert tail.committed(log) == log.stat().st_size
        assert sorted(r["body"] for r in logs_json(server, "tail-outage")) == expected


def test_a_full_spool_pauses_reading_and_drops_nothing(tmp_path: Path) -> None:
    # 20,000 records need about 2 MiB of spool; it holds 1 MiB. Reading must wait for room.
    port = free_port()
    log = tmp_path / "logs" / "big.log"
    log.parent.mkdir()
    tail = Tail(f"http://127.0.0.1:{port}", tmp_path, "tail-spool", [str(log)],
                "--spool-mib", "1", "--max-line-bytes", "1000").start()  # fmt: skip
    expected = [f"bp-{i:05d} {'x' * 40}" for i in range(20_000)]
    log.write_text("".join(line + "\n" for line in expected))
    time.sleep(1.5)  # reading fills the spool to half, then waits
    assert tail.committed(log) == 0
    with server_on(tmp_path / "server", port) as server:
        deadline = time.monotonic() + 60
        while len(stored_bodies(server, "tail-spool")) < len(expected):
            assert time.monotonic() < deadline, "not everything arrived"
            time.sleep(0.2)
        summary = tail.stop()
        assert " 0 dropped" in summary, summary
        assert sorted(r["body"] for r in logs_json(server, "tail-spool")) == expected
