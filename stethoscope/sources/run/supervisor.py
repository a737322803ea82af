"""The child process: start it, pump its output, forward signals, restart it by policy.

Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to `steth run` are passed to
the child. After SIGINT or SIGTERM the child is not restarted, and a second one kills it
(SIGKILL). When stdin is a terminal the child shares our process group, so that it can read the
terminal and the terminal's own Ctrl-C and Ctrl-\\ reach it directly (they are not sent twice);
otherwise it gets its own process group and every signal is forwarded exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

from stethoscope.sources.records import SEVERITY, log_record
from stethoscope.sources.run.config import RestartPolicy, RunConfig
from stethoscope.sources.run.lifecycle import (
    RestartTracker,
    crash_loop_event,
    exit_event,
    restart_event,
    start_event,
)
from stethoscope.sources.run.periodic import Periodic
from stethoscope.sources.run.procmetrics import ProcessSampler
from stethoscope.sources.run.streams import LineParser, StreamPump
from stethoscope.sources.shipper import Channel

__all__ = ["FORWARDED_SIGNALS", "Supervisor", "exit_status"]

FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Signals a terminal sends to its whole foreground process group by itself.
_TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
# How long the exit event waits for the pipes to end after the child exited (a descendant that
# outlives it may hold them open; its output keeps flowing regardless).
PIPE_DRAIN_S = 1.0
# What the pump keeps of stderr for the exit event's last lines.
STDERR_TAIL_BYTES = 16 * 1024
# Shell conventions for a command that cannot be run.
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


def exit_status(returncode: int) -> int:
    """A returncode as a shell reports it: 128+N for a child killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class Supervisor:
    """Runs the command until it exits for good, by the restart policy; returns its status."""

    def __init__(
        self,
        config: RunConfig,
        *,
        channel: Channel,
        parser: LineParser,
        env: Mapping[str, str],
        on_start: Callable[[int], None],
    ) -> None:
        self._config = config
        self._channel = channel
        self._parser = parser
        self._env = dict(env)
        self._on_start = on_start
        self._cwd = Path.cwd()
        self._own_group = not sys.stdin.isatty() if sys.stdin else True
        self._child: subprocess.Popen[bytes] | None = None
        self._stop_requests = 0
        self._start_failure_status = EXIT_NOT_FOUND
        self._wake = threading.Event()
        self._tracker = RestartTracker(
            initial_s=config.backoff_initial_s,
            max_s=config.backoff_max_s,
            reset_after_s=config.backoff_reset_after_s,
            loop_restarts=config.crash_loop_restarts,
            loop_window_s=config.crash_loop_window_s,
        )

    def run(self) -> int:
        """Start, wait, restart while the policy says so; the last exit status."""
        previous = {sig: signal.signal(sig, self._forward) for sig in FORWARDED_SIGNALS}
        try:
            while True:
                started = time.monotonic()
                returncode = self._run_once()
                if returncode is None:
                    return self._start_failure_status
                if not self._should_restart(returncode):
                    return exit_status(returncode)
                if not self._pause_before_restart(time.monotonic() - started):
                    return exit_status(returncode)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run_once(self) -> int | None:
        """One child from start to exit; None when it could not be started."""
        start_ns = time.time_ns()  # before the spawn: the child's first lines come after it
        child = self._spawn()
        if child is None:
            return None
        started = time.monotonic()
        pumps = [
            self._pump(child.stdout, sys.stdout, "stdout", tail_bytes=0),
            self._pump(child.stderr, sys.stderr, "stderr", tail_bytes=STDERR_TAIL_BYTES),
        ]
        self._channel.log(
            start_event(
                pid=child.pid,
                argv=self._config.command,
                cwd=self._cwd,
                restart_count=self._tracker.count,
                time_ns=start_ns,
            )
        )
        self._on_start(child.pid)
        sampler = ProcessSampler(child.pid, start_ns=start_ns)
        metrics = Periodic(
            "steth-run-metrics",
            self._config.metrics_every_s,
            lambda: self._channel.metrics(sampler.sample(time.time_ns())),
        ).start()
        # Popen.wait retries after each signal handler (PEP 475), so forwarding never loses it.
        returncode = child.wait()
        metrics.stop()
        run_seconds = time.monotonic() - started
        for pump in pumps:
            pump.join(PIPE_DRAIN_S)
        self._channel.log(
            exit_event(
                pid=child.pid,
                returncode=returncode,
                run_seconds=run_seconds,
                stderr_tail=pumps[1].tail(self._config.stderr_tail_lines),
            )
        )
        self._child = None
        return returncode

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        try:
            child = subprocess.Popen(
                list(self._config.command),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env,
                process_group=0 if self._own_group else None,
            )
        except OSError as error:
            self._report_start_failure(error)
            return None
        self._child = child
        return child

    def _report_start_failure(self, error: OSError) -> None:
        command = self._config.command[0]
        message = f"cannot start {command}: {error.strerror or error}"
        print(f"steth run: {message}", file=sys.stderr)
        self._start_failure_status = (
            EXIT_NOT_FOUND if isinstance(error, FileNotFoundError) else EXIT_NOT_EXECUTABLE
        )
        self._channel.log(
            log_record(
                time_ns=time.time_ns(),
                body=message,
                severity_number=SEVERITY["ERROR"],
                severity_text="ERROR",
                attributes={"error.type": type(error).__name__},
            )
        )

    def _pump(
        self, pipe: IO[bytes] | None, target: TextIO, stream: str, *, tail_bytes: int
    ) -> StreamPump:
        """A pump on its own copy of the pipe's descriptor (Popen's file object is closed)."""
        assert pipe is not None  # Popen was given PIPE
        source_fd = os.dup(pipe.fileno())
        pipe.close()
        target.flush()
        return StreamPump(
            source_fd=source_fd,
            target_fd=target.fileno(),
            stream=stream,
            parser=self._parser,
            tail_bytes=tail_bytes,
        ).start()

    def _should_restart(self, returncode: int) -> bool:
        if self._stop_requests:
            return False
        if self._config.restart is RestartPolicy.ALWAYS:
            return True
        return self._config.restart is RestartPolicy.ON_FAILURE and returncode != 0

    def _pause_before_restart(self, run_seconds: float) -> bool:
        """Announce the restart and wait the backoff; False when a stop came meanwhile."""
        delay = self._tracker.next_delay(run_seconds)
        self._channel.log(restart_event(restart_count=self._tracker.count, delay_s=delay))
        if self._tracker.entered_crash_loop():
            self._channel.log(
                crash_loop_event(
                    restart_count=self._tracker.count, window_s=self._config.crash_loop_window_s
                )
            )
        self._wake.wait(delay)
        return not self._stop_requests

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        """The handler of every forwarded signal (runs on the main thread)."""
        if signum in _STOP_SIGNALS:
            self._stop_requests += 1
            self._wake.set()
        child = self._child
        if child is None or child.returncode is not None:
            return
        try:
            if signum in _STOP_SIGNALS and self._stop_requests > 1:
                self._kill(child)
            elif self._own_group or signum not in _TERMINAL_SIGNALS:
                child.send_signal(signum)
        except ProcessLookupError:
            pass  # it exited just now; its exit is reported as usual

    def _kill(self, child: subprocess.Popen[bytes]) -> None:
        if self._own_group:
            os.killpg(child.pid, signal.SIGKILL)
        else:
            child.kill()
