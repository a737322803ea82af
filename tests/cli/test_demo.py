"""`steth demo` end to end: collector, system, load, one fault, the report, a clean stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import cli_env, run_steth

pytestmark = pytest.mark.slow  # each run starts ~20 processes


def test_a_short_demo_injects_reports_and_stops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out, err = run_steth(
        # checkout is 10% of the load and half of payment's answers fail: at 8 requests/s over
        # 15 s about 6 failures are expected, so the report cannot come out empty by chance
        "demo", "--fault", "errors", "--rate", "8", "--baseline", "5s", "--duration", "15s",
        "--data", str(data), timeout=240,
    )  # fmt: skip
    assert code == 0, err
    assert "injected errors on payment-1" in out
    for command in ("why", "services", "traces --errors", "logs", "events"):
        assert f"$ steth {command}" in out
    assert "Suspects, most likely first" in out  # the errors fault is found
    assert "gateway" in out and "shipping" in out
    truth = [json.loads(line) for line in (data / "demo-run" / "ground-truth.jsonl").open()]
    assert [(t["action"], t["fault"], t["instance"]) for t in truth] == [
        ("inject", "errors", "payment-1"),
        ("revert", "errors", "payment-1"),
    ]


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie has exited)."""
    running = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            pass
    return running


def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    demo = subprocess.Popen(
        [sys.executable, "-m", "stethoscope.cli.main", "demo", "--fault", "hang",
         "--duration", "10m", "--data", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env(),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("load running"):
                break
        assert lines and lines[-1].startswith("load running"), "".join(lines)
        time.sleep(2)
        # The collector, and every instance's `steth run` with its program under it.
        children = psutil.Process(demo.pid).children(recursive=True)
        assert len(alive(children)) >= 1 + 2 * 9
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=120) == 130
        assert alive(children) == []
        assert not (data / "server.json").exists()  # the collector stopped, not killed
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            demo.wait(timeout=120)


def test_list_needs_no_data_directory(tmp_path: Path) -> None:
    code, out, _ = run_steth("demo", "--list", "--data", str(tmp_path / "unused"))
    assert code == 0 and "crash_loop" in out
    assert not (tmp_path / "unused").exists()
