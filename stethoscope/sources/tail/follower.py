"""Following files as `tail -F` does, by polling: globs, rotation, truncation, re-creation.

Each poll re-evaluates the globs and stats every match. A file is known by identity (device,
inode), not by name, and is held open:
- a new identity at a path (rename rotation, delete and re-create) opens the new file from its
  start, while the old one is read to its end and closed once it has been idle `rotate_wait_s`;
- a file smaller than what was read, or whose first bytes changed (copytruncate, truncation,
  rewrite), is read again from offset 0;
- at the very first start (no state file) without `--from-start`, files already there are read
  from their last line on, as `tail` does; files found later are read from their start;
- a file renamed away while `steth tail` was stopped is found again by its inode in the same
  directory and read to its end, so rotation during a restart loses nothing.
"""

from __future__ import annotations

import fnmatch
import glob
import itertools
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from stethoscope.sources.tail.config import TailConfig
from stethoscope.sources.tail.offsets import (
    FINGERPRINT_BYTES,
    FileKey,
    OffsetStore,
    fingerprint_of,
)
from stethoscope.sources.tail.reader import Line, LineReader

__all__ = ["FileUpdate", "FollowedFile", "Follower"]

# How far back from the end the first start looks for the beginning of the last line.
TAIL_LOOKBACK_BYTES = 64 * 1024


@dataclass
class FollowedFile:
    """One open file and where reading it stands."""

    serial: int  # unique per opening, even when an inode is reused
    key: FileKey
    path: str  # the path it was first found at: the name its writer used
    fd: int
    reader: LineReader
    fingerprint: str
    fingerprint_bytes: int
    size: int
    orphan_since: float | None = None  # no longer at any matching path since then


@dataclass
class FileUpdate:
    """What one poll found in one file, in order: restarted, then lines, then closed."""

    file: FollowedFile
    lines: list[Line] = field(default_factory=list)
    opened: bool = False
    restarted: bool = False  # truncated or replaced: reading started over at offset 0
    closed: bool = False
    deleted: bool = False  # closed and gone from the file system: forget its offset


