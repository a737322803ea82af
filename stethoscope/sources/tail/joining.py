"""One file's lines joined into records, knowing which file offset every returned record reaches.

The offset that may be committed for a file is the start of the oldest line the joiner still
holds: lines held for joining (a traceback may continue) are not yet sent. The joiner's contract
gives what is needed: a call that returns records has released every line held before it; the
line just fed is held too unless it stands alone (a JSON object line, or a blank line that
joins nothing), which the joiner returns at once.
"""

from __future__ import annotations

from collections import deque

from stethoscope.logs.multiline import MultilineJoiner
from stethoscope.sources.tail.reader import Line

__all__ = ["FileRecords"]


class FileRecords:
    """A `MultilineJoiner` plus the end offsets of the lines it holds."""

    def __init__(self, *, start: int, max_lines: int, max_bytes: int, idle_flush_s: float) -> None:
        self._joiner = MultilineJoiner(
            max_lines=max_lines, max_bytes=max_bytes, idle_flush_s=idle_flush_s
        )
        self._held: deque[int] = deque()
        self.done_offset = start  # every line before this offset was returned in a record
        self.lines_done = 0  # lines returned in records, for the summary

    @property
    def cut_records(self) -> int:
        """Records cut at the multiline bounds (lines or bytes)."""
        return self._joiner.truncated

    @property
    def holding(self) -> bool:
        """Whether the joiner still holds lines."""
        return bool(self._held)

    def feed(self, line: Line, now: float) -> list[str]:
        """Join one line; the records it completed."""
        records = self._joiner.feed(line.text, now)
        if records:
            self._release()
            if _stands_alone(line.text):
                self.done_offset = line.end
                self.lines_done += 1
                return records
        self._held.append(line.end)
        return records

    def flush_due(self, now: float) -> list[str]:
        """The record held longer than the idle time."""
        records = self._joiner.flush_due(now)
        if records:
            self._release()
        return records

    def close(self) -> list[str]:
        """Everything held (the joiner starts afresh)."""
        records = self._joiner.close()
        self._release()
        return records

    def restart(self) -> list[str]:
        """The file started over at offset 0: what is held (old content) goes out as it is."""
        records = self.close()
        self.done_offset = 0
        return records

    def _release(self) -> None:
        if self._held:
            self.done_offset = self._held[-1]
            self.lines_done += len(self._held)
            self._held.clear()


def _stands_alone(text: str) -> bool:
    """The lines `MultilineJoiner.feed` returns at once instead of holding."""
    return not text.strip() or (text[:1] == "{" and text.rstrip().endswith("}"))
