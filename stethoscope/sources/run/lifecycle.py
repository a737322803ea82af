"""Process lifecycle events and the restart policy's memory: backoff and crash-loop detection.

Events are OTLP log records with `event.name` (see `stethoscope.sources.records`):
process.start, process.exit (ERROR unless it exited 0), process.restart (WARN) and
process.crash_loop (ERROR, once each time the restarts within the window reach the threshold).
"""

from __future__ import annotations

import getpass
import signal
import socket
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from stethoscope.sources.records import SEVERITY, log_record
from stethoscope.sources.run.redact import redact_argv

__all__ = [
    "RestartTracker",
    "crash_loop_event",
    "exit_event",
    "restart_event",
    "signal_name",
    "start_event",
]


def signal_name(number: int) -> str:
    """SIGTERM for 15; `SIG<n>` for numbers without a name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def _owner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _event(
    name: str, body: str, level: str, attributes: dict[str, object], *, time_ns: int | None = None
) -> LogRecord:
    return log_record(
        time_ns=time_ns or time.time_ns(),
        body=body,
        severity_number=SEVERITY[level],
        severity_text=level,
        attributes=attributes,
        event_name=name,
    )


def start_event(
    *, pid: int, argv: Sequence[str], cwd: Path, restart_count: int, time_ns: int
) -> LogRecord:
    """process.start: who started what, where, and when (taken before the spawn)."""
    args = redact_argv(argv)
    return _event(
        "process.start",
        f"started pid {pid}: {' '.join(args)}",
        "INFO",
        {
            "process.pid": pid,
            "process.command_args": args,
            "process.working_directory": str(cwd),
            "process.owner": _owner(),
            "host.name": socket.gethostname(),
            "steth.restart_count": restart_count,
        },
        time_ns=time_ns,
    )


def exit_event(
    *, pid: int, returncode: int, run_seconds: float, stderr_tail: Sequence[str]
) -> LogRecord:
    """process.exit: the code (or signal), how long it ran, its last stderr lines."""
    attributes: dict[str, object] = {
        "process.pid": pid,
        "process.run_seconds": round(run_seconds, 3),
        "process.stderr_tail": "\n".join(stderr_tail),
    }
    if returncode < 0:
        attributes["process.exit.signal"] = signal_name(-returncode)
        how = f"killed by {signal_name(-returncode)}"
    else:
        attributes["process.exit.code"] = returncode
        how = f"exited with code {returncode}"
    level = "INFO" if returncode == 0 else "ERROR"
    return _event("process.exit", f"pid {pid} {how} after {run_seconds:.1f}s", level, attributes)


def restart_event(*, restart_count: int, delay_s: float) -> LogRecord:
    """process.restart: the restart about to happen, after `delay_s`."""
    return _event(
        "process.restart",
        f"restarting in {delay_s:g}s (restart {restart_count})",
        "WARN",
        {"steth.restart_count": restart_count, "steth.restart_delay_s": delay_s},
    )


def crash_loop_event(*, restart_count: int, window_s: float) -> LogRecord:
    """process.crash_loop: restarts keep coming within the window."""
    return _event(
        "process.crash_loop",
        f"crash loop: {restart_count} restarts within {window_s:g}s",
        "ERROR",
        {"steth.restart_count": restart_count, "steth.window_seconds": window_s},
    )


class RestartTracker:
    """Exponential backoff between restarts, and when they amount to a crash loop."""

    def __init__(
        self,
        *,
        initial_s: float,
        max_s: float,
        reset_after_s: float,
        loop_restarts: int,
        loop_window_s: float,
    ) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._reset_after_s = reset_after_s
        self._loop_restarts = loop_restarts
        self._loop_window_s = loop_window_s
        self._delay_s = initial_s
        # Only the restarts inside the window matter, and never more than the threshold.
        self._recent: deque[float] = deque(maxlen=loop_restarts)
        self._in_loop = False
        self.count = 0

    def next_delay(self, run_seconds: float) -> float:
        """Count a restart; the pause before it (starting over after a long enough run)."""
        if run_seconds >= self._reset_after_s:
            self._delay_s = self._initial_s
        delay = self._delay_s
        self._delay_s = min(self._max_s, self._delay_s * 2)
        self.count += 1
        self._recent.append(time.monotonic())
        return delay

    def entered_crash_loop(self) -> bool:
        """True once when the restarts within the window reach the threshold."""
        now = time.monotonic()
        looping = (
            len(self._recent) >= self._loop_restarts
            and now - self._recent[0] <= self._loop_window_s
        )
        entered = looping and not self._in_loop
        self._in_loop = looping
        return entered
