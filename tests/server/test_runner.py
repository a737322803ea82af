"""`steth up` start-up failures an operator meets: busy ports, a data directory in use."""

from __future__ import annotations

import socket
from pathlib import Path

from conftest import RunningServer, free_port, run_steth


def test_a_busy_http_port_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run_steth(
            "up", "--data", str(tmp_path), "--http-port", str(port),
            "--grpc-port", str(free_port()), "--ui-port", str(free_port()),
        )  # fmt: skip
    assert code == 2
    assert f"cannot listen for OTLP/HTTP on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_a_second_server_on_the_same_ports_or_data_is_refused(start_server) -> None:
    first: RunningServer = start_server()
    code, _, err = run_steth(
        "up", "--data", str(first.data.parent / "other"), "--http-port", str(free_port()),
        "--grpc-port", str(first.grpc_port), "--ui-port", str(free_port()),
    )  # fmt: skip
    assert code == 2 and "cannot listen for OTLP/gRPC" in err
    code, _, err = run_steth(
        "up", "--data", str(first.data), "--http-port", str(free_port()),
        "--grpc-port", str(free_port()), "--ui-port", str(free_port()),
    )  # fmt: skip
    assert code == 1 and "lock" in err
    assert first.healthy()


def test_a_flush_interval_out_of_range_is_one_clear_error(tmp_path: Path) -> None:
    for interval in ("0", "-1", "61"):
        code, _, err = run_steth(
            "up", "--data", str(tmp_path), "--flush-interval", interval,
            "--http-port", str(free_port()), "--grpc-port", str(free_port()),
            "--ui-port", str(free_port()),
        )  # fmt: skip
        assert code == 2, interval
        assert "flush interval must be more than 0 and at most 60 seconds" in err
        assert "Traceback" not in err
