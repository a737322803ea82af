"""Decoding request bodies in worker processes, so that both cores turn protobuf into columns.

Decoding is pure Python per record and holds the GIL; the receivers' threads, the log and the
writer need the main process. A worker returns the batch as Arrow IPC bytes, which the main
process maps without copying and writes to the log as they are.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

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


class DecodePool:
    """`workers` decode processes; 0 decodes in the calling thread."""

    def __init__(self, workers: int) -> None:
        if workers < 0:
            raise ValueError("decode workers must be 0 or more")
        self._pool: ProcessPoolExecutor | None = None
        if workers:
            # forkserver: the server has threads by the time a worker may be replaced.
            context = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(workers, mp_context=context)

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
        if self._pool is None:
            return decode_body(*args)
        try:
            result = self._pool.submit(_decode_in_worker, *args).result()
        except RuntimeError as error:  # pool shut down or broken
            raise Overloaded(f"decoder unavailable: {error}", retry_after=5) from None
        if result[0] == "error":
            raise Rejected(result[2], status=result[1])
        _, name, data, accepted, rejected, reasons = result
        batch = SignalBatch.from_bytes(name, data, accepted=accepted)
        batch.rejected, batch.reasons = rejected, reasons
        return batch

    def close(self) -> None:
        """Stop the workers."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
