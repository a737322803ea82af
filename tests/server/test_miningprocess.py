"""Log mining in its own process: same answers as in-process mining, and it survives a kill."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from stethoscope.server import miningprocess
from stethoscope.server.miningprocess import MINING_CHUNK_ROWS, MiningProcess
from stethoscope.server.templating import LogTemplater, LogTemplaterConfig
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
    "   ",  # blank: masked by no one, the mining process reads its body
    "",
    "worker 7 failed\n  at frame 1\n  at frame 2",  # an example is its first line
    12,
]


@pytest.mark.parametrize("chunk_rows", [MINING_CHUNK_ROWS, 3], ids=["one chunk", "many chunks"])
@pytest.mark.parametrize("max_line_chars", [1_024, 20], ids=["decoder's mask", "own mask"])
def test_the_process_mines_as_the_thread_does(
    chunk_rows: int, max_line_chars: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same ids, templates and examples, though the process receives only the bodies it
    masks itself."""
    monkeypatch.setattr(miningprocess, "MINING_CHUNK_ROWS", chunk_rows)
    batches = [logs_batch("a", LINES), logs_batch("b", LINES[::-1])]
    config = LogTemplaterConfig(max_line_chars=max_line_chars)
    in_thread = LogTemplater(config)
    here, touched_here = in_thread.annotate(batches)
    assert {row.example for row in touched_here} >= {"worker 7 failed", LINES[0][:500]}
    process = MiningProcess(config, list)
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
    # The worker, killed as the kernel's OOM killer would.
    pid = pipeline.templater._worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    written(pipeline, logs_batch("svc", GENERALISED[2:], start_ns=T0 + 10**9))
    assert pipeline.stats.pending_bytes == 0  # the group was mined again and written
    assert pipeline.templater._worker.pid != pid
    after = by_body(pipeline.store, "svc")[GENERALISED[2]]["template_id"]
    assert after == before
    assert pipeline.templater.stats().templates == 1
    assert len(pipeline.store.logs(LogQuery(service="svc"))) == 3
    assert len(pipeline.store.templates(TemplateQuery(service="svc"))) == 1
    pipeline.close()
