"""Decoding request bodies in worker processes, so that both cores turn protobuf into columns.

Decoding is pure Python per record and holds the GIL; the receivers' threads, the log and the
writer need the main process. Each worker has a pipe of its own each way, and the request
thread that takes an idle worker writes the body to it and reads the answer back itself: no
pickled body, no other thread. Through `ProcessPoolExecutor` every request also woke its
queue's feeder thread and its result thread and pickled the body and the batch: 350-400 us of
the main process's CPU a request against 160 (a 242 KB body in, 293 KB out, 8 threads, 2
workers). A worker returns the batch as Arrow IPC bytes, which the main process maps without
copying and writes to the log as they are.

A worker leaves when the server closes its end of the pipes: when the server stops, and when it
is killed, since no other process holds them.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from stethoscope.errors import IngestError, Overloaded, Rejected
from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp.codec import decode_request, decompress

log = logging.getLogger(__name__)

# A message larger than its pipe's buffer (64 KiB by default on Linux) crosses in pieces, the
# writer waiting for the reader after each: a 300 KiB decoded batch took five hand-offs, each
# needing the main process's GIL on the reading side. 1 MiB is Linux's default ceiling for an
# unprivileged process (/proc/sys/fs/pipe-max-size).
PIPE_BYTES = 1 << 20
STOP_WAIT_S = 10.0


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


def widen_pipe(connection: Connection) -> None:
    """Let the pipe under `connection` take PIPE_BYTES at once, where the system allows it."""
    # Where it may not (no F_SETPIPE_SZ outside Linux, the user's pipe memory used up), the pipe
    # works as it is, with more hand-offs.
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    try:
        fcntl.fcntl(connection.fileno(), set_size, PIPE_BYTES)
    except OSError as error:
        log.debug("a decode pipe keeps its default size: %s", error)


def _serve(requests: Connection, answers: Connection) -> None:
    """A worker process: answer each request until the server closes its end."""
    # Ctrl-C reaches the whole process group; the server decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            options = requests.recv()
            body = requests.recv_bytes()
        except EOFError:
            return
        try:
            batch = decode_body(options[0], body, *options[1:])
        except IngestError as error:
            answer: tuple[Any, ...] = ("error", error.status, str(error))
            data = None
        except Exception as error:  # a bug: the request fails, the worker goes on
            log.exception("decoding failed")
            answer, data = ("failed", f"{type(error).__name__}: {error}"), None
        else:
            answer = ("ok", batch.signal, batch.accepted, batch.rejected, batch.reasons)
            data = batch.to_bytes()
        del body
        try:
            answers.send(answer)
            if data is not None:
                answers.send_bytes(data)
        except OSError:  # the server is gone
            return


class _WorkerLost(Exception):
    """The worker process died (killed, out of memory) with a request in hand."""


class _Worker:
    """One decode process and the server's ends of its two pipes."""

    def __init__(self, context: Any) -> None:
        their_requests, self._requests = context.Pipe(duplex=False)
        self._answers, their_answers = context.Pipe(duplex=False)
        widen_pipe(their_requests)
        widen_pipe(self._answers)
        self.process = context.Process(
            target=_serve, args=(their_requests, their_answers), name="steth-decode", daemon=True
        )
        self.process.start()
        # Only the worker holds its ends now: each side sees the other's end close.
        their_requests.close()
        their_answers.close()

    @property
    def pid(self) -> int | None:
        """The worker's process id."""
        return self.process.pid

    def call(self, options: tuple[Any, ...], body: bytes) -> tuple[tuple[Any, ...], bytes | None]:
        """The worker's answer to one request, and the batch's bytes when it decoded one."""
        try:
            self._requests.send(options)
            self._requests.send_bytes(body)
            answer = self._answers.recv()
            data = self._answers.recv_bytes() if answer[0] == "ok" else None
        except (EOFError, OSError) as error:
            raise _WorkerLost(f"decode worker {self.pid} stopped: {error!r}") from None
        return answer, data

    def stop(self) -> None:
        """Close the pipes (the worker then leaves) and wait for it, killing it if it lingers."""
        self._requests.close()
        self._answers.close()
        self.process.join(STOP_WAIT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class DecodePool:
    """`workers` decode processes, started as requests need them; 0 decodes in the calling
    thread."""

    def __init__(self, workers: int) -> None:
        if workers < 0:
            raise ValueError("decode workers must be 0 or more")
        self._workers = workers
        # forkserver: the server has threads by the time a worker starts.
        self._context = multiprocessing.get_context("forkserver")
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
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
        except BaseException as error:
            # Its pipes may hold half a message: this worker goes, the next request starts
            # a new one, and this one is answered "retry" when the worker died under it.
            self._lose(worker)
            if isinstance(error, _WorkerLost):
                raise Overloaded(f"decoder restarted: {error}", retry_after=1) from None
            raise
        self._give(worker)
        if answer[0] == "error":
            raise Rejected(answer[2], status=answer[1])
        if answer[0] == "failed":
            raise RuntimeError(f"decoding failed in a worker: {answer[1]}")
        assert data is not None
        _, name, accepted, rejected, reasons = answer
        batch = SignalBatch.from_bytes(name, data, accepted=accepted)
        batch.rejected, batch.reasons = rejected, reasons
        return batch

    def _take(self) -> _Worker:
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
            return _Worker(self._context)
        except BaseException:
            with self._cond:
                self._started -= 1
                self._cond.notify()
            raise

    def _give(self, worker: _Worker) -> None:
        with self._cond:
            if not self._closed:
                self._idle.append(worker)
                self._cond.notify()
                return
            self._started -= 1
            self._cond.notify_all()
        worker.stop()

    def _lose(self, worker: _Worker) -> None:
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
