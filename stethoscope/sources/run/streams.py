"""The child's stdout and stderr: passed through unchanged, and turned into log records.

One pump thread per pipe reads whatever the child wrote, writes those exact bytes to our own
stdout/stderr at once (partial lines included) and puts the chunk on a bounded queue: a few
system calls per 64 KiB, no per-line work, so the child runs as fast as it would without us.
One parser thread takes chunks off the queue, splits lines, joins multiline records
(tracebacks, stack traces), parses timestamp, level and fields, and emits records to the
shipper (which never blocks either). When the queue is full, a chunk's lines are counted as
dropped (reported at exit, and as a `capture.overflow` event), never waited for.

Severity: the level parsed from the line; without one, ERROR for a crash report (a Python
traceback, a Go panic, a Java or JavaScript exception), else INFO for stdout and WARN for stderr
(programs write their warnings and errors there). Every record carries `log.iostream`
(stdout or stderr, the OTel semantic convention). Blank lines are passed through but are not
records.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from stethoscope.logs.lines import parse_line
from stethoscope.logs.multiline import MultilineJoiner
from stethoscope.sources.pipeworker import widen_pipe
from stethoscope.sources.records import SEVERITY, log_record
from stethoscope.sources.shipper import Channel

__all__ = ["LineParser", "StreamPump"]

_READ_BYTES = 64 * 1024
_DEFAULT_LEVEL = {"stdout": "INFO", "stderr": "WARN"}
# The first line of an unlevelled crash report.
_CRASH = re.compile(
    r"Traceback \(most recent call last\):|panic: |fatal error: |Exception in thread "
    r"|(?:[A-Za-z_$][\w$]*\.)*[A-Z][\w$]*(?:Exception|Error)(?::\s|$)"
)


@dataclass(frozen=True)
class _Chunk:
    stream: str
    data: bytes | None  # None: the stream ended
    observed_ns: int


class LineParser:
    """The parser thread: chunks from a bounded queue to joined, parsed log records."""

    def __init__(
        self,
        channel: Channel,
        *,
        queue_bytes: int,
        max_line_bytes: int,
        multiline_max_lines: int,
        multiline_max_bytes: int,
        multiline_idle_s: float,
    ) -> None:
        self._channel = channel
        self._queue_bytes = queue_bytes
        self._max_line_bytes = max_line_bytes
        self._idle_s = multiline_idle_s
        self._chunks: deque[_Chunk] = deque()
        self._queued_bytes = 0
        self._ready = threading.Condition()
        self._closing = False
        self._pending = {stream: bytearray() for stream in _DEFAULT_LEVEL}
        self._joiners = {
            stream: MultilineJoiner(
                max_lines=multiline_max_lines,
                max_bytes=multiline_max_bytes,
                idle_flush_s=multiline_idle_s,
            )
            for stream in _DEFAULT_LEVEL
        }
        # When the record being joined was first seen: a joined record keeps its first line's time.
        self._first_seen: dict[str, int] = {}
        self.dropped_lines = 0
        self._thread = threading.Thread(target=self._run, name="steth-run-parser", daemon=True)

    def start(self) -> LineParser:
        """Start the parser thread."""
        self._thread.start()
        return self

    def offer(self, stream: str, data: bytes | None) -> None:
        """Queue a chunk (None: end of stream) without waiting; over the bound it is dropped."""
        with self._ready:
            size = len(data or b"")
            if data and self._queued_bytes + size > self._queue_bytes:
                self.dropped_lines += data.count(b"\n") or 1
                return
            self._chunks.append(_Chunk(stream, data, time.time_ns()))
            self._queued_bytes += size
            self._ready.notify()

    def close(self, *, timeout_s: float) -> None:
        """Parse what is queued, flush records still being joined, and stop."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join(timeout_s)
        with self._ready:
            # Out of time: what was never parsed is counted, not silently forgotten.
            self.dropped_lines += sum((c.data or b"").count(b"\n") for c in self._chunks)
            self._chunks.clear()
            self._queued_bytes = 0

    def _run(self) -> None:
        while (chunk := self._next()) is not None:
            if chunk.data is None:
                self._end_of(chunk)
            else:
                self._split(chunk)
            self._flush_due()
        for stream in self._joiners:
            self._end_of(_Chunk(stream, None, time.time_ns()))

    def _next(self) -> _Chunk | None:
        """The next chunk; None once closing and drained. Flushes idle records while waiting."""
        while True:
            with self._ready:
                if self._chunks:
                    chunk = self._chunks.popleft()
                    self._queued_bytes -= len(chunk.data or b"")
                    return chunk
                if self._closing:
                    return None
                self._ready.wait(self._idle_s / 2)
                waited = not self._chunks
            if waited:
                self._flush_due()

    def _split(self, chunk: _Chunk) -> None:
        assert chunk.data is not None
        pending = self._pending[chunk.stream]
        pending += chunk.data
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            self._feed(chunk, bytes(pending[start:end]))
            start = end + 1
        del pending[:start]
        while len(pending) > self._max_line_bytes:
            # An endless line is cut into bounded pieces rather than held without limit.
            self._feed(chunk, bytes(pending[: self._max_line_bytes]))
            del pending[: self._max_line_bytes]

    def _end_of(self, chunk: _Chunk) -> None:
        """The stream ended: its partial last line and the record being joined go out."""
        pending = self._pending[chunk.stream]
        if pending:
            self._feed(chunk, bytes(pending))
            pending.clear()
        for text in self._joiners[chunk.stream].close():
            self._emit(chunk.stream, text)

    def _feed(self, chunk: _Chunk, raw: bytes) -> None:
        """Join one line; records completed by it keep the time their first line was seen."""
        text = raw.decode("utf-8", errors="replace").removesuffix("\r")
        stream = chunk.stream
        self._first_seen.setdefault(stream, chunk.observed_ns)
        done = self._joiners[stream].feed(text, time.monotonic())
        for record in done:
            self._emit(stream, record)
        if done and not done[-1].endswith(text):
            self._first_seen[stream] = chunk.observed_ns  # the joiner holds this line

    def _flush_due(self) -> None:
        now = time.monotonic()
        for stream, joiner in self._joiners.items():
            for text in joiner.flush_due(now):
                self._emit(stream, text)

    def _emit(self, stream: str, text: str) -> None:
        if not text.strip():
            return  # a blank line separates output; it is no record
        observed = self._first_seen.pop(stream, None) or time.time_ns()
        parsed = parse_line(text)
        attributes: dict[str, Any] = dict(parsed.attributes)
        attributes["log.iostream"] = stream
        if parsed.severity_number:
            number, level = parsed.severity_number, parsed.severity_text
        else:
            level = "ERROR" if _CRASH.match(text) else _DEFAULT_LEVEL[stream]
            number = SEVERITY[level]
        self._channel.log(
            log_record(
                time_ns=parsed.time_ns,
                observed_ns=observed,
                body=parsed.body,
                severity_number=number,
                severity_text=level,
                attributes=attributes,
                trace_id=parsed.trace_id or b"",
                span_id=parsed.span_id or b"",
            )
        )


