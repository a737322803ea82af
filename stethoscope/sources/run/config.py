"""What `steth run` is told: the command, its identity, and every bound and interval, checked."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from stethoscope.errors import UsageError

__all__ = ["RestartPolicy", "RunConfig", "default_instance"]


class RestartPolicy(StrEnum):
    """When a child that exited is started again."""

    NO = "no"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """The policy named `text`, or a UsageError listing the allowed names."""
        for policy in cls:
            if policy.value == text:
                return policy
        allowed = ", ".join(policy.value for policy in cls)
        raise UsageError(f"--restart must be one of: {allowed}; got {text!r}")


def default_instance() -> str:
    """host:pid of `steth run` itself: it stays the same across restarts of the child."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything `steth run` needs; `validate()` refuses impossible settings at start-up."""

    command: tuple[str, ...]
    service: str
    instance: str
    endpoint: str = "http://127.0.0.1:4318"
    token: str | None = None
    instrument: bool = True
    restart: RestartPolicy = RestartPolicy.NO
    # Backoff between restarts: doubles from `backoff_initial_s` up to `backoff_max_s`, and starts
    # over once a child has stayed up for `backoff_reset_after_s`.
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    backoff_reset_after_s: float = 60.0
    # A crash loop: at least this many restarts within the window.
    crash_loop_restarts: int = 5
    crash_loop_window_s: float = 300.0
    metrics_every_s: float = 5.0
    probe_url: str | None = None
    probe_every_s: float = 5.0
    probe_timeout_s: float = 2.0
    probe_grace_s: float = 10.0
    flush_timeout_s: float = 5.0
    stderr_tail_lines: int = 20
    # Output waiting between the pipe threads and the parser; beyond this, lines are counted as
    # dropped (the child keeps running at full speed, its terminal output is unaffected).
    capture_queue_bytes: int = 16 * 2**20
    max_line_bytes: int = 64 * 1024
    multiline_max_lines: int = 500
    multiline_max_bytes: int = 256 * 1024
    multiline_idle_s: float = 0.5

    def validate(self) -> None:
        """Raise UsageError naming the first impossible setting."""
        if not self.command:
            raise UsageError("no command given: use `steth run [OPTIONS] -- CMD ARGS...`")
        if not self.service.strip():
            raise UsageError("--service must not be empty")
        if not self.instance.strip():
            raise UsageError("--instance must not be empty")
        _check_url("--endpoint", self.endpoint)
        if self.probe_url is not None:
            _check_url("--probe", self.probe_url)
        positive = {
            "--metrics-every": self.metrics_every_s,
            "--probe-every": self.probe_every_s,
            "--probe-timeout": self.probe_timeout_s,
            "--restart-delay": self.backoff_initial_s,
            "--crash-loop-window": self.crash_loop_window_s,
            "multiline_idle_s": self.multiline_idle_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise UsageError(f"{name} must be positive, got {value}")
        if self.probe_grace_s < 0:
            raise UsageError(f"--probe-grace must not be negative, got {self.probe_grace_s}")
        if self.flush_timeout_s < 0:
            raise UsageError(f"--flush-timeout must not be negative, got {self.flush_timeout_s}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise UsageError("--max-restart-delay must be at least --restart-delay")
        counts = {
            "--crash-loop-restarts": self.crash_loop_restarts,
            "stderr_tail_lines": self.stderr_tail_lines,
            "capture_queue_bytes": self.capture_queue_bytes,
            "max_line_bytes": self.max_line_bytes,
            "multiline_max_lines": self.multiline_max_lines,
            "multiline_max_bytes": self.multiline_max_bytes,
        }
        for name, count in counts.items():
            if count < 1:
                raise UsageError(f"{name} must be at least 1, got {count}")


def _check_url(flag: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{flag} must be an http:// or https:// URL, got {url!r}")
