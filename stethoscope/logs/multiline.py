"""Joining the lines of one multiline record: tracebacks, stack traces, panics, indented text.

One `MultilineJoiner` per stream. It holds the record being joined until a line arrives that
cannot belong to it, or until it has been idle for `idle_flush_s` (`flush_due`). So every plain
line is held until the next line or at most `idle_flush_s` (call `flush_due` at least that
often); a JSON object line cannot continue anything and is returned at once. Records are lines
joined with "\\n"; what is fed comes out unchanged, in order, except what the bounds cut.

What continues a record:
- any indented line (Java's ``\\tat ...``, Python's frames, ``... 12 more``, ``Suppressed:``);
- Python: ``Traceback (most recent call last):`` (joined to the log line before it, as
  `logging.exception` prints them, unless that line's level is below ERROR), the exception
  line that ends the frames, and a chained ``During handling of the above exception...`` /
  ``The above exception was the direct cause...`` with the blank lines around it;
- Java: an exception line (``java.lang.IllegalStateException: boom``) after a log line, and
  ``Caused by: ...``;
- Go: after ``panic:`` or ``fatal error:``, everything up to a blank line, then ``goroutine N
  [state]:`` blocks (several in a dump, separated by blank lines) with their frame lines,
  ``created by ...`` and ``exit status 2``.
A line that starts with a timestamp or level prefix ends the record before it.
"""

from __future__ import annotations

import enum
import re

from stethoscope.errors import UsageError
from stethoscope.logs.header import split_header
from stethoscope.logs.lines import parse_line

__all__ = ["MultilineJoiner"]


class _Mode(enum.Enum):
    """What the record being joined is, deciding which lines may follow."""

    PLAIN = enum.auto()  # a log line, perhaps with indented lines
    PY_FRAMES = enum.auto()  # inside a traceback, before its exception line
    PY_DONE = enum.auto()  # after the exception line: a chained traceback may follow
    PY_CHAIN = enum.auto()  # after "During handling...": the next traceback follows
    JAVA = enum.auto()  # a Java exception and its frames
    GO_PANIC = enum.auto()  # after "panic:", before the first goroutine
    GO_STACK = enum.auto()  # inside a goroutine's frames


_TRACEBACK = "Traceback (most recent call last):"
_PY_CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_JAVA_EXCEPTION = re.compile(r"(?:[A-Za-z_$][\w$]*\.)+[\w$]*(?:Exception|Error|Throwable)(?::\s|$)")
_JAVA_UNCAUGHT = 'Exception in thread "'
_GO_START = re.compile(r"(?:panic: |fatal error: |SIGQUIT: |SIGABRT: )")
_GOROUTINE = re.compile(r"goroutine \d+ \[[^\]]*\]:$")
# Lines of a goroutine block that are not indented: "main.main()", "created by main.main in
# goroutine 1", "exit status 2" (go run), "...additional frames elided...".
_GO_FRAME = re.compile(r"\S.*\)$|created by |exit status \d+$|\.\.\.additional frames elided")
_ERROR = 17  # OTel severity number of ERROR
# Blank lines a record may hold while waiting to see whether a chain or a goroutine follows.
_MAX_HELD_BLANKS = 1
_BLANK_HOLDING_MODES = frozenset({_Mode.PY_DONE, _Mode.PY_CHAIN, _Mode.GO_PANIC, _Mode.GO_STACK})


