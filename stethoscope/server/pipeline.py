"""The ingest pipeline: admission, the write-ahead log, and the one writer that owns the store.

    receiver ──submit()──► admission (bytes bound) ──► WAL (fsync) ──► writer queue ──► store
                                    │                        │
                                 Overloaded              acknowledged here

The writer is two threads in a row: the miner gathers a group from the queue and has its log
records mined (by the mining process, `miningprocess.py`, which alone owns the miners' state),
and the store writer commits the mined group. Mining and DuckDB's insert both run outside this
process's GIL, so group N+1 is mined while group N is committed. At most one mined group waits
between them; groups are committed in log order.

Memory is bounded by `max_pending_bytes`: a batch is admitted only if the batches not yet in the
store leave room for it (it waits up to `admission_wait_s` for the writer to make room);
otherwise the receiver answers "retry later". Rows the store holds back to insert whole row
groups (store/duckdb/rowgroups.py) count as not yet in the store.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from stethoscope.errors import Overloaded
from stethoscope.model.batch import SignalBatch
from stethoscope.model.timeutil import now_ns
from stethoscope.server.miningprocess import MiningProcess
from stethoscope.server.templating import LogTemplaterConfig
from stethoscope.store.base import TemplateRow
from stethoscope.store.duckdb.store import DuckDBStore
from stethoscope.store.wal import WalConfig, WriteAheadLog

log = logging.getLogger(__name__)
WRITE_RETRY_S = 1.0
VISIBLE_TIMEOUT_S = 60.0


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Bounds and cadence of the writer; every limit is a named setting."""

    # A DuckDB row group of spans is ~67 MiB of decoded batches (~550 B a span); at 96 MiB the
    # bound stopped intake while one was inserted. 160 MiB: spans/s 1.11-1.31x and log
    # records/s 1.2x in the same runs, the server tree's peak PSS +0-40 MiB (793-825 MiB);
    # the worst phase of a full benchmark +81-84 MiB (859; 973 with segments).
    max_pending_bytes: int = 160 * 1024 * 1024
    # How long a batch may wait for room before it is refused. Refused senders wait out a
    # whole Retry-After (1 s at least over HTTP) while the writer catches up in less: the
    # cores sat idle, and intake dropped to what the pauses allowed.
    admission_wait_s: float = 1.0
    # 100k rows insert about as fast as 200k (per row) with half the memory held by a group.
    batch_rows: int = 100_000
    flush_interval_s: float = 0.5
    # How long the store may hold rows back to insert them in whole row groups (rowgroups.py):
    # at ~60,000 rows/s and more a row group fills first, so nearly every insert is whole.
    max_hold_s: float = 2.0
    retention_ns: int | None = 7 * 86400 * 1_000_000_000
    prune_interval_s: float = 60.0
    templates: LogTemplaterConfig = field(default_factory=LogTemplaterConfig)

    def validate(self) -> None:
        if self.max_pending_bytes < 1024 * 1024:
            raise ValueError("max_pending_bytes must be at least 1 MiB")
        if self.batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        if not 0 <= self.admission_wait_s <= 60:
            raise ValueError("admission_wait_s must be between 0 and 60 seconds")
        if not 0 <= self.max_hold_s <= 60:
            raise ValueError("max_hold_s must be between 0 and 60 seconds")
        if not 0 < self.flush_interval_s <= 60:
            raise ValueError("the flush interval must be more than 0 and at most 60 seconds")
        self.templates.validate()


@dataclass
class PipelineStats:
    """Counters an operator (and the overload test) can read from /api/stats."""

    accepted: int = 0
    rejected: int = 0
    refused_overload: int = 0
    written_batches: int = 0
    replayed_batches: int = 0
    pruned_rows: int = 0
    pending_bytes: int = 0


@dataclass
class _MinedGroup:
    """A group taken from the writer queue, its log records mined, ready to commit."""

    seqs: list[int]
    nbytes: list[int]  # admitted bytes of each batch, released once it is stored
    batches: list[SignalBatch]
    templates: list[TemplateRow]
    # Whether the store may hold rows back for its next write (see store/duckdb/rowgroups).
    whole_row_groups: bool = False