class Follower:
    """Discovers and reads the files matching the configured globs."""

    def __init__(self, config: TailConfig, store: OffsetStore, warn: Callable[[str], None]) -> None:
        self.config = config
        self.store = store
        self.warn = warn
        self.files: dict[FileKey, FollowedFile] = {}
        self.opened_total = 0
        self.refused_files = 0  # matches not followed because max_open_files were open
        self.restarts = 0
        self.behind = False  # the last poll left unread bytes in a file it was allowed to read
        self._closed_truncated_lines = 0
        self._serials = itertools.count(1)
        self._first_poll = True
        self._warned: set[str] = set()

    @property
    def truncated_lines(self) -> int:
        """Over-long lines cut at `max_line_bytes` so far."""
        still_open = sum(file.reader.truncated_lines for file in self.files.values())
        return self._closed_truncated_lines + still_open

    def poll(self, now: float, has_room: Callable[[], bool]) -> list[FileUpdate]:
        """One round: discover, detect rotation and truncation, read what is new."""
        matched = self._match()
        updates = [FileUpdate(file, opened=True) for file in self._open_new(matched, now)]
        if self._first_poll:
            updates += [FileUpdate(f, opened=True) for f in self._recover_rotated(matched, now)]
            self._first_poll = False
        by_file = {update.file.serial: update for update in updates}
        self.behind = False
        current = set(matched.values())
        draining: set[str] = set()
        # Rotated-away files first, so that the old file's end is read before the new file.
        ordered = sorted(self.files.values(), key=lambda f: (f.key in current, f.serial))
        for file in ordered:
            update = by_file.get(file.serial) or FileUpdate(file)
            if file.key in current:
                file.orphan_since = None
            elif file.orphan_since is None:
                file.orphan_since = now
            may_read = file.orphan_since is not None or file.path not in draining
            self._advance(update, now, may_read=may_read and has_room())
            if file.orphan_since is not None and file.reader.position < file.size:
                draining.add(file.path)  # the new file at its path waits for the old one's end
            if update.lines or update.restarted or update.closed or update.opened:
                by_file[file.serial] = update
        return list(by_file.values())

    def close(self) -> None:
        """Close every file (shutdown); unterminated last lines stay for the next start."""
        for file in list(self.files.values()):
            self._drop(file)

    # -- discovery ------------------------------------------------------------------------------

    def _match(self) -> dict[str, FileKey]:
        """Every regular file matching a pattern (and no exclusion), by path."""
        found: dict[str, FileKey] = {}
        own = str(self.config.state_path)  # the state, its lock and temp files are not logs
        for pattern in self.config.patterns:
            paths = glob.glob(pattern, recursive=True) if glob.has_magic(pattern) else [pattern]
            for path in paths:
                if path.startswith(own) or any(
                    fnmatch.fnmatch(path, excluded) for excluded in self.config.exclude
                ):
                    continue
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    found[path] = (info.st_dev, info.st_ino)
            if not paths or (not glob.has_magic(pattern) and pattern not in found):
                self._warn_once(f"missing:{pattern}", f"{pattern}: no such file yet; waiting")
        return found

    def _open_new(self, matched: dict[str, FileKey], now: float) -> list[FollowedFile]:
        opened = []
        for path, key in sorted(matched.items()):
            if key in self.files:
                continue
            if len(self.files) >= self.config.max_open_files:
                self.refused_files += 1
                self._warn_once("max-open", f"more than {self.config.max_open_files} files match")
                continue
            file = self._open(path, now)
            if file is not None:
                opened.append(file)
        return opened

    def _open(self, path: str, now: float, *, resume_at: int | None = None) -> FollowedFile | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            self._warn_once(f"open:{path}", f"cannot read {path}: {error.strerror}; retrying")
            return None
        self._warned.discard(f"open:{path}")
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino)
        if key in self.files:  # replaced between stat and open by a file already followed
            os.close(fd)
            return None
        offset = self._start_offset(fd, key, info.st_size) if resume_at is None else resume_at
        digest, length = fingerprint_of(fd, FINGERPRINT_BYTES)
        reader = LineReader(
            fd,
            offset,
            max_line_bytes=self.config.max_line_bytes,
            partial_flush_s=self.config.partial_flush_s,
            now=now,
        )
        file = FollowedFile(
            next(self._serials), key, path, fd, reader, digest, length, info.st_size
        )
        self.files[key] = file
        self.opened_total += 1
        return file

    def _start_offset(self, fd: int, key: FileKey, size: int) -> int:
        entry = self.store.get(key)
        if entry is not None:
            # Same inode: resume only if it is the same file (inode reuse after a delete changes
            # the first bytes) and it did not shrink while we were away (truncation).
            return entry.offset if entry.matches(fd) and entry.offset <= size else 0
        if self._first_poll and not self.store.existed and not self.config.from_start:
            return _last_line_start(fd, size)
        return 0

    def _recover_rotated(self, matched: dict[str, FileKey], now: float) -> list[FollowedFile]:
        """Files known to the state but renamed away while stopped: find them by inode."""
        recovered = []
        for entry in list(self.store.entries.values()):
            if entry.key in self.files or entry.key in matched.values():
                continue
            path = _find_inode(os.path.dirname(entry.path), entry.key)
            if path is None:
                continue
            file = self._open(path, now, resume_at=entry.offset)
            if file is None:
                continue
            if not entry.matches(file.fd) or file.size < entry.offset:
                self._drop(file)  # inode reused by an unrelated file
                continue
            file.path, file.orphan_since = entry.path, now
            recovered.append(file)
        return recovered

    # -- reading --------------------------------------------------------------------------------

    def _advance(self, update: FileUpdate, now: float, *, may_read: bool) -> None:
        file = update.file
        info = os.fstat(file.fd)
        if info.st_size != file.size or file.fingerprint_bytes < FINGERPRINT_BYTES:
            self._check_replaced(update, info.st_size, now)
        file.size = info.st_size
        if may_read:
            lines, count = file.reader.read(self.config.read_chunk_bytes, now)
            update.lines += lines
            self.behind |= count == self.config.read_chunk_bytes
        drained = file.reader.position >= file.size
        if drained:  # an unterminated line is final only if nothing of it is left unread
            update.lines += file.reader.flush_partial(now)
        idle = now - file.reader.last_growth >= self.config.rotate_wait_s
        if file.orphan_since is not None and drained and idle:
            update.lines += file.reader.flush_partial(now, force=True)
            update.closed = True
            update.deleted = info.st_nlink == 0
            self._drop(file)

    def _check_replaced(self, update: FileUpdate, size: int, now: float) -> None:
        """Start over at 0 when the file shrank below what was read or its head changed."""
        file = update.file
        digest, length = fingerprint_of(file.fd, file.fingerprint_bytes)
        replaced = size < file.reader.position or (
            length != file.fingerprint_bytes or digest != file.fingerprint
        )
        if replaced:
            self.restarts += 1
            file.reader.restart(0, now)
            update.restarted = True
        file.fingerprint, file.fingerprint_bytes = fingerprint_of(file.fd, FINGERPRINT_BYTES)

    def _drop(self, file: FollowedFile) -> None:
        self._closed_truncated_lines += file.reader.truncated_lines
        self.files.pop(file.key, None)
        os.close(file.fd)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warn(message)


def _last_line_start(fd: int, size: int) -> int:
    """Offset just past the last newline before `size`: where `tail` would start."""
    start = max(0, size - TAIL_LOOKBACK_BYTES)
    tail = os.pread(fd, size - start, start)
    newline = tail.rfind(b"\n")
    if newline >= 0:
        return start + newline + 1
    return 0 if start == 0 else size


def _find_inode(directory: str, key: FileKey) -> str | None:
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if (
                    entry.inode() == key[1]
                    and entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_dev == key[0]
                ):
                    return entry.path
    except OSError:
        return None
    return None