class MultilineJoiner:
    """Joins the lines of one stream into records, with each record bounded in lines and bytes.

    `truncated` counts the records cut at `max_lines` or `max_bytes`: the first part is kept,
    the lines beyond the bound that still belonged to the record are dropped.
    """

    def __init__(
        self, *, max_lines: int = 500, max_bytes: int = 256 * 1024, idle_flush_s: float = 0.5
    ) -> None:
        if max_lines < 1:
            raise UsageError(f"max_lines must be at least 1, not {max_lines}")
        if max_bytes < 1:
            raise UsageError(f"max_bytes must be at least 1, not {max_bytes}")
        if not idle_flush_s >= 0:
            raise UsageError(f"idle_flush_s must be 0 or more seconds, not {idle_flush_s}")
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._idle_flush_s = idle_flush_s
        self.truncated = 0
        self._lines: list[str] = []
        self._bytes = 0
        self._cut = False  # the record reached a bound: further lines of it are dropped
        self._blanks: list[str] = []  # blank lines held after the record, not yet in it
        self._mode = _Mode.PLAIN
        self._last_seen = 0.0

    def feed(self, line: str, now: float) -> list[str]:
        """Take one line (without its newline); return the records it completed, oldest first."""
        if line[:1] == "{" and line.rstrip().endswith("}"):
            done = self._finish()  # a JSON object line continues nothing and is complete
            done.append(self._bounded(line))
            return done
        if self._lines and self._continues(line):
            self._last_seen = now
            return []
        done = self._finish()
        if line.strip():
            self._start(line, now)
        else:
            done.append(line)  # a blank line that joins nothing is a record of its own
        return done

    def flush_due(self, now: float) -> list[str]:
        """The record being joined, when no line has come for `idle_flush_s`."""
        if (self._lines or self._blanks) and now - self._last_seen >= self._idle_flush_s:
            return self._finish()
        return []

    def close(self) -> list[str]:
        """Everything still held: call at the end of the stream."""
        return self._finish()

    def _continues(self, line: str) -> bool:
        """Whether `line` belongs to the record being joined; if so it is added."""
        if not line.strip():
            if self._mode in _BLANK_HOLDING_MODES and len(self._blanks) < _MAX_HELD_BLANKS:
                self._blanks.append(line)
                return True
            return False
        mode = self._next_mode(line)
        if mode is None:
            return False
        self._mode = mode
        for blank in self._blanks:
            self._add(blank)
        self._blanks.clear()
        self._add(line)
        return True

    def _next_mode(self, line: str) -> _Mode | None:
        """The record's mode once `line` is added, or None when `line` starts a new record."""
        mode = self._mode
        if self._blanks:  # only a chained traceback or another goroutine comes after a blank
            if mode is _Mode.PY_DONE and line.startswith(_PY_CHAIN):
                return _Mode.PY_CHAIN
            if mode is _Mode.PY_CHAIN and line.startswith(_TRACEBACK):
                return _Mode.PY_FRAMES
            if mode in (_Mode.GO_PANIC, _Mode.GO_STACK) and _GOROUTINE.match(line):
                return _Mode.GO_STACK
            return None
        if line[:1] in " \t":
            return mode
        if mode is _Mode.PY_FRAMES:
            return None if _starts_with_header(line) else _Mode.PY_DONE
        if mode is _Mode.GO_PANIC:
            if _GOROUTINE.match(line):
                return _Mode.GO_STACK
            return None if _starts_with_header(line) else mode
        if mode is _Mode.GO_STACK:
            return mode if _GO_FRAME.match(line) else None
        if line.startswith(_PY_CHAIN) and mode is _Mode.PY_DONE:
            return _Mode.PY_CHAIN
        if line.startswith(_TRACEBACK) and (
            mode is _Mode.PY_CHAIN or (mode is _Mode.PLAIN and self._may_precede_traceback())
        ):
            return _Mode.PY_FRAMES
        if line.startswith("Caused by: ") and mode in (_Mode.PLAIN, _Mode.JAVA):
            return _Mode.JAVA
        if mode is _Mode.PLAIN and _JAVA_EXCEPTION.match(line):
            return _Mode.JAVA
        return None

    def _may_precede_traceback(self) -> bool:
        """Whether the held line can be the message `logging.exception` prints before a traceback.

        That message is logged at ERROR or above; a line below ERROR is rather the last thing a
        program said before an uncaught exception, a record of its own. No level at all (a
        thread's "Exception in thread ..." banner, a bare message format) joins.
        """
        number = parse_line(self._lines[0]).severity_number
        return number == 0 or number >= _ERROR

    def _start(self, line: str, now: float) -> None:
        if line.startswith(_TRACEBACK):
            self._mode = _Mode.PY_FRAMES
        elif _GO_START.match(line):
            self._mode = _Mode.GO_PANIC
        elif _GOROUTINE.match(line):
            self._mode = _Mode.GO_STACK
        elif line.startswith(_JAVA_UNCAUGHT) or _JAVA_EXCEPTION.match(line):
            self._mode = _Mode.JAVA
        else:
            self._mode = _Mode.PLAIN
        self._last_seen = now
        self._add(line)

    def _add(self, line: str) -> None:
        """Append a line to the record, within the bounds; the first line is cut if too long."""
        if self._cut:
            return
        size = _size(line) + (1 if self._lines else 0)  # the joining newline counts too
        if len(self._lines) < self._max_lines and self._bytes + size <= self._max_bytes:
            self._lines.append(line)
            self._bytes += size
            return
        self._cut = True
        self.truncated += 1
        if not self._lines:
            self._lines.append(_cut_to(line, self._max_bytes))

    def _bounded(self, line: str) -> str:
        if _size(line) <= self._max_bytes:
            return line
        self.truncated += 1
        return _cut_to(line, self._max_bytes)

    def _finish(self) -> list[str]:
        """The record being joined, then any blank lines held after it, each its own record."""
        done = ["\n".join(self._lines)] if self._lines else []
        done.extend(self._blanks)
        self._lines = []
        self._blanks = []
        self._bytes = 0
        self._cut = False
        self._mode = _Mode.PLAIN
        return done


def _starts_with_header(line: str) -> bool:
    """Whether a line opens with a timestamp or level, as a new record does."""
    header = split_header(line)
    return header.timestamp is not None or header.level is not None


def _size(line: str) -> int:
    return len(line) if line.isascii() else len(line.encode("utf-8", "surrogatepass"))


def _cut_to(line: str, max_bytes: int) -> str:
    """The longest start of `line` within `max_bytes` UTF-8 bytes, never half a character."""
    if line.isascii():
        return line[:max_bytes]
    raw = line.encode("utf-8", "surrogatepass")[:max_bytes]
    # Dropping at most three trailing bytes removes a character the cut split in two.
    for drop in range(4):
        try:
            return raw[: len(raw) - drop].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", "replace")
