"""The write-ahead log: what makes an acknowledgement durable before the store has the data.

Receivers append a SignalBatch and wait; one thread writes every pending record, fsyncs once
(group commit) and only then releases the waiters, who acknowledge. The store records the last
sequence number it committed, so replay after a crash applies each record exactly once.
Format: docs/formats/wal.md.
"""

from __future__ import annotations

import contextlib
import os
import queue
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from stethoscope.errors import Overloaded
from stethoscope.model.batch import SignalBatch
from stethoscope.store.durable import fsync_path

MAGIC = b"STWAL01\n"
INFINITE_SEQ = 1 << 64  # past every sequence number
RECORD_HEADER = struct.Struct("<IIQBI")  # length, crc32, seq, signal, accepted
SIGNAL_CODES = {"traces": 1, "logs": 2, "metrics": 3}
SIGNAL_NAMES = {code: name for name, code in SIGNAL_CODES.items()}
SEGMENT_SUFFIX = ".wal"


@dataclass(frozen=True, kw_only=True)
class WalConfig:
    """Where the log lives and how large a segment grows before the next one starts."""

    directory: Path
    segment_bytes: int = 64 * 1024 * 1024
    max_pending: int = 1024  # appends waiting for the log thread

    def validate(self) -> None:
        if self.segment_bytes < 1024 * 1024:
            raise ValueError("segment_bytes must be at least 1 MiB")
        if self.max_pending < 1:
            raise ValueError("max_pending must be at least 1")


def _segment_path(directory: Path, first_seq: int) -> Path:
    return directory / f"{first_seq:020d}{SEGMENT_SUFFIX}"


def _segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.glob(f"*{SEGMENT_SUFFIX}"):
        try:
            found.append((int(path.stem), path))
        except ValueError:
            continue
    return sorted(found)


def _crc(seq: int, signal: int, accepted: int, payload: bytes | bytearray | memoryview) -> int:
    head = struct.pack("<QBI", seq, signal, accepted)
    return zlib.crc32(payload, zlib.crc32(head))


