"""Decoding request bodies in worker processes, so that both cores turn protobuf into columns.

Decoding is pure Python per record and holds the GIL; the receivers' threads, the log and the
writer need the main process. A worker returns the batch as Arrow IPC bytes, which the main
process maps without copying and writes to the log as they are.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import psutil

from stethoscope.errors import IngestError, Overloaded, Rejected
from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp.codec import decode_request, decompress


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
        # forkserver: the server has threads by the time a worker may be replaced.
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(
            self._workers,
            mp_context=context,
            initializer=leave_with_server,
            initargs=(os.getpid(),),
        )

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
