"""A child process that answers one call at a time over two pipes of its own.

The server hands work to other processes (decoding, log mining) a request at a time, and the
calling thread both writes the call and reads the answer: no pickled payload, no queue feeder
or result thread as with `ProcessPoolExecutor` (350-400 us of the caller's CPU a call against
160 for a 242 KB body in and 293 KB out, 8 threads, 2 workers). A call is a small pickled
header and a bytes payload; an answer is a small pickled value and, when there is one, bytes.

The bytes are written to the pipe as they are and read straight into one buffer of their size
(`_read_exactly`): `Connection.recv_bytes` reads a message larger than the pipe by asking for
the whole remainder each time (allocating that much, then shrinking it) and gathers the pieces
in a BytesIO. Receiving 2 MiB messages that way took 2.6 ms of the receiver's CPU and ~1,100
page faults each, against 0.8 ms and 9 (1 MiB: the same, ~0.5 ms); a mining chunk is 1-2 MiB
and a group of decoded requests up to ~1.3 MiB.

The worker leaves when the caller's end of the pipes closes: when the caller stops it, and when
the caller is killed, since no other process holds them.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["PIPE_BYTES", "STOP_WAIT_S", "PipeWorker", "WorkerFailed", "WorkerLost", "widen_pipe"]

log = logging.getLogger(__name__)

# A message larger than its pipe's buffer (64 KiB by default on Linux) crosses in pieces, the
# writer waiting for the reader after each: a 300 KiB decoded batch took five hand-offs, each
# needing the main process's GIL on the reading side. 1 MiB is Linux's default ceiling for an
# unprivileged process (/proc/sys/fs/pipe-max-size).
PIPE_BYTES = 1 << 20
STOP_WAIT_S = 10.0

# What a worker runs: built once in the worker from picklable arguments, then called with each
# call's header and payload; it returns the answer and the bytes that follow it (or None).
Handler = Callable[[Any, bytearray], tuple[Any, bytes | bytearray | None]]


class WorkerLost(Exception):
    """The worker process died (killed, out of memory) with a call in hand."""


class WorkerFailed(Exception):
    """The handler raised in the worker (a bug): the call fails, the worker goes on."""


def widen_pipe(fd: int) -> None:
    """Let the pipe `fd` is an end of take PIPE_BYTES at once, where the system allows it."""
    # Where it may not (no F_SETPIPE_SZ outside Linux, the user's pipe memory used up), the pipe
    # works as it is, with more hand-offs.
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    try:
        fcntl.fcntl(fd, set_size, PIPE_BYTES)
    except OSError as error:
        log.debug("a pipe keeps its default size: %s", error)


def _write_all(connection: Connection, data: bytes | bytearray) -> None:
    """Write `data` to the pipe as it is (no copy, no framing: its size went ahead)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(connection.fileno(), view) :]


def _read_exactly(connection: Connection, size: int) -> bytearray:
    """The next `size` bytes of the pipe, read into one buffer; EOFError if it closes first."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = os.readv(connection.fileno(), [view[got:]])
        if not count:
            raise EOFError("the pipe closed mid-message")
        got += count
    return buffer


def _serve(
    calls: Connection,
    answers: Connection,
    make_handler: Callable[..., Handler],
    arguments: tuple[Any, ...],
    niceness: int,
) -> None:
    """The worker process: answer each call until the caller closes its end."""
    # Ctrl-C reaches the whole process group; the caller decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness:
        os.nice(niceness)
    handler = make_handler(*arguments)
    while True:
        try:
            header, size = calls.recv()
            payload = _read_exactly(calls, size)
        except EOFError:
            return
        try:
            answer, data = handler(header, payload)
            reply: tuple[str, Any, int | None] = ("ok", answer, None if data is None else len(data))
        except Exception as error:
            log.exception("a worker's call failed")
            reply, data = ("failed", f"{type(error).__name__}: {error}", None), None
        del payload
        try:
            answers.send(reply)
            if data is not None:
                _write_all(answers, data)
        except OSError:  # the caller is gone
            return
        del data


class PipeWorker:
    """One worker process and the caller's ends of its two pipes; one call at a time."""

    def __init__(
        self,
        name: str,
        make_handler: Callable[..., Handler],
        arguments: tuple[Any, ...] = (),
        *,
        niceness: int = 0,
    ) -> None:
        """Start the worker; `make_handler(*arguments)` runs there (both picklable).

        `niceness` is added to the worker's nice value: the scheduler then gives the caller's
        threads the CPU first when both want it.
        """
        # forkserver: the caller has threads by the time a worker starts.
        context = multiprocessing.get_context("forkserver")
        their_calls, self._calls = context.Pipe(duplex=False)
        self._answers, their_answers = context.Pipe(duplex=False)
        widen_pipe(their_calls.fileno())
        widen_pipe(self._answers.fileno())
        self.process = context.Process(
            target=_serve,
            args=(their_calls, their_answers, make_handler, arguments, niceness),
            name=name,
            daemon=True,
        )
        self.process.start()
        # Only the worker holds its ends now: each side sees the other's end close.
        their_calls.close()
        their_answers.close()

    @property
    def pid(self) -> int | None:
        """The worker's process id."""
        return self.process.pid

    def call(self, header: Any, payload: bytes = b"") -> tuple[Any, bytearray | None]:
        """The handler's answer to one call and the bytes that came with it.

        WorkerLost when the worker died; WorkerFailed when the handler raised.
        """
        try:
            self._calls.send((header, len(payload)))
            _write_all(self._calls, payload)
            status, answer, size = self._answers.recv()
            data = None if size is None else _read_exactly(self._answers, size)
        except (EOFError, OSError) as error:
            raise WorkerLost(f"worker {self.pid} stopped: {error!r}") from None
        if status == "failed":
            raise WorkerFailed(f"worker {self.pid}: {answer}")
        return answer, data

    def stop(self) -> None:
        """Close the pipes (the worker then leaves) and wait for it, killing it if it lingers."""
        self._calls.close()
        self._answers.close()
        self.process.join(STOP_WAIT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