def read_segment(path: Path) -> tuple[list[tuple[int, SignalBatch]], int]:
    """The intact records of a segment and the byte offset where intact data ends."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        return [], 0
    records = []
    pos = len(MAGIC)
    while pos + RECORD_HEADER.size <= len(data):
        length, crc, seq, signal, accepted = RECORD_HEADER.unpack_from(data, pos)
        start = pos + RECORD_HEADER.size
        payload = memoryview(data)[start : start + length]
        if len(payload) < length or signal not in SIGNAL_NAMES:
            break
        if _crc(seq, signal, accepted, payload) != crc:
            break
        batch = SignalBatch.from_bytes(SIGNAL_NAMES[signal], bytes(payload), accepted=accepted)
        records.append((seq, batch))
        pos = start + length
    return records, pos


class WriteAheadLog:
    """Append-only segments with group-committed fsync; see the module docstring."""

    def __init__(self, config: WalConfig, on_durable: Callable[[int, SignalBatch], None]) -> None:
        """`on_durable(seq, batch)` is called in sequence order once each record is on disk."""
        config.validate()
        self.config = config
        self._on_durable = on_durable
        self.directory = config.directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._pending: queue.Queue[tuple[bytes | bytearray, SignalBatch, Future[int]] | None] = (
            queue.Queue(config.max_pending)
        )
        self._next_seq = 1
        # Until `recover` has read every segment, where the last one ends is not known.
        self._recovered = not _segments(self.directory)
        self._file: object = None
        self._current_path: Path | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def recover(self, applied_seq: int) -> Iterator[tuple[int, SignalBatch]]:
        """Records newer than `applied_seq`, in order; cuts a torn tail left by a crash."""
        last_seq = applied_seq
        for _, path in _segments(self.directory):
            records, intact = read_segment(path)
            if intact < path.stat().st_size:
                # Bytes past the last intact record were never acknowledged: drop them.
                with open(path, "r+b") as handle:
                    handle.truncate(max(intact, len(MAGIC)) if intact else 0)
                    os.fsync(handle.fileno())
            for seq, batch in records:
                last_seq = max(last_seq, seq)
                if seq > applied_seq:
                    yield seq, batch
        self._next_seq = last_seq + 1
        self._recovered = True

    def start(self) -> None:
        """Open a fresh segment and start the log thread (after `recover`)."""
        self._open_segment()
        self._thread = threading.Thread(target=self._run, name="steth-wal", daemon=True)
        self._thread.start()

    def append(self, batch: SignalBatch) -> int:
        """Write the batch durably; returns its sequence number once it is on disk."""
        if self._closed:
            raise Overloaded("collector is shutting down", retry_after=5)
        future: Future[int] = Future()
        payload = batch.to_bytes()
        try:
            self._pending.put((payload, batch, future), timeout=5)
        except queue.Full:
            raise Overloaded("write-ahead log is saturated", retry_after=1) from None
        return future.result()

    def release(self, applied_seq: int) -> None:
        """Delete segments whose records are all committed to the store.

        The segment being written is kept while the log is open; once closed, it goes too.
        """
        segments = _segments(self.directory)
        if not segments:
            return
        # (A replay releases as it commits: the segments it has not read yet must stay.)
        last_end = self._next_seq - 1 if self._recovered else INFINITE_SEQ
        ends = [first - 1 for first, _ in segments[1:]] + [last_end]
        for (_, path), last_seq in zip(segments, ends, strict=True):
            writing = self._file is not None and path == self._current_path
            if last_seq <= applied_seq and not writing:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """Write what is pending, then stop the log thread."""
        self._closed = True
        if self._thread is not None:
            self._pending.put(None)
            self._thread.join()
            self._thread = None
        if self._file is not None:
            self._file.close()  # type: ignore[attr-defined]
            self._file = None

    def _open_segment(self) -> None:
        if self._file is not None:
            self._file.close()  # type: ignore[attr-defined]
        self._current_path = _segment_path(self.directory, self._next_seq)
        handle = open(self._current_path, "ab")  # noqa: SIM115 - owned by this object
        if handle.tell() == 0:
            handle.write(MAGIC)
        self._file = handle
        self._written = handle.tell()
        fsync_path(self.directory)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            group = [self._pending.get()]
            while True:
                try:
                    group.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            items = [item for item in group if item is not None]
            stopping = len(items) < len(group)
            if items:
                self._commit(items)

    def _commit(self, items: list[tuple[bytes | bytearray, SignalBatch, Future[int]]]) -> None:
        seqs = []
        try:
            if self._file is None:  # an earlier failure left no open segment
                self._open_segment()
            handle = self._file
            for payload, batch, _ in items:
                seq = self._next_seq
                self._next_seq += 1
                signal = SIGNAL_CODES[batch.signal]
                crc = _crc(seq, signal, batch.accepted, payload)
                header = RECORD_HEADER.pack(len(payload), crc, seq, signal, batch.accepted)
                handle.write(header)  # type: ignore[attr-defined]
                handle.write(payload)  # type: ignore[attr-defined]
                self._written += len(header) + len(payload)
                seqs.append(seq)
            handle.flush()  # type: ignore[attr-defined]
            os.fdatasync(handle.fileno())  # type: ignore[attr-defined]
        except OSError as error:
            # Retryable: a full or failing disk may recover, and nothing here was acknowledged.
            failure = Overloaded(f"write-ahead log write failed: {error}", retry_after=5)
            for _, _, future in items:
                future.set_exception(failure)
            self._abandon_segment()
            return
        for seq, (_, batch, future) in zip(seqs, items, strict=True):
            self._on_durable(seq, batch)
            future.set_result(seq)
        if self._written >= self.config.segment_bytes:
            self._open_segment()

    def _abandon_segment(self) -> None:
        """After a failed write, continue in a fresh segment: recovery stops at torn bytes."""
        with contextlib.suppress(OSError, AttributeError):
            self._file.close()  # type: ignore[attr-defined]
        self._file = None
        with contextlib.suppress(OSError):
            self._open_segment()
