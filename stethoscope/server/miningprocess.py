"""Log mining in a process of its own, so that intake keeps the main process's GIL.

Mining is pure Python and stateful (one owner, records in log order). Run by a thread of the
server's main process it held the GIL about a third of the time, and every other thread there
(HTTP, the hand-off to the decode workers, the write-ahead log) queued behind it: intake slowed
down while a core sat idle. Here one worker process owns the miners. The pipeline's miner
thread sends it the columns mining reads, as Arrow IPC, and gets back the template ids
and the templates touched; the main process only moves bytes.

If the process dies it is started again from the templates the store holds, and the group it
was mining fails once, to be mined again by the caller (the pipeline retries).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import psutil
import pyarrow as pa

from stethoscope.logs.masking import MASKED_COLUMN
from stethoscope.model.batch import SignalBatch, table_from_ipc, table_to_ipc
from stethoscope.server.templating import (
    LogTemplater,
    LogTemplaterConfig,
    MinedColumns,
    TemplaterStats,
    logs_table,
    with_templates,
)
from stethoscope.sources.otlp.decodepool import widen_pipe
from stethoscope.store.base import TemplateRow

__all__ = ["MiningProcess"]

log = logging.getLogger(__name__)

# What `LogTemplater.mine` reads; the other columns stay in the main process.
_MINED_FROM = ("service", "time_ns", "body_type", "body", MASKED_COLUMN)
# Records sent at a time: bounds the memory both processes hold for one exchange (a 200,000
# record group in one piece took about 100 MiB more in the mining process).
MINING_CHUNK_ROWS = 16_384
_TEMPLATER: LogTemplater | None = None  # the worker process's miners


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

    threading.Thread(target=watch, name="steth-mining-watch", daemon=True).start()


def worker_pool(
    workers: int, initializer: Callable[..., None], initargs: tuple[object, ...]
) -> ProcessPoolExecutor:
    """A pool of `workers` processes whose pipes take a chunk of records in one write."""
    # forkserver: the server has threads by the time a worker may be replaced.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=initializer,
        initargs=initargs,
    )
    # The executor keeps its two pipes private: where they are not found (another Python),
    # the pool works as it is, with more hand-offs.
    for queue in ("_call_queue", "_result_queue"):
        reader = getattr(getattr(pool, queue, None), "_reader", None)
        if reader is None:
            log.debug("the pool's %s keeps its default pipe size", queue)
        else:
            widen_pipe(reader)
    return pool


def _start_templater(server_pid: int, config: LogTemplaterConfig, rows: list[TemplateRow]) -> None:
    """Worker initializer: the miners, restored from the store's templates."""
    global _TEMPLATER
    leave_with_server(server_pid)
    _TEMPLATER = LogTemplater(config)
    _TEMPLATER.restore(rows)


def _stats_in_worker() -> TemplaterStats:
    assert _TEMPLATER is not None
    return _TEMPLATER.stats()


def _mine_in_worker(data: bytes) -> tuple[bytes, list[TemplateRow], TemplaterStats]:
    assert _TEMPLATER is not None
    table = table_from_ipc(data)
    mined = _TEMPLATER.mine(table)
    columns = pa.table({"template_id": mined.template_ids})
    answer = table_to_ipc(columns), mined.touched, _TEMPLATER.stats()
    del table, mined, columns
    # The allocator keeps freed pages; hand them back so the server's memory stays bounded.
    pa.default_memory_pool().release_unused()
    return answer


def _merged(earlier: TemplateRow | None, later: TemplateRow) -> TemplateRow:
    """One template's row over two chunks: its latest text, its whole time span, one example."""
    if earlier is None:
        return later
    return dataclasses.replace(
        later,
        first_seen_ns=min(earlier.first_seen_ns, later.first_seen_ns),
        last_seen_ns=max(earlier.last_seen_ns, later.last_seen_ns),
        example=earlier.example,
    )


class MiningProcess:
    """A `LogTemplater` in a worker process, with the same `annotate` and `stats`."""

    def __init__(
        self, config: LogTemplaterConfig, persisted: Callable[[], list[TemplateRow]]
    ) -> None:
        config.validate()
        self._config = config
        self._persisted = persisted  # the store's templates, to restart from
        self._stats = TemplaterStats()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = worker_pool(1, _start_templater, (os.getpid(), self._config, self._persisted()))
        # Start it now (and learn what was restored) rather than on the first records.
        self._stats = pool.submit(_stats_in_worker).result()
        return pool

    def annotate(
        self, batches: Sequence[SignalBatch]
    ) -> tuple[list[SignalBatch], list[TemplateRow]]:
        """As `LogTemplater.annotate`, mined in the worker process."""
        combined = logs_table(batches)
        if combined is None:
            return list(batches), []
        wanted = combined.select([name for name in _MINED_FROM if name in combined.column_names])
        ids: list[pa.Array] = []
        touched: dict[tuple[str, int], TemplateRow] = {}
        for start in range(0, wanted.num_rows, MINING_CHUNK_ROWS):
            columns, rows = self._mine(wanted.slice(start, MINING_CHUNK_ROWS))
            ids.append(columns.column("template_id").combine_chunks())
            for row in rows:
                key = (row.service, row.template_id)
                touched[key] = _merged(touched.get(key), row)
        mined = MinedColumns(pa.concat_arrays(ids), list(touched.values()))
        return with_templates(batches, combined, mined), mined.touched

    def _mine(self, chunk: pa.Table) -> tuple[pa.Table, list[TemplateRow]]:
        pool = self._pool
        try:
            data, touched, stats = pool.submit(_mine_in_worker, table_to_ipc(chunk)).result()
        except BrokenProcessPool:
            self._restart(pool)
            raise
        self._stats = stats
        return table_from_ipc(data), touched

    def stats(self) -> TemplaterStats:
        """The counts the worker reported with its last answer."""
        return self._stats

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        log.warning("the log mining process died; restarting it from the stored templates")
        broken.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()  # only the miner thread mines: no one else restarts

    def close(self) -> None:
        """Stop the worker process."""
        self._pool.shutdown(wait=True, cancel_futures=True)
