"""The `steth tail` loop: followed lines, joined and parsed, shipped; offsets committed once sent.

Per file, complete lines go through a `MultilineJoiner` (stack traces become one record) and
`parse_line` (time, severity, fields), and leave as OTLP log records with `log.file.path` and
`log.file.name`. A file's committed offset is the start of its oldest line not yet handed to the
shipper; it is written to the state file only after the shipper reports everything emitted
before it acknowledged (`Channel.when_sent`), so a crash or a collector outage re-sends lines
instead of losing them. Reading pauses while the shipper's spool is half full.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TextIO

from stethoscope.logs.lines import parse_line
from stethoscope.sources.records import log_record
from stethoscope.sources.shipper import Channel, Shipper, ShipperConfig
from stethoscope.sources.tail.config import TailConfig
from stethoscope.sources.tail.follower import FileUpdate, FollowedFile, Follower
from stethoscope.sources.tail.joining import FileRecords
from stethoscope.sources.tail.offsets import FileKey, OffsetEntry, OffsetStore

__all__ = ["TailSummary", "Tailer"]

SCOPE = "steth.tail"
# Even with nothing new, the state is rewritten this often so open files stay "seen".
REFRESH_STATE_S = 600.0

# Markers waiting for the collector. Beyond this, offsets wait merged per file for the next
# marker, so a long outage costs one entry per file, not one marker per poll.
MAX_OUTSTANDING_MARKERS = 256

# What a `when_sent` marker carries: per file the entry to record (None: forget it), and the
# records and lines emitted since the previous marker.
_Commit = tuple[dict[FileKey, OffsetEntry | None], int, int]


@dataclass(frozen=True)
class TailSummary:
    """What one run of `steth tail` did, printed on exit."""

    files: int
    records_sent: int
    lines_sent: int
    records_unsent: int  # emitted but not acknowledged at exit: re-read at the next start
    dropped: int
    rejected: int
    truncated_lines: int
    cut_records: int
    refused_files: int

    def text(self) -> str:
        """One line for the terminal."""
        return (
            f"steth tail: {self.files} files, {self.lines_sent} lines sent as "
            f"{self.records_sent} records; {self.records_unsent} unsent (re-read next start), "
            f"{self.dropped} dropped, {self.rejected} rejected, "
            f"{self.truncated_lines} lines and {self.cut_records} multiline records cut, "
            f"{self.refused_files} files over the limit"
        )


@dataclass
class _Sink:
    """A followed file and its records being joined."""

    file: FollowedFile
    records: FileRecords
    counted_lines: int = 0  # of records.lines_done, already added to the counts


class Tailer:
    """Follows the configured files until `stop` is set, then flushes and commits."""

    def __init__(self, config: TailConfig, *, err: TextIO | None = None) -> None:
        config.validate()
        self.config = config
        self.err = err or sys.stderr
        self.store = OffsetStore(
            config.state_path,
            max_entries=config.max_state_entries,
            forget_after_s=config.forget_after_s,
        )
        self.follower = Follower(config, self.store, self._warn)
        self._sinks: dict[int, _Sink] = {}
        self._commits: deque[_Commit] = deque()  # filled on the sender thread
        self._pending: dict[FileKey, OffsetEntry | None] = {}
        self._markers = [0, 0]  # registered, applied
        self._emitted = [0, 0]  # records, lines since the last marker
        self._sent = [0, 0]  # records, lines acknowledged
        self._records_emitted = 0
        self._cut_records = 0  # by files no longer followed
        self._last_save = -REFRESH_STATE_S  # the first poll writes the state: "started once"
        self._warned_rejected = False

    def run(self, stop: threading.Event) -> TailSummary:
        """Follow, ship and commit until `stop` is set; the summary of the run."""
        shipper_config = ShipperConfig(
            endpoint=self.config.endpoint,
            token=self.config.token,
            spool_bytes=self.config.spool_bytes,
        )
        self.store.open()
        try:
            shipper = Shipper(shipper_config).start()
            channel = shipper.channel(
                service=self.config.service, instance=self.config.instance, scope=SCOPE
            )
            try:
                self._loop(stop, shipper, channel)
            finally:
                self._finish(channel)
                stats = shipper.close(timeout_s=self.config.flush_timeout_s)
                self._save(force=True)
        finally:
            self.store.close()
        return TailSummary(
            files=self.follower.opened_total,
            records_sent=self._sent[0],
            lines_sent=self._sent[1],
            records_unsent=self._records_emitted - self._sent[0],
            dropped=stats.dropped_logs,
            rejected=stats.rejected,
            truncated_lines=self.follower.truncated_lines,
            cut_records=self._cut_records
            + sum(s.records.cut_records for s in self._sinks.values()),
            refused_files=self.follower.refused_files,
        )

    def _loop(self, stop: threading.Event, shipper: Shipper, channel: Channel) -> None:
        while not stop.is_set():
            now = time.monotonic()
            for update in self.follower.poll(now, shipper.has_room):
                self._handle(update, channel, now)
            for sink in self._sinks.values():
                if self._emit(sink, sink.records.flush_due(now), channel):
                    self._stage(sink)
            self._mark(channel)
            self._check_rejections(shipper)
            self._save()
            if not self.follower.behind:  # a file with more to read goes on at once
                stop.wait(self.config.poll_interval_s)

    def _finish(self, channel: Channel) -> None:
        """Shutdown: what the joiners hold is sent; unterminated lines wait for the next start."""
        for sink in self._sinks.values():
            self._emit(sink, sink.records.close(), channel)
            self._stage(sink)
        self._mark(channel)
        self.follower.close()

    def _handle(self, update: FileUpdate, channel: Channel, now: float) -> None:
        file = update.file
        sink = self._sinks.get(file.serial)
        if sink is None:
            sink = _Sink(file, self._file_records(file.reader.consumed))
            self._sinks[file.serial] = sink
        if update.restarted:
            self._emit(sink, sink.records.restart(), channel)
        for line in update.lines:
            self._emit(sink, sink.records.feed(line, now), channel)
        if update.closed:
            self._emit(sink, sink.records.close(), channel)
            del self._sinks[file.serial]
            self._cut_records += sink.records.cut_records
            if update.deleted:
                self._pending[file.key] = None
                return
        self._stage(sink)

    def _file_records(self, start: int) -> FileRecords:
        return FileRecords(
            start=start,
            max_lines=self.config.multiline_max_lines,
            max_bytes=self.config.multiline_max_bytes,
            idle_flush_s=self.config.multiline_idle_s,
        )

    def _emit(self, sink: _Sink, records: list[str], channel: Channel) -> bool:
        """Ship joined records; whether there were any."""
        path = sink.file.path
        name = os.path.basename(path)
        for text in records:
            parsed = parse_line(text)
            attributes = dict(parsed.attributes)
            attributes["log.file.path"] = path
            attributes["log.file.name"] = name
            channel.log(
                log_record(
                    body=parsed.body,
                    time_ns=parsed.time_ns,
                    severity_number=parsed.severity_number,
                    severity_text=parsed.severity_text,
                    attributes=attributes,
                    trace_id=parsed.trace_id,
                    span_id=parsed.span_id,
                )
            )
        self._emitted[0] += len(records)
        self._emitted[1] += sink.records.lines_done - sink.counted_lines
        sink.counted_lines = sink.records.lines_done
        self._records_emitted += len(records)
        return bool(records)

    def _stage(self, sink: _Sink) -> None:
        """The file's offset as of now, to be committed once what came before is sent."""
        file = sink.file
        records = sink.records
        offset = records.done_offset if records.holding else file.reader.consumed
        entry = OffsetEntry(
            device=file.key[0],
            inode=file.key[1],
            fingerprint=file.fingerprint,
            fingerprint_bytes=file.fingerprint_bytes,
            offset=offset,
            path=file.path,
            seen_ns=time.time_ns(),
        )
        self._pending[file.key] = entry

    def _mark(self, channel: Channel) -> None:
        """One marker per poll carries the offsets staged in it."""
        outstanding = self._markers[0] - self._markers[1] - len(self._commits)
        if not self._pending or outstanding >= MAX_OUTSTANDING_MARKERS:
            return
        commit: _Commit = (self._pending, self._emitted[0], self._emitted[1])
        channel.when_sent(_appender(self._commits, commit))
        self._markers[0] += 1
        self._pending = {}
        self._emitted = [0, 0]

    def _save(self, *, force: bool = False) -> None:
        """Apply acknowledged commits and write the state file (at most every save interval)."""
        now = time.monotonic()
        if not force and now - self._last_save < self.config.state_save_interval_s:
            return
        changed = bool(self._commits)
        while self._commits:
            entries, records, lines = self._commits.popleft()
            self._markers[1] += 1
            for key, entry in entries.items():
                if entry is None:
                    self.store.forget(key)
                else:
                    self.store.update(entry)
            self._sent[0] += records
            self._sent[1] += lines
        if changed or force or now - self._last_save >= REFRESH_STATE_S:
            self._refresh_seen()
            self.store.save()
            self._last_save = now

    def _refresh_seen(self) -> None:
        seen = time.time_ns()
        for key in self.follower.files:
            entry = self.store.get(key)
            if entry is not None:
                self.store.update(replace(entry, seen_ns=seen))

    def _check_rejections(self, shipper: Shipper) -> None:
        stats = shipper.stats()
        if stats.rejected and not self._warned_rejected:
            self._warn(f"the collector refuses records: {stats.last_error}")
            self._warned_rejected = True

    def _warn(self, message: str) -> None:
        print(f"steth tail: {message}", file=self.err, flush=True)


def _appender(commits: deque[_Commit], commit: _Commit) -> Callable[[], None]:
    """The marker callback: runs on the shipper's thread, so it only queues (deque is atomic)."""
    return lambda: commits.append(commit)
