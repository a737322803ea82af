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
from collections.abc import Callable, Sequence

import pyarrow as pa

from stethoscope.logs.masking import MASKED_COLUMN
from stethoscope.model.batch import SignalBatch, table_from_ipc, table_to_ipc
from stethoscope.server.templating import (
    LogTemplater,
    LogTemplaterConfig,
    MinedColumns,
    TemplaterStats,
    bodies_to_mask,
    example_of,
    logs_table,
    with_templates,
)
from stethoscope.sources.pipeworker import Handler, PipeWorker, WorkerLost
from stethoscope.store.base import TemplateRow

__all__ = ["MiningProcess"]

log = logging.getLogger(__name__)

# What `LogTemplater.mine` reads; the other columns stay in the main process, and of the bodies
# only those it masks itself go (`bodies_to_mask`): the examples are taken here
# (`example_of`). Sending every body was ~60% of a chunk's bytes, to take one example line
# a template.
_MINED_FROM = ("service", "time_ns", "body_type", MASKED_COLUMN)
# Records sent at a time: bounds the memory both processes hold for one exchange (a 200,000
# record group in one piece took about 100 MiB more in the mining process).
MINING_CHUNK_ROWS = 16_384


def _start_templater(config: LogTemplaterConfig, rows: list[TemplateRow]) -> Handler:
    """In the worker: the miners, restored from the store's templates, and what answers calls."""
    templater = LogTemplater(config)
    templater.restore(rows)

    def answer(
        header: str, data: bytearray
    ) -> tuple[tuple[list[TemplateRow], list[int], TemplaterStats], bytes | None]:
        if header == "stats":
            return ([], [], templater.stats()), None
        table = table_from_ipc(data)
        mined = templater.mine(table)
        ids = table_to_ipc(pa.table({"template_id": mined.template_ids}))
        touched, example_rows = mined.touched, mined.example_rows
        del table, mined
        # The allocator keeps freed pages; hand them back so the server's memory stays bounded.
        pa.default_memory_pool().release_unused()
        return (touched, example_rows, templater.stats()), ids

    return answer


def _merged(earlier: TemplateRow, later: TemplateRow) -> TemplateRow:
    """One template's row over two chunks: its latest text, its whole time span, one example."""
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
        self._worker = self._new_worker()

    def _new_worker(self) -> PipeWorker:
        worker = PipeWorker("steth-mining", _start_templater, (self._config, self._persisted()))
        # Start it now (and learn what was restored) rather than on the first records.
        (_, _, self._stats), _ = worker.call("stats")
        return worker

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
            chunk = combined.slice(start, MINING_CHUNK_ROWS)
            mined = self._mine(wanted.slice(start, MINING_CHUNK_ROWS), chunk)
            ids.append(mined.template_ids)
            bodies = chunk.column("body")
            for row, at in zip(mined.touched, mined.example_rows, strict=True):
                key = (row.service, row.template_id)
                earlier = touched.get(key)
                if earlier is None:  # its example: from the first chunk that touched it
                    touched[key] = dataclasses.replace(row, example=example_of(bodies, at))
                else:
                    touched[key] = _merged(earlier, row)
        return with_templates(batches, combined, pa.concat_arrays(ids)), list(touched.values())

    def _mine(self, wanted: pa.Table, chunk: pa.Table) -> MinedColumns:
        """Mine the records of `chunk`, of which `wanted` holds the columns mining reads."""
        sent = wanted.append_column("body", bodies_to_mask(chunk, self._config.max_line_chars))
        try:
            (touched, example_rows, self._stats), data = self._worker.call(
                "mine", table_to_ipc(sent)
            )
        except WorkerLost:
            self._restart()
            raise
        assert data is not None
        ids = table_from_ipc(data).column("template_id").combine_chunks()
        return MinedColumns(ids, touched, example_rows)

    def stats(self) -> TemplaterStats:
        """The counts the worker reported with its last answer."""
        return self._stats

    def _restart(self) -> None:
        log.warning("the log mining process died; restarting it from the stored templates")
        self._worker.stop()
        self._worker = self._new_worker()  # only the miner thread mines: no one else restarts

    def close(self) -> None:
        """Stop the worker process."""
        self._worker.stop()
