"""What `steth tail` is told: the files, the identity they report under, and every bound."""

from __future__ import annotations

import glob
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from stethoscope.errors import UsageError

__all__ = ["TailConfig", "default_instance", "default_state_path"]


def default_instance() -> str:
    """The host name: log files belong to the machine, and it survives restarts of `steth tail`."""
    return socket.gethostname()


def default_state_path(service: str, instance: str) -> Path:
    """$XDG_STATE_HOME (or ~/.local/state)/stethoscope/tail/<service>@<instance>.json."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{service}@{instance}")
    return Path(base) / "stethoscope" / "tail" / f"{name}.json"


@dataclass(frozen=True, kw_only=True)
class TailConfig:
    """Everything `steth tail` needs; `validate()` refuses impossible settings at start-up."""

    patterns: tuple[str, ...]
    service: str
    instance: str
    state_path: Path
    exclude: tuple[str, ...] = ()
    from_start: bool = False
    endpoint: str = "http://127.0.0.1:4318"
    token: str | None = None
    poll_interval_s: float = 0.25
    # Records waiting for the collector; reading pauses while it is half full.
    spool_bytes: int = 32 * 2**20
    # Bytes read from one file at a time: keeps files fair and bounds what one read can add to
    # the spool (reading pauses between reads, never inside one).
    read_chunk_bytes: int = 256 * 1024
    max_line_bytes: int = 64 * 1024
    # A last line without a newline is sent after this long without new bytes.
    partial_flush_s: float = 10.0
    # A file renamed or deleted away from its path is read until idle this long, then closed.
    rotate_wait_s: float = 5.0
    max_open_files: int = 1024
    max_state_entries: int = 10_000
    forget_after_s: float = 7 * 24 * 3600.0
    state_save_interval_s: float = 0.5
    multiline_max_lines: int = 500
    multiline_max_bytes: int = 256 * 1024
    multiline_idle_s: float = 0.5
    flush_timeout_s: float = 5.0

    def validate(self) -> None:
        """Raise UsageError naming the first impossible setting."""
        if not self.patterns:
            raise UsageError("no files given: use `steth tail PATH_OR_GLOB... --service NAME`")
        if not self.service.strip():
            raise UsageError("--service must not be empty")
        if not self.instance.strip():
            raise UsageError("--instance must not be empty")
        if not self.endpoint.startswith(("http://", "https://")):
            raise UsageError(
                f"--endpoint must be an http:// or https:// URL, got {self.endpoint!r}"
            )
        for pattern in self.patterns:
            _check_pattern(pattern)
        if self.state_path.is_dir():
            raise UsageError(f"--state {self.state_path} is a directory; give a file name")
        for name in (
            "read_chunk_bytes",
            "max_line_bytes",
            "max_open_files",
            "max_state_entries",
            "spool_bytes",
        ):
            if getattr(self, name) < 1:
                raise UsageError(f"{_flag(name)} must be at least 1")
        for name in ("multiline_max_lines", "multiline_max_bytes"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1")
        for name in (
            "poll_interval_s",
            "partial_flush_s",
            "rotate_wait_s",
            "forget_after_s",
            "flush_timeout_s",
        ):
            if getattr(self, name) <= 0:
                raise UsageError(f"{_flag(name)} must be positive")
        if self.max_line_bytes > self.read_chunk_bytes:
            raise UsageError(
                f"--max-line-bytes must not exceed {self.read_chunk_bytes} (a 64th of the spool)"
            )


def _flag(name: str) -> str:
    return "--" + name.removesuffix("_s").replace("_", "-")


def _check_pattern(pattern: str) -> None:
    """A literal path must not be a directory; its directory (or a glob's root) must exist."""
    if not os.path.isabs(pattern):
        raise UsageError(f"{pattern}: paths must be absolute")
    if glob.has_magic(pattern):
        root = _static_root(pattern)
        if not os.path.isdir(root):
            raise UsageError(f"{pattern}: directory {root} does not exist")
        return
    if os.path.isdir(pattern):
        raise UsageError(f"{pattern} is a directory; give files or a glob like {pattern}/*.log")
    if not os.path.isdir(os.path.dirname(pattern)):
        raise UsageError(f"{pattern}: directory {os.path.dirname(pattern)} does not exist")


def _static_root(pattern: str) -> str:
    """The longest leading directory of a glob without wildcards."""
    parts: list[str] = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return str(Path(*parts))
