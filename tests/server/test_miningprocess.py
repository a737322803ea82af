"""Log mining in its own process: same answers as in-process mining, and it survives a kill."""

from __future__ import annotations

import fcntl
import os
import signal
from pathlib import Path

import pytest

from stethoscope.server import miningprocess
from stethoscope.server.miningprocess import MINING_CHUNK_ROWS, MiningProcess, worker_pool
from stethoscope.server.templating import LogTemplater, LogTemplaterConfig
from stethoscope.sources.otlp.decodepool import PIPE_BYTES
from stethoscope.store.base import LogQuery, TemplateQuery
from tests.server.test_templating import (
    GENERALISED,
    T0,
    by_body,
    logs_batch,
    make_pipeline,
    written,
)

LINES = [
    "Connection to 10.0.0.5:5432 timed out after 30s",
    "user alice logged in from 10.1.2.3",
    "Connection to 10.0.0.9:5432 timed out after 12s",
    *GENERALISED,
    "cache warmed",
]


@pytest.mark.parametrize("chunk_rows", [MINING_CHUNK_ROWS, 3], ids=["one chunk", "many chunks"])
def test_the_process_mines_as_the_thread_does(
    chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(miningprocess, "MINING_CHUNK_ROWS", chunk_rows)
    batches = [logs_batch("a", LINES), logs_batch("b", LINES[::-1])]
    in_thread = LogTemplater()
    here, touched_here = in_thread.annotate(batches)
    process = MiningProcess(LogTemplaterConfig(), list)
    try:
        there, touched_there = process.annotate(batches)
        assert process.stats() == in_thread.stats()
    finally:
        process.close()
    assert [b.tables.keys() for b in there] == [b.tables.keys() for b in here]
    assert there[-1].tables["logs"].equals(here[-1].tables["logs"])
    assert sorted(touched_there, key=repr) == sorted(touched_here, key=repr)


def test_a_killed_mining_process_is_restarted_from_the_store(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    written(pipeline, logs_batch("svc", GENERALISED[:2]))
    before = by_body(pipeline.store, "svc")[GENERALISED[0]]["template_id"]
    assert isinstance(pipeline.templater, MiningProcess)
    # The pool's one worker: killed as the kernel's OOM killer would.
    [pid] = list(pipeline.templater._pool._processes)
    os.kill(pid, signal.SIGKILL)

    written(pipeline, logs_batch("svc", GENERALISED[2:], start_ns=T0 + 10**9))
    assert pipeline.stats.pending_bytes == 0  # the group was mined again and written
    assert list(pipeline.templater._pool._processes) != [pid]
    after = by_body(pipeline.store, "svc")[GENERALISED[2]]["template_id"]
    assert after == before
    assert pipeline.templater.stats().templates == 1
    assert len(pipeline.store.logs(LogQuery(service="svc"))) == 3
    assert len(pipeline.store.templates(TemplateQuery(service="svc"))) == 1
    pipeline.close()


def _nothing() -> None:
    """A worker initializer that does nothing."""


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_the_mining_pipes_take_a_whole_chunk() -> None:
    # The pipes are the executor's private attributes: this fails if a Python release moves
    # them, where the pool would otherwise go on quietly at a tenth of the hand-off size.
    pool = worker_pool(1, _nothing, ())
    try:
        assert pool.submit(os.getpid).result() != os.getpid()
        for queue in (pool._call_queue, pool._result_queue):  # type: ignore[attr-defined]
            assert fcntl.fcntl(queue._reader.fileno(), fcntl.F_GETPIPE_SZ) >= PIPE_BYTES
    finally:
        pool.shutdown()
