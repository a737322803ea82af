"""Durable read offsets of `steth tail`, keyed by file identity.

Format: docs/formats/tail-state.md.

A file is known by its device and inode plus a SHA-256 of its first bytes (up to
`FINGERPRINT_BYTES`), so that a new file which reuses a deleted file's inode is not mistaken for
it. The state file is written atomically (temp file, fsync, rename, fsync of the directory) and
guarded by an exclusive lock, so two `steth tail` processes never share one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stethoscope.errors import DataError, UsageError

__all__ = [
    "FINGERPRINT_BYTES",
    "FileKey",
    "OffsetEntry",
    "OffsetStore",
    "fingerprint_of",
]

FORMAT = "steth-tail-state"
VERSION = 1
# Enough to tell apart two files that begin with the same timestamped line.
FINGERPRINT_BYTES = 1024

FileKey = tuple[int, int]  # (device, inode)


def fingerprint_of(fd: int, length: int) -> tuple[str, int]:
    """SHA-256 hex of the first `length` bytes of an open file (fewer if it is shorter)."""
    head = os.pread(fd, length, 0)
    return hashlib.sha256(head).hexdigest(), len(head)


@dataclass(frozen=True, kw_only=True)
class OffsetEntry:
    """Where reading of one file stopped: every byte before `offset` was delivered."""

    device: int
    inode: int
    fingerprint: str
    fingerprint_bytes: int
    offset: int
    path: str
    seen_ns: int

    @property
    def key(self) -> FileKey:
        return (self.device, self.inode)

    def matches(self, fd: int) -> bool:
        """Whether the open file `fd` begins with the bytes this entry fingerprinted."""
        digest, length = fingerprint_of(fd, self.fingerprint_bytes)
        return length == self.fingerprint_bytes and digest == self.fingerprint


class OffsetStore:
    """The state file: load at start, `update`/`forget` entries, `save` atomically."""

    def __init__(self, path: Path, *, max_entries: int, forget_after_s: float) -> None:
        self.path = path
        self.max_entries = max_entries
        self.forget_after_s = forget_after_s
        self.entries: dict[FileKey, OffsetEntry] = {}
        self.existed = False  # a state file was there: not the first start
        self.forgotten = 0  # entries dropped by the bounds
        self._lock_fd: int | None = None

    def open(self) -> OffsetStore:
        """Take the lock, remove temp files a crash left, and load the entries."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UsageError(f"cannot use state file {self.path}: {error.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise UsageError(
                f"state file {self.path} is in use by another `steth tail`; give --state"
            ) from None
        for leftover in self.path.parent.glob(f"{self.path.name}.tmp-*"):
            leftover.unlink(missing_ok=True)
        self._load()
        return self

    def close(self) -> None:
        """Release the lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def get(self, key: FileKey) -> OffsetEntry | None:
        """The entry of a file identity, if any."""
        return self.entries.get(key)

    def update(self, entry: OffsetEntry) -> None:
        """Record (or replace) one file's offset."""
        self.entries[entry.key] = entry

    def forget(self, key: FileKey) -> None:
        """Drop a file that no longer exists."""
        self.entries.pop(key, None)

    def save(self) -> None:
        """Write every entry atomically: temp file, fsync, rename, fsync the directory."""
        self._prune()
        document = {
            "format": FORMAT,
            "version": VERSION,
            "written_ns": time.time_ns(),
            "files": [asdict(entry) for entry in self.entries.values()],
        }
        temp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _prune(self) -> None:
        # Entries of files not seen for long (rotated out of the globs) go first, then the
        # least recently seen ones beyond the bound.
        cutoff = time.time_ns() - int(self.forget_after_s * 1e9)
        kept = sorted(
            (entry for entry in self.entries.values() if entry.seen_ns >= cutoff),
            key=lambda entry: entry.seen_ns,
            reverse=True,
        )[: self.max_entries]
        self.forgotten += len(self.entries) - len(kept)
        self.entries = {entry.key: entry for entry in kept}

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as error:
            raise DataError(f"cannot read state file {self.path}: {error.strerror}") from None
        self.existed = True
        try:
            document = json.loads(text)
            if document.get("format") != FORMAT or document.get("version") != VERSION:
                raise ValueError(f"not a {FORMAT} version {VERSION} file")
            for item in document["files"]:
                self.update(_entry(item))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise DataError(
                f"state file {self.path} is not readable ({error}); move it away to start over"
            ) from None


def _entry(item: dict[str, Any]) -> OffsetEntry:
    entry = OffsetEntry(
        device=int(item["device"]),
        inode=int(item["inode"]),
        fingerprint=str(item["fingerprint"]),
        fingerprint_bytes=int(item["fingerprint_bytes"]),
        offset=int(item["offset"]),
        path=str(item["path"]),
        seen_ns=int(item["seen_ns"]),
    )
    if entry.offset < 0 or not 0 <= entry.fingerprint_bytes <= FINGERPRINT_BYTES:
        raise ValueError(f"bad offset or fingerprint length for {entry.path}")
    return entry