class IngestPipeline:
    """Takes SignalBatches from receivers; acknowledges once durable; writes them in batches."""

    def __init__(self, store: DuckDBStore, wal_config: WalConfig, config: PipelineConfig):
        config.validate()
        self.config = config
        self.store = store
        self.stats = PipelineStats()
        # One owner mines, in log order; its state comes back from the store.
        self.templater = MiningProcess(config.templates, store.template_rows)
        self._queue: deque[tuple[int, SignalBatch]] = deque()
        self._cond = threading.Condition()
        self._pending_bytes = 0
        self._visible_seq = 0
        self._visible_waiters = 0
        self._room_waiters = 0
        self._stopping = False
        self._wal = WriteAheadLog(wal_config, self._enqueue)
        # One mined group waits while the previous one commits; None tells the writer to stop.
        self._mined: queue.Queue[_MinedGroup | None] = queue.Queue(maxsize=1)
        # (seq, bytes, when) of batches committed but held back by the store, oldest first
        self._unstored: deque[tuple[int, int, float]] = deque()
        self._miner = threading.Thread(target=self._mine_run, name="steth-miner", daemon=True)
        self._writer = threading.Thread(target=self._write_run, name="steth-writer", daemon=True)
        self._last_prune = 0.0

    def start(self) -> None:
        """Replay what the log holds beyond the store, then start accepting."""
        replay: list[tuple[int, SignalBatch]] = []
        rows = 0
        for seq, batch in self._wal.recover(self.store.applied_seq()):
            replay.append((seq, batch))
            rows += batch.accepted
            if rows >= self.config.batch_rows:
                self._commit(self._mine(replay, whole_row_groups=True))
                replay, rows = [], 0
        if replay or self.store.holding:
            self._commit(self._mine(replay))
        self.stats.replayed_batches = self.stats.written_batches
        self._wal.start()
        self._writer.start()
        self._miner.start()

    def submit(self, batch: SignalBatch) -> int:
        """Make the batch durable; returns its log sequence number once it may be acknowledged.

        Raises Overloaded (retryable) when the pending-data bound would still be exceeded after
        waiting `admission_wait_s` for the writer to make room.
        """
        size = batch.nbytes
        with self._cond:
            if not self._wait_for_room(size):
                self.stats.refused_overload += 1
                raise Overloaded("collector is busy writing; retry later", retry_after=1)
            if self._stopping:
                raise Overloaded("collector is shutting down", retry_after=5)
            self._pending_bytes += size
            self.stats.pending_bytes = self._pending_bytes
        try:
            seq = self._wal.append(batch)
        except BaseException:
            self._release(size)
            raise
        with self._cond:
            self.stats.accepted += batch.accepted
            self.stats.rejected += batch.rejected
        return seq

    def submit_visible(self, batch: SignalBatch) -> None:
        """Submit, then wait until queries can see the batch (imports answer only then)."""
        self.wait_visible(self.submit(batch))

    def wait_visible(self, seq: int) -> None:
        """Wait until queries can see everything up to log sequence number `seq`."""
        with self._cond:
            # Someone is waiting: the writer commits what it has instead of gathering more.
            self._visible_waiters += 1
            self._cond.notify_all()
            try:
                visible = self._cond.wait_for(lambda: self._visible_seq >= seq, VISIBLE_TIMEOUT_S)
            finally:
                self._visible_waiters -= 1
            if not visible:
                raise Overloaded("the store is slow to take the import; it is durable, retry later")

    def close(self) -> None:
        """Stop accepting, write everything queued, and close the log and the store."""
        with self._cond:
            self._stopping = True
        self._wal.close()
        with self._cond:
            self._cond.notify_all()
        for thread in (self._miner, self._writer):
            if thread.is_alive():
                thread.join()
        if self.store.holding:
            self._commit(self._mine([]))
        self.templater.close()
        self._wal.release(self.store.applied_seq())

    def _wait_for_room(self, size: int) -> bool:
        """Whether room for `size` bytes was there or made within `admission_wait_s`.

        While a receiver waits, the miner takes what is queued instead of gathering a full
        group: the rows the store holds back for whole row groups and a group being gathered
        can fill the bound together (spans: 122,880 held and 100,000 gathered are ~125 MiB
        decoded), and then nothing was written until the flush interval passed.
        """
        if self._stopping or self._has_room(size):
            return True
        self._room_waiters += 1
        self._cond.notify_all()
        try:
            return self._cond.wait_for(
                lambda: self._stopping or self._has_room(size), self.config.admission_wait_s
            )
        finally:
            self._room_waiters -= 1

    def _has_room(self, size: int) -> bool:
        # A batch bigger than the bound is admitted alone rather than never.
        return (
            not self._pending_bytes or self._pending_bytes + size <= self.config.max_pending_bytes
        )

    def _enqueue(self, seq: int, batch: SignalBatch) -> None:
        with self._cond:
            self._queue.append((seq, batch))
            self._cond.notify_all()

    def _release(self, size: int) -> None:
        with self._cond:
            self._pending_bytes -= size
            self.stats.pending_bytes = self._pending_bytes
            self._cond.notify_all()

    def _mine_run(self) -> None:
        """Miner thread: gather groups, mine them, hand them to the writer in log order."""
        try:
            while True:
                group, loaded = self._collect()
                if group:
                    self._mined.put(self._mine(group, whole_row_groups=loaded))
                elif self._stopping:
                    return
        finally:
            self._mined.put(None)

    def _write_run(self) -> None:
        """Writer thread: the one user of the store connection; commits mined groups in order."""
        while True:
            try:
                mined = self._mined.get(timeout=self.config.flush_interval_s)
            except queue.Empty:
                if self.store.holding:  # the load has passed: store what is held back
                    mined = self._mine([])
                else:
                    self._maybe_prune()
                    continue
            if mined is None:
                return
            while True:
                try:
                    self._commit(mined)
                    break
                except Exception:
                    # The data is safe in the log; keep it and try again rather than lose it.
                    log.exception("store write failed; retrying in %.0f s", WRITE_RETRY_S)
                    time.sleep(WRITE_RETRY_S)
            self._maybe_prune()

    def _collect(self) -> tuple[list[tuple[int, SignalBatch]], bool]:
        """The queued batches once there are enough or the flush interval has passed, and
        whether the store may hold some back (nobody is waiting to see them)."""
        deadline = time.monotonic() + self.config.flush_interval_s
        with self._cond:
            while (
                not self._stopping
                and self._queued_rows() < self.config.batch_rows
                and not ((self._visible_waiters or self._room_waiters) and self._queue)
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            group = list(self._queue)
            self._queue.clear()
            loaded = not self._stopping and not self._visible_waiters
        return group, loaded

    def _queued_rows(self) -> int:
        return sum(batch.accepted for _, batch in self._queue)

    def _mine(
        self, group: list[tuple[int, SignalBatch]], *, whole_row_groups: bool = False
    ) -> _MinedGroup:
        """Mine a group's log records (retried until it succeeds: the data is in the log)."""
        if not group:  # nothing new: the store writes what it holds
            return _MinedGroup([], [], [], [])
        while True:
            try:
                batches, templates = self.templater.annotate([batch for _, batch in group])
                break
            except Exception:
                log.exception("log mining failed; retrying in %.0f s", WRITE_RETRY_S)
                time.sleep(WRITE_RETRY_S)
        seqs = [seq for seq, _ in group]
        nbytes = [batch.nbytes for _, batch in group]
        return _MinedGroup(seqs, nbytes, batches, templates, whole_row_groups)

    def _commit(self, mined: _MinedGroup) -> None:
        now = time.monotonic()
        held_long = bool(self._unstored) and now - self._unstored[0][2] >= self.config.max_hold_s
        applied = self.store.write(
            mined.batches,
            seqs=mined.seqs,
            templates=mined.templates,
            whole_row_groups=mined.whole_row_groups and not held_long,
        )
        sizes = zip(mined.seqs, mined.nbytes, strict=True)
        self._unstored.extend((seq, size, now) for seq, size in sizes)
        stored = 0
        while self._unstored and self._unstored[0][0] <= applied:
            stored += self._unstored.popleft()[1]
        self._wal.release(applied)
        with self._cond:
            self._pending_bytes -= stored
            self.stats.pending_bytes = self._pending_bytes
            self._visible_seq = max(self._visible_seq, applied)
            self.stats.written_batches += len(mined.batches)
            self._cond.notify_all()

    def _maybe_prune(self) -> None:
        retention = self.config.retention_ns
        if retention is None or time.monotonic() - self._last_prune < self.config.prune_interval_s:
            return
        self._last_prune = time.monotonic()
        self.stats.pruned_rows += self.store.prune(older_than_ns=now_ns() - retention)
