"""Decoding request bodies in worker processes, so that both cores turn protobuf into columns.

Decoding is pure Python per record and holds the GIL; the receivers' threads, the log and the
writer need the main process. A request waits in line for a worker; the request thread that
finds a worker idle takes it, with the requests waiting behind it that can be decoded with its
own (same signal, protobuf, same consumer: `grouped.py`, at most `GROUP_REQUESTS` and
`GROUP_BYTES` of bodies), hands it the bodies and reads the answer itself
(`sources/pipeworker.py`). A thread waiting in line is woken only when a worker is free and it
is first, or when the group it joined is answered. A worker returns batches as Arrow IPC
bytes, which the main process maps without copying and writes to the log as they are.

A group decoded as one is one batch: the thread that took the worker hands it to the consumer
once (one write-ahead log record and fsync), and each request of the group is answered when
that returns, or fails with what it raised. Requests decoded alone are handed over by their own
threads.

The workers run at a lower priority than the server (`DECODE_NICENESS`): the writer is the one
thread every record passes through in turn, and at equal priority the workers took the cores
from it while it sealed a segment; its queue reached its bound, senders were told to come back
in a second, and the cores went idle meanwhile. A decode that waits only delays its own
request's answer.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stethoscope.errors import IngestError, Overloaded, Rejected
from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp.codec import PROTOBUF, media_type
from stethoscope.sources.otlp.grouped import GROUPED_SIGNALS, decode_together
from stethoscope.sources.pipeworker import (
    STOP_WAIT_S,
    Handler,
    PipeWorker,
    WorkerFailed,
    WorkerLost,
)

__all__ = ["DECODE_NICENESS", "GROUP_BYTES", "GROUP_REQUESTS", "Consumer", "DecodePool"]

log = logging.getLogger(__name__)

# What a decoded batch is handed to; it returns once the batch is durable (the pipeline).
Consumer = Callable[[SignalBatch], object]

# Measured with `benchmarks/ingest.py` (8 senders, 2 workers): see the CHANGELOG.
GROUP_REQUESTS = 4
GROUP_BYTES = 8 << 20
# Added to the workers' nice value. `benchmarks/ingest.py`, alternated runs (2026-11-27): at
# equal priority 7 of 10 span phases (2M spans, the 10M build) had 8-40 requests told to retry
# and the worst phase's peak PSS was 867-965 MiB; at +5 or +10 1 of 14 (8), and 671-871 MiB.
# The 10M build 73-87k spans/s at equal priority, 74-94k at +5; but 2M spans 66-105k against
# 73-86k: the two fastest runs at equal priority, told nothing, beat every run at +5. Log
# records, never told to retry: 108-169k and 119-166k (+5 ahead in 6 of 12 pairs).
DECODE_NICENESS = 5


def _decode_answer(
    header: tuple[Any, ...], payload: bytearray
) -> tuple[tuple[Any, ...], bytes | bytearray]:
    """In a worker: the group's batches as IPC bytes, and each request's outcome."""
    signal, content_type, max_body_bytes, imported, parts = header
    bodies, start = [], 0
    for encoding, size in parts:
        # One request is the payload itself (a slice of it would be a copy).
        bodies.append((payload if len(parts) == 1 else payload[start : start + size], encoding))
        start += size
    decoded = decode_together(
        signal, bodies, content_type=content_type, max_body_bytes=max_body_bytes, imported=imported
    )
    outcomes: list[tuple[Any, ...]] = []
    data: list[bytes | bytearray] = []
    for item in decoded.each:
        if isinstance(item, IngestError):
            outcomes.append(("error", item.status, str(item)))
            continue
        encoded = item.to_bytes() if decoded.merged is None else b""
        data.append(encoded)
        outcomes.append(("ok", item.accepted, item.rejected, item.reasons, len(encoded)))
    if decoded.merged is not None:
        return ("merged", signal, decoded.merged.accepted, outcomes), decoded.merged.to_bytes()
    return ("each", signal, 0, outcomes), b"".join(data)


def _decoder() -> Handler:
    return _decode_answer


@dataclass(eq=False)
class _Request:
    """A request waiting for a worker, then its answer."""

    signal: str
    body: bytes
    content_type: str
    content_encoding: str
    max_body_bytes: int
    imported: bool
    consumer: Consumer
    wake: threading.Condition  # on the pool's lock; the request's thread waits on it
    done: bool = False
    batch: SignalBatch | None = None
    error: BaseException | None = None
    consumed: bool = False  # whether its records reached the consumer with its group's
    key: tuple[Any, ...] | None = field(init=False)

    def __post_init__(self) -> None:
        groupable = self.signal in GROUPED_SIGNALS and media_type(self.content_type) == PROTOBUF
        self.key = (self.signal, self.max_body_bytes, self.imported) if groupable else None

    def joins(self, other: _Request) -> bool:
        """Whether `other` may be decoded together with this request."""
        return self.key is not None and other.key == self.key and other.consumer == self.consumer

    def answer(self) -> SignalBatch:
        if self.error is not None:
            raise self.error
        assert self.batch is not None
        return self.batch


class DecodePool:
    """`workers` decode processes, started as requests need them; 0 decodes in the calling
    thread."""

    def __init__(self, workers: int) -> None:
        if workers < 0:
            raise ValueError("decode workers must be 0 or more")
        self._workers = workers
        # A waiting request's thread is woken alone: when its group is answered, or when it is
        # first in line and a worker is free. All of them woken at each change cost each of 8
        # request threads ~345 wakeups a second under benchmark spans (now ~190).
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # how many workers run (close waits)
        self._idle: list[PipeWorker] = []
        self._started = 0  # workers started and not lost, idle or busy
        self._waiting: deque[_Request] = deque()
        self._closed = False

    def ingest(
        self,
        consumer: Consumer,
        signal: str,
        body: bytes,
        *,
        content_type: str,
        content_encoding: str = "",
        max_body_bytes: int,
        imported: bool = False,
    ) -> SignalBatch:
        """Decode a request and hand what it kept to `consumer`; the batch tells what was kept
        (a batch decoded with others has no tables of its own). Rejected when malformed; an
        empty protobuf body is a valid empty request (as in the Collector)."""
        request = _Request(
            signal,
            body,
            content_type,
            content_encoding,
            max_body_bytes,
            imported,
            consumer,
            threading.Condition(self._lock),
        )
        batch = self._decoded(request)
        if batch.accepted and not request.consumed:
            consumer(batch)
        return batch

    def _decoded(self, request: _Request) -> SignalBatch:
        if not self._workers:
            batch = decode_together(
                request.signal,
                [(request.body, request.content_encoding)],
                content_type=request.content_type,
                max_body_bytes=request.max_body_bytes,
                imported=request.imported,
            ).each[0]
            if isinstance(batch, IngestError):
                raise batch
            return batch
        taken = self._wait_for_worker(request)
        if taken is not None:
            worker, group = taken
            try:
                self._run(worker, group)
            except BaseException as error:
                for member in group:
                    if member.batch is None and member.error is None:
                        member.error = error
            finally:
                with self._lock:
                    for member in group:
                        member.done = True
                        member.wake.notify()
        return request.answer()

    def _wait_for_worker(
        self, request: _Request
    ) -> tuple[PipeWorker | None, list[_Request]] | None:
        """A worker (None: start one) and the group it decodes, when this thread is to run
        them; None once another thread ran the group `request` joined."""
        with self._lock:
            self._waiting.append(request)
            while not request.done:
                if request in self._waiting:
                    if self._closed:
                        self._waiting.remove(request)
                        raise Overloaded(
                            "decoder unavailable: the server is stopping", retry_after=5
                        )
                    if self._idle or self._started < self._workers:
                        break
                request.wake.wait()
            else:
                return None
            group = self._group(request)
            if self._idle:
                worker: PipeWorker | None = self._idle.pop()
            else:
                worker = None
                self._started += 1
            self._wake_first()  # another worker may be free for the next in line
        return worker, group

    def _wake_first(self) -> None:
        """Wake the first request in line if a worker is free for it (the lock held)."""
        if self._waiting and (self._idle or self._started < self._workers):
            self._waiting[0].wake.notify()

    def _group(self, request: _Request) -> list[_Request]:
        """`request` and the waiting requests it can be decoded with, out of the line."""
        group, size = [request], len(request.body)
        for other in self._waiting:
            if len(group) == GROUP_REQUESTS:
                break
            fits = size + len(other.body) <= GROUP_BYTES
            if other is not request and request.joins(other) and fits:
                group.append(other)
                size += len(other.body)
        for member in group:
            self._waiting.remove(member)
        return group

    def _run(self, worker: PipeWorker | None, group: list[_Request]) -> None:
        """Decode the group in `worker` (None: a new one) and answer each of its requests."""
        if worker is None:
            worker = self._start_worker()
        first = group[0]
        header = (
            first.signal,
            first.content_type,
            first.max_body_bytes,
            first.imported,
            [(member.content_encoding, len(member.body)) for member in group],
        )
        payload = first.body if len(group) == 1 else b"".join(member.body for member in group)
        try:
            answer, data = worker.call(header, payload)
        except WorkerFailed:
            self._give(worker)
            raise
        except BaseException as error:
            # Its pipes may hold half a message: this worker goes, the next request starts
            # a new one, and these are answered "retry" when the worker died under them.
            self._lose(worker)
            if isinstance(error, WorkerLost):
                raise Overloaded(f"decoder restarted: {error}", retry_after=1) from None
            raise
        self._give(worker)
        assert data is not None
        kind, signal, accepted, outcomes = answer
        for member, outcome in zip(group, outcomes, strict=True):
            if outcome[0] == "error":
                member.error = Rejected(outcome[2], status=outcome[1])
        if kind == "merged":
            merged = SignalBatch.from_bytes(signal, data, accepted=accepted)
            if merged.accepted:
                first.consumer(merged)  # what it raises, every request kept raises
        start = 0
        for member, outcome in zip(group, outcomes, strict=True):
            if outcome[0] == "error":
                continue
            _, kept, rejected, reasons, size = outcome
            if kind == "merged":
                member.batch, member.consumed = SignalBatch(signal, accepted=kept), True
            else:
                own = data if len(group) == 1 else data[start : start + size]
                member.batch = SignalBatch.from_bytes(signal, own, accepted=kept)
                start += size
            member.batch.rejected, member.batch.reasons = rejected, reasons

    def _start_worker(self) -> PipeWorker:
        try:
            return PipeWorker("steth-decode", _decoder, niceness=DECODE_NICENESS)
        except BaseException:
            with self._lock:
                self._started -= 1
                self._cond.notify_all()
                self._wake_first()
            raise

    def _give(self, worker: PipeWorker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                self._wake_first()
                return
            self._started -= 1
            self._cond.notify_all()
        worker.stop()

    def _lose(self, worker: PipeWorker) -> None:
        log.warning("decode worker %s stopped; a new one takes the next request", worker.pid)
        worker.stop()
        with self._lock:
            self._started -= 1
            self._cond.notify_all()
            self._wake_first()

    def close(self) -> None:
        """Stop the workers, once the requests they are decoding are answered; refuse the
        requests still waiting for one."""
        with self._lock:
            self._closed = True
            for request in self._waiting:
                request.wake.notify()
            idle, self._idle = self._idle, []
            self._started -= len(idle)
        for worker in idle:
            worker.stop()
        with self._cond:
            self._cond.wait_for(lambda: self._started == 0, timeout=STOP_WAIT_S)
