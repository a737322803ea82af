"""Decoding request bodies in worker processes, so that both cores turn protobuf into columns.

Decoding is pure Python per record and holds the GIL; the receivers' threads, the log and the
writer need the main process. A worker returns the batch as Arrow IPC bytes, which the main
process maps without copying and writes to the log as they are.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import psutil

from stethoscope.errors import IngestError, Overloaded, Rejected
from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp.codec import decode_request, decompress

log = logging.getLogger(__name__)

# A message larger than its pipe's buffer (64 KiB by default on Linux) crosses in pieces, the
# writer waiting for the reader after each: a 300 KiB decoded batch took five hand-offs, each
# needing the main process's GIL on the reading side. 1 MiB is Linux's default ceiling for an
# unprivileged process (/proc/sys/fs/pipe-max-size).
PIPE_BYTES = 1 << 20


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


def _decode_in_worker(*args: Any) -> tuple[Any, ...]:
    # Exceptions cross the process boundary as plain tuples: ours carry keyword state.
    try:
        batch = decode_body(*args)
    except IngestError as error:
        return ("error", error.status, str(error))
    return ("ok", batch.signal, batch.to_bytes(), batch.accepted, batch.rejected, batch.reasons)


def leave_with_server(server_pid: int) -> None:
    """Worker initializer: exit once the server is gone (killed -9) instead of lingering.

    A pool worker never notices its server die: it holds its own queue's write end, and the
    forkserver, holding on while workers live, keeps running too.
    """
    server = psutil.Process(server_pid)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                gone = not server.is_running() or server.status() == psutil.STATUS_ZOMBIE
            except psutil.Error:
                gone = True
            if gone:
                os._exit(0)

    threading.Thread(target=watch, name="steth-decode-watch", daemon=True).start()


def worker_pool(
    workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
) -> ProcessPoolExecutor:
    """A pool of `workers` processes whose pipes take a request body or a batch in one write."""
    # forkserver: the server has threads by the time a worker may be replaced.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=initializer,
        initargs=initargs,
    )
    _widen_pipes(pool)
    return pool


def _widen_pipes(pool: ProcessPoolExecutor) -> None:
    # The executor keeps its two pipes private: where they are not found (another Python, no
    # F_SETPIPE_SZ outside Linux) or may not grow (the user's pipe memory is used up), the
    # pool works as it is, with more hand-offs.
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    for queue in ("_call_queue", "_result_queue"):
        reader = getattr(getattr(pool, queue, None), "_reader", None)
        if set_size is None or reader is None:
            log.debug("the pool's %s keeps its default pipe size", queue)
            continue
        try:
            fcntl.fcntl(reader.fileno(), set_size, PIPE_BYTES)
        except OSError as error:
            log.debug("the pool's %s keeps its default pipe size: %s", queue, error)


class DecodePool:
    """`workers` decode processes; 0 decodes in the calling thread."""

    def __init__(self, workers: int) -> None:
        if workers < 0:
            raise ValueError("decode workers must be 0 or more")
        self._workers = workers
        self._lock = threading.Lock()
        self._closed = False
        self._pool = self._new_pool() if workers else None

    def _new_pool(self) -> ProcessPoolExecutor:
        return worker_pool(self._workers, leave_with_server, (os.getpid(),))

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
        args = (signal, body, content_type, content_encoding, max_body_bytes, imported)
        pool = self._pool
        if pool is None:
            return decode_body(*args)
        try:
            result = pool.submit(_decode_in_worker, *args).result()
        except BrokenProcessPool as error:
            # A worker died (killed, out of memory) and took the pool with it: replace the pool
            # for the requests to come; this one is answered "retry".
            self._replace(pool)
            raise Overloaded(f"decoder restarted: {error}", retry_after=1) from None
        except RuntimeError as error:  # pool shut down
            raise Overloaded(f"decoder unavailable: {error}", retry_after=5) from None
        if result[0] == "error":
            raise Rejected(result[2], status=result[1])
        _, name, data, accepted, rejected, reasons = result
        batch = SignalBatch.from_bytes(name, data, accepted=accepted)
        batch.rejected, batch.reasons = rejected, reasons
        return batch

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken and not self._closed:
                self._pool = self._new_pool()
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers."""
        with self._lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
