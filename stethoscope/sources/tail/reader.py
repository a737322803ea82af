"""Bytes of one open file into complete lines, each with the file offset just past it.

A line is complete at its newline. A last line without one waits (the writer is probably in the
middle of it) until `partial_flush_s` passes with no new bytes. A line longer than
`max_line_bytes` is cut there and counted; the rest of it, up to its newline, is skipped. Invalid
UTF-8 is decoded with U+FFFD replacement characters, so binary junk cannot stop a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Line", "LineReader"]


@dataclass(frozen=True)
class Line:
    """One line's text (without its line ending) and the offset of the byte after it."""

    text: str
    end: int


class LineReader:
    """Reads from `fd` at `offset` and splits what it reads into lines."""

    def __init__(
        self, fd: int, offset: int, *, max_line_bytes: int, partial_flush_s: float, now: float
    ) -> None:
        self.fd = fd
        self.max_line_bytes = max_line_bytes
        self.partial_flush_s = partial_flush_s
        self.truncated_lines = 0
        self._buffer = bytearray()
        self._buffer_start = offset  # file offset of the buffer's first byte
        self._skipping = False  # inside the tail of an over-long line
        self.last_growth = now

    @property
    def consumed(self) -> int:
        """Offset of the first byte not yet part of a returned line (the restart point)."""
        return self._buffer_start

    @property
    def position(self) -> int:
        """Offset of the next byte to read."""
        return self._buffer_start + len(self._buffer)

    def restart(self, offset: int, now: float) -> None:
        """Forget buffered bytes and read from `offset` (the file was truncated)."""
        self._buffer.clear()
        self._buffer_start = offset
        self._skipping = False
        self.last_growth = now

    def read(self, limit: int, now: float) -> tuple[list[Line], int]:
        """Read up to `limit` bytes; (the lines they complete, bytes read)."""
        data = os.pread(self.fd, limit, self.position)
        if not data:
            return [], 0
        self._buffer += data
        self.last_growth = now
        return self._split(), len(data)

    def flush_partial(self, now: float, *, force: bool = False) -> list[Line]:
        """The unterminated last line, once it has been idle long enough (or when forced)."""
        if not self._buffer or (not force and now - self.last_growth < self.partial_flush_s):
            return []
        if self._skipping:  # the rest of an over-long line already sent: drop it
            self._buffer_start += len(self._buffer)
            self._buffer.clear()
            return []
        return [self._take(len(self._buffer), len(self._buffer))]

    def _split(self) -> list[Line]:
        lines: list[Line] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                break
            if self._skipping:
                self._buffer_start += newline + 1
                del self._buffer[: newline + 1]
                self._skipping = False
                continue
            if newline > self.max_line_bytes:
                lines.append(self._cut())
                continue
            lines.append(self._take(newline, newline + 1))
        if len(self._buffer) > self.max_line_bytes and not self._skipping:
            lines.append(self._cut())
        if self._skipping:  # nothing in the buffer is worth keeping until the next newline
            self._buffer_start += len(self._buffer)
            self._buffer.clear()
        return lines

    def _cut(self) -> Line:
        """The first `max_line_bytes` of an over-long line; the rest is skipped."""
        self.truncated_lines += 1
        line = self._take(self.max_line_bytes, self.max_line_bytes)
        self._skipping = True
        return line

    def _take(self, length: int, consumed: int) -> Line:
        raw = bytes(self._buffer[:length])
        del self._buffer[:consumed]
        self._buffer_start += consumed
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        return Line(raw.decode("utf-8", errors="replace"), self._buffer_start)
