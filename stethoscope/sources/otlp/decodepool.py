"""Decoding request bodies in worker processes, so that both cores turn protobuf into columns.

Decoding is pure Python per record and holds the GIL; the receivers' threads, the log and the
writer need the main process. The request thread that takes an idle worker hands it the body
and reads the answer itself (`sources/pipeworker.py`). A worker returns the batch as Arrow IPC
bytes, which the main process maps without copying and writes to the log as they are.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from stethoscope.errors import IngestError, Overloaded, Rejected
from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp.codec import decode_request, decompress
from stethoscope.sources.pipeworker import (
    STOP_WAIT_S,
    Handler,
    PipeWorker,
    WorkerFailed,
    WorkerLost,
)

log = logging.getLogger(__name__)


def decode_body(
    signal: str,
    body: bytes,
    content_type: str,
    content_encoding: str,
    max_body_bytes: int,
    imported: bool,
) -> SignalBatch:
    """A raw request body (maybe compressed) into a SignalBatch; Rejected when malformed.

    An empty protobuf body is a valid empty request (as in the Collector); empty JSON is not.
    """
    data = decompress(body, content_encoding, max_size=max_body_bytes)
    return decode_request(signal, data, content_type, imported=imported)


def _decode_answer(options: tuple[Any, ...], body: bytes) -> tuple[tuple[Any, ...], bytes | None]:
    """In a worker: a request's batch as IPC bytes, or why it was refused."""
    try:
        batch = decode_body(options[0], body, *options[1:])
    except IngestError as error:
        return ("error", error.status, str(error)), None
    return ("ok", batch.signal, batch.accepted, batch.rejected, batch.reasons), batch.to_bytes()


def _decoder() -> Handler:
    return _decode_answer


class DecodePool:
    """`workers` decode processes, started as requests need them; 0 decodes in the calling
    thread."""

    def __init__(self, workers: int) -> None:
        if workers < 0:
            raise ValueError("decode workers must be 0 or more")
        self._workers = workers
        self._cond = threading.Condition()
        self._idle: list[PipeWorker] = []
        self._started = 0  # workers started and not lost, idle or busy
        self._closed = False

    def decode(
        self,
        signal: str,
        body: bytes,
        *,
        content_type: str,
        content_encoding: str = "",
        max_body_bytes: int,
        imported: bool = False,
    ) -> SignalBatch:
        """Decode one request body, in a worker when there are workers."""
        options = (signal, content_type, content_encoding, max_body_bytes, imported)
        if not self._workers:
            return decode_body(signal, body, *options[1:])
        worker = self._take()
        try:
            answer, data = worker.call(options, body)
        except WorkerFailed:
            self._give(worker)
            raise
        except BaseException as error:
            # Its pipes may hold half a message: this worker goes, the next request starts
            # a new one, and this one is answered "retry" when the worker died under it.
            self._lose(worker)
            if isinstance(error, WorkerLost):
                raise Overloaded(f"decoder restarted: {error}", retry_after=1) from None
            raise
        self._give(worker)
        if answer[0] == "error":
            raise Rejected(answer[2], status=answer[1])
        assert data is not None
        _, name, accepted, rejected, reasons = answer
        batch = SignalBatch.from_bytes(name, data, accepted=accepted)
        batch.rejected, batch.reasons = rejected, reasons
        return batch

    def _take(self) -> PipeWorker:
        """An idle worker, a new one while fewer than `workers` run, or the next one freed."""
        with self._cond:
            while not self._idle and self._started >= self._workers and not self._closed:
                self._cond.wait()
            if self._closed:
                raise Overloaded("decoder unavailable: the server is stopping", retry_after=5)
            if self._idle:
                return self._idle.pop()
            self._started += 1
        try:
            return PipeWorker("steth-decode", _decoder)
        except BaseException:
            with self._cond:
                self._started -= 1
                self._cond.notify()
            raise

    def _give(self, worker: PipeWorker) -> None:
        with self._cond:
            if not self._closed:
                self._idle.append(worker)
                self._cond.notify()
                return
            self._started -= 1
            self._cond.notify_all()
        worker.stop()

    def _lose(self, worker: PipeWorker) -> None:
        log.warning("decode worker %s stopped; a new one takes the next request", worker.pid)
        worker.stop()
        with self._cond:
            self._started -= 1
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the workers, once the requests they are decoding are answered."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            idle, self._idle = self._idle, []
            self._started -= len(idle)
        for worker in idle:
            worker.stop()
        with self._cond:
            self._cond.wait_for(lambda: self._started == 0, timeout=STOP_WAIT_S)
