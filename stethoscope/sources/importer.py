"""`steth import`: OTLP/JSON lines files (the Collector file-exporter format, `.gz` too).

Each line is one Export{Trace,Logs,Metrics}ServiceRequest; the signal is read from its top-level
key. A bad line is reported with its number and reason and skipped; every other line is kept,
with its own timestamps, marked as imported so that retention never prunes it.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from stethoscope.errors import IngestError, UsageError
from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp.codec import decode_message, parse_json_request

_SIGNAL_KEYS = {
    b'"resourceSpans"': "traces",
    b'"resource_spans"': "traces",
    b'"resourceLogs"': "logs",
    b'"resource_logs"': "logs",
    b'"resourceMetrics"': "metrics",
    b'"resource_metrics"': "metrics",
}
MAX_PROBLEMS = 20


@dataclass
class ImportSummary:
    """What an import loaded and what it rejected, and why."""

    files: int = 0
    lines: int = 0
    accepted: dict[str, int] = field(default_factory=lambda: {"traces": 0, "logs": 0, "metrics": 0})
    rejected_records: int = 0
    rejected_lines: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def signal_of(line: bytes) -> str | None:
    """The signal of an export-request line, judged by its first top-level key."""
    head = line[:200]
    for key, signal in _SIGNAL_KEYS.items():
        if key in head:
            return signal
    return None


def open_lines(path: Path) -> IO[bytes]:
    """The file as binary lines, gunzipped when it is gzip (by content, not name)."""
    handle = open(path, "rb")  # noqa: SIM115 - returned to the caller
    if handle.read(2) == b"\x1f\x8b":
        handle.seek(0)
        return gzip.open(handle)  # type: ignore[return-value]
    handle.seek(0)
    return io.BufferedReader(handle)  # type: ignore[arg-type]


def check_paths(paths: list[Path]) -> None:
    """UsageError naming every path that cannot be read."""
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise UsageError(f"cannot read: {', '.join(missing)}")


def read_requests(
    path: Path, summary: ImportSummary, advance: Callable[[int], None]
) -> Iterator[tuple[int, str, bytes]]:
    """(line number, signal, line) per request line; bad lines are recorded and skipped."""
    with open(path, "rb") as raw, open_lines(path) as lines:
        position = 0
        for number, line in enumerate(lines, start=1):
            advance(raw.tell() - position)
            position = raw.tell()
            if not line.strip():
                continue
            summary.lines += 1
            signal = signal_of(line)
            if signal is None:
                summary.rejected_lines += 1
                summary.problem(f"{path.name}:{number}: {_why_not_a_request(line)}")
                continue
            yield number, signal, line
        advance(raw.tell() - position)


def _why_not_a_request(line: bytes) -> str:
    try:
        json.loads(line)
    except ValueError as error:
        return f"not valid JSON: {error}"
    return "not an OTLP export request (no resourceSpans, resourceLogs or resourceMetrics)"


def decode_line(signal: str, line: bytes) -> SignalBatch:
    """One export request line as an imported SignalBatch (Rejected when malformed)."""
    return decode_message(signal, parse_json_request(signal, line), imported=True)


# Lines travel to the sink in chunks of one signal, so a running server takes many per call.
CHUNK_BYTES = 4 * 2**20
CHUNK_LINES = 500
# A running server takes a chunk as one body of newline-delimited JSON requests.
NDJSON = "application/x-ndjson"
LineResult = SignalBatch | IngestError
Sink = Callable[[str, list[bytes]], list[LineResult]]


def _chunks(
    path: Path, summary: ImportSummary, advance: Callable[[int], None]
) -> Iterator[tuple[str, list[tuple[int, bytes]]]]:
    """Consecutive request lines of one signal, bounded in count and bytes."""
    chunk: list[tuple[int, bytes]] = []
    chunk_signal, size = "", 0
    for number, signal, line in read_requests(path, summary, advance):
        if chunk and (
            signal != chunk_signal or len(chunk) >= CHUNK_LINES or size + len(line) > CHUNK_BYTES
        ):
            yield chunk_signal, chunk
            chunk, size = [], 0
        chunk.append((number, line))
        chunk_signal, size = signal, size + len(line)
    if chunk:
        yield chunk_signal, chunk


def import_files(
    paths: list[Path], sink: Sink, advance: Callable[[int], None] = lambda _: None
) -> ImportSummary:
    """Send every request line of the files to `sink`; returns what was kept and rejected.

    The sink answers each line of a chunk with its batch, or the error that refused it.
    """
    check_paths(paths)
    summary = ImportSummary()
    for path in paths:
        summary.files += 1
        for signal, chunk in _chunks(path, summary, advance):
            results = sink(signal, [line for _, line in chunk])
            for (number, _), result in zip(chunk, results, strict=True):
                if isinstance(result, IngestError):
                    summary.rejected_lines += 1
                    summary.problem(f"{path.name}:{number}: {result}")
                    continue
                summary.accepted[signal] += result.accepted
                summary.rejected_records += result.rejected
                for reason in result.reasons:
                    summary.problem(f"{path.name}:{number}: {reason}")
    return summary
