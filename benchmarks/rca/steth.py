"""Running `steth` as a user would: a subprocess per command, JSON out."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["STETH", "StethFailed", "iso", "steth", "why"]

STETH = [sys.executable, "-m", "stethoscope.cli.main"]
WHY_TIMEOUT_S = 600.0


class StethFailed(RuntimeError):
    """A steth command exited non-zero (its stderr is in the message)."""


def steth(*args: str, timeout: float = WHY_TIMEOUT_S) -> str:
    """Run a steth command, return its stdout; StethFailed when it exits non-zero."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [*STETH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise StethFailed(f"steth {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def iso(ns: int) -> str:
    """ns since the epoch as ISO-8601 UTC (microseconds), as steth accepts it."""
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC) + dt.timedelta(microseconds=rest // 1000)
    return moment.isoformat().replace("+00:00", "Z")


def why(data: Path, since_ns: int, until_ns: int, baseline: tuple[int, int]) -> dict[str, Any]:
    """`steth why --json` over [since, until) against an explicit baseline."""
    report: dict[str, Any] = json.loads(
        steth(
            "why",
            "--json",
            "--data",
            str(data),
            "--since",
            iso(since_ns),
            "--until",
            iso(until_ns),
            "--baseline",
            f"{iso(baseline[0])}..{iso(baseline[1])}",
        )
    )
    return report
