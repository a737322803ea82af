"""Worker pools: their pipes take a whole decoded batch in one write."""

from __future__ import annotations

import fcntl
import os

import pytest

from stethoscope.sources.otlp.decodepool import PIPE_BYTES, worker_pool


def _nothing() -> None:
    """A worker initializer that does nothing."""


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_worker_pipes_take_a_whole_batch() -> None:
    # The pipes are the executor's private attributes: this fails if a Python release moves
    # them, where the pool would otherwise go on quietly at a tenth of the hand-off size.
    pool = worker_pool(1, _nothing, ())
    try:
        assert pool.submit(os.getpid).result() != os.getpid()
        for queue in (pool._call_queue, pool._result_queue):  # type: ignore[attr-defined]
            assert fcntl.fcntl(queue._reader.fileno(), fcntl.F_GETPIPE_SZ) >= PIPE_BYTES
    finally:
        pool.shutdown()