class StreamPump:
    """Copies one pipe to our own stream byte for byte and queues the chunks for parsing."""

    def __init__(
        self,
        *,
        source_fd: int,
        target_fd: int,
        stream: str,
        parser: LineParser,
        tail_bytes: int = 0,
    ) -> None:
        self._source_fd = source_fd
        self._target_fd = target_fd
        self._stream = stream
        self._parser = parser
        self._tail_bytes = tail_bytes
        self._tail = b""
        self._target_open = True
        self._thread = threading.Thread(target=self._run, name=f"steth-run-{stream}", daemon=True)
        # A larger pipe lets the child keep writing while the pump waits for the interpreter.
        widen_pipe(source_fd)

    def start(self) -> StreamPump:
        """Start draining the pipe."""
        self._thread.start()
        return self

    def join(self, timeout_s: float) -> bool:
        """Wait for the pipe's end (a descendant may hold it open); True when it ended."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def tail(self, lines: int) -> list[str]:
        """The last `lines` complete or partial lines seen, as text."""
        text = self._tail.decode("utf-8", errors="replace")
        return text.splitlines()[-lines:]

    def _run(self) -> None:
        try:
            while chunk := os.read(self._source_fd, _READ_BYTES):
                self._pass_through(chunk)
                self._parser.offer(self._stream, chunk)
                if self._tail_bytes:
                    self._tail = (self._tail + chunk)[-self._tail_bytes :]
        except OSError:
            pass  # the pipe broke: nothing more will come
        finally:
            self._parser.offer(self._stream, None)
            with contextlib.suppress(OSError):
                os.close(self._source_fd)

    def _pass_through(self, chunk: bytes) -> None:
        """Write the exact bytes to our stream; a closed terminal must not stop the draining."""
        view = memoryview(chunk)
        while self._target_open and view:
            try:
                written = os.write(self._target_fd, view)
            except InterruptedError:
                continue
            except OSError:
                self._target_open = False
                return
            view = view[written:]
