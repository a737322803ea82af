"""The embedded DuckDB store: one file, one writing process, batched atomic commits."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from stethoscope.errors import DataError
from stethoscope.store.base import (
    EventQuery,
    LogQuery,
    MetricQuery,
    TemplateQuery,
    TemplateRow,
    TraceQuery,
    Window,
)
from stethoscope.store.duckdb import clock, log_queries, peers, profiles, queries
from stethoscope.store.duckdb.compaction import compact, remove_unfinished, worth_compacting
from stethoscope.store.duckdb.rowgroups import Plan, RowGroups
from stethoscope.store.duckdb.schema import (
    SCHEMA_VERSION,
    check_readable,
    create_schema,
    read_schema_version,
)
from stethoscope.store.duckdb.segments import ROW_TABLES, TIME_COLUMNS, Segments, TraceIndex

if TYPE_CHECKING:  # writing needs pyarrow; reading (the CLI's path) does not load it
    import pyarrow as pa

    from stethoscope.model.batch import SignalBatch

STORE_FILE = "steth.duckdb"
# How much of DuckDB's own log builds up before it checkpoints into the file. At DuckDB's 16 MB
# default a busy writer checkpoints every ~150k rows, and the blocks each checkpoint frees (it
# rewrites the part-filled last row group) stay in the file: a steady ~25 MB, 13 B per span of a
# 2M-span store. At 128 MB they are reused before they pile up (0.1 B per span or log record) and
# commits take half the time; the costs are ~90-170 MB more memory between checkpoints (peak
# 296 MB at a 384 MB limit), up to ~128 MB of steth.duckdb.wal on disk, and ~1 s of replay after
# a crash (0.96 s for 91 MB). Measured in the 2026-11 bytes-per-span study (issue 2).
CHECKPOINT_THRESHOLD = "128MB"
_ORIGIN_TABLES = {"resources": "resource_id", "scopes": "scope_id"}
_APPLIED = "wal_applied_seq"  # meta: the last log position whose rows are all stored ...
_AHEAD = "wal_ahead:"  # ... and, per table, the rows of later positions stored already
# Tables retention deletes rows from, by the time column it goes by (segments go whole).
_TIME_COLUMNS = {ROW_TABLES[view]: column for view, column in TIME_COLUMNS.items()} | {
    "metric_points": "time_ns"
}
TEMPLATES_SINCE = 2  # the schema version that added log templates
SEGMENTS_SINCE = 3  # ... that added segments, the spans and logs views and their rows tables
TRACE_INDEX_SINCE = 4  # ... that added the segments' trace index
_UPSERT_TEMPLATES = """
    INSERT INTO templates BY NAME SELECT * FROM changed
    ON CONFLICT (service, template_id) DO UPDATE SET
        template = excluded.template,
        overflow = excluded.overflow,
        first_seen_ns = least(templates.first_seen_ns, excluded.first_seen_ns),
        last_seen_ns = greatest(templates.last_seen_ns, excluded.last_seen_ns)
"""


def _one_chunk(rows: pa.Table) -> pa.Table:
    """`rows` copied into one chunk a column: inserting the many small chunks of a group cost
    about a third more CPU per row (measured: spans 5.0 -> 3.8 us, logs 2.4 -> 1.8)."""
    return rows.combine_chunks()


def _record_position(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """The log position the store has reached, with the rows it holds beyond it."""
    con.execute("DELETE FROM meta WHERE key = ? OR starts_with(key, ?)", [_APPLIED, _AHEAD])
    rows = [(f"{_AHEAD}{name}", count) for name, count in sorted(plan.ahead.items()) if count]
    con.executemany("INSERT INTO meta VALUES (?, ?)", [(_APPLIED, plan.applied_seq), *rows])


def _upsert_templates(con: duckdb.DuckDBPyConnection, rows: Sequence[TemplateRow]) -> None:
    """Insert new templates; update text and times of known ones (ordinal and example stay)."""
    import dataclasses

    import pyarrow as pa

    # Column by column: `dataclasses.asdict` (a deep copy of each row) took 4.8 of the 7.0 ms
    # a write of 300 templates spent here.
    names = [field.name for field in dataclasses.fields(TemplateRow)]
    changed = pa.table({name: [getattr(row, name) for row in rows] for name in names})  # noqa: F841
    con.execute(_UPSERT_TEMPLATES)


class DuckDBStore:
    """A Store over `<data>/steth.duckdb`; reads use their own cursors, safe across threads."""

    def __init__(
        self,
        data_dir: Path,
        *,
        read_only: bool = False,
        memory_limit: str = "1GB",
        checkpoint_threshold: str = CHECKPOINT_THRESHOLD,
        segment_rows: int = 0,
    ):
        """`segment_rows`: spans or log records sealed in a Parquet segment at once (0: none).

        Segments take about 0.6x the disk and make queries slower (segments.py).
        """
        self.path = Path(data_dir) / STORE_FILE
        if read_only and not self.path.exists():
            raise DataError(f"no store at {self.path} (run `steth up --data {data_dir}` first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": memory_limit,
            "threads": 2,
            "file_search_path": str(self.path.parent.resolve()),  # segments' paths are relative
        }
        if not read_only:
            config["checkpoint_threshold"] = checkpoint_threshold
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only, config=config)
        except duckdb.IOException as error:
            raise DataError(f"cannot open {self.path}: {error}") from None
        except duckdb.ParserException as error:  # a size DuckDB cannot read, such as "1 GB x"
            raise ValueError(
                f"memory_limit and checkpoint_threshold are sizes such as '384MB' or '1GB' "
                f"(got {memory_limit!r}, {checkpoint_threshold!r}): {error}"
            ) from None
        self._lock = threading.Lock()
        self._segment_rows = segment_rows
        try:
            self._con.execute("SET GLOBAL parquet_metadata_cache = true")  # footers read once
            self.schema_version = self._prepare_schema(read_only)
        except BaseException:
            self._con.close()
            raise
        self._templated = self.schema_version >= TEMPLATES_SINCE
        # (A reader never writes: it has no log position to read and no segments to keep.)
        self._segments = None if read_only else Segments(self.path.parent, self._con)
        self._trace_index = TraceIndex()
        if self._segments is not None:
            remove_unfinished(self.path)
            self._segments.remove_orphans()
            if segment_rows:
                self._segments.unseal_short(self._con, segment_rows)
        position = (0, {}) if read_only else (self.applied_seq(), self._ahead())
        self._row_groups = RowGroups(*position, keyed=set(_ORIGIN_TABLES))

    def _prepare_schema(self, read_only: bool) -> int:
        """The schema version to read; a writer creates or migrates the schema first."""
        if not read_only:
            create_schema(self._con)
            return SCHEMA_VERSION
        # An older store is read as it is (only a writer migrates); the queries fill in what it
        # lacks, so that a copied data directory can be read by a newer steth.
        version = read_schema_version(self._con) or SCHEMA_VERSION
        check_readable(version)
        return version

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection for one reader thread."""
        return self._con.cursor()

    def write(
        self,
        batches: list[SignalBatch],
        *,
        seqs: Sequence[int] | None = None,
        templates: Sequence[TemplateRow] = (),
        whole_row_groups: bool = False,
    ) -> int:
        """Commit the batches and the templates they touched in one transaction.

        With `seqs` (the batches' write-ahead log positions), the position every row up to
        which is stored is committed with them and returned; `whole_row_groups` then inserts
        spans and log records in whole row groups only, holding the rest for the next write
        (see rowgroups.py). Without `seqs` everything is inserted and 0 returned.
        """
        if seqs is None:
            grouped: dict[str, list[pa.Table]] = {}
            for batch in batches:
                for name, table in batch.tables.items():
                    if table.num_rows:
                        grouped.setdefault(name, []).append(table)
            self._commit(grouped, templates, None)
            return 0
        plan = self._row_groups.plan(batches, seqs, whole=whole_row_groups)
        self._commit(plan.tables, templates, plan)
        self._row_groups.accept(plan)
        return plan.applied_seq

    @property
    def holding(self) -> bool:
        """Whether rows of written batches wait for a later write (see `write`)."""
        return self._row_groups.holding

    def _commit(
        self,
        grouped: dict[str, list[pa.Table]],
        templates: Sequence[TemplateRow],
        plan: Plan | None,
    ) -> None:
        import pyarrow as pa

        with self._lock:
            con = self._con
            con.execute("BEGIN")
            try:
                for name, tables in grouped.items():
                    # Batches from an older write-ahead log may lack newer (nullable) columns.
                    rows = pa.concat_tables(tables, promote_options="default")
                    if name in ROW_TABLES:
                        self._insert_sealed(name, rows)
                        continue
                    combined = _one_chunk(rows)  # noqa: F841 - read by DuckDB
                    key = _ORIGIN_TABLES.get(name)
                    if key:
                        con.execute(
                            f"INSERT INTO {name} BY NAME SELECT DISTINCT ON ({key}) * "
                            f"FROM combined WHERE {key} NOT IN (SELECT {key} FROM {name})"
                        )
                    else:
                        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM combined")
                if templates:
                    _upsert_templates(con, templates)
                if plan is not None:
                    _record_position(con, plan)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                if self._segments is not None:
                    self._segments.rolled_back(con)
                raise

    def _insert_sealed(self, view: str, rows: pa.Table) -> None:
        """Each whole segment to a new file; the rest to the rows table, sealed when it has one."""
        segments = self._segments
        if segments is None:
            raise DataError("a read-only store cannot be written")
        table = ROW_TABLES[view]
        size = self._segment_rows
        whole = rows.num_rows - rows.num_rows % size if size else 0
        # One segment a row group: cheaper to write (segments.py). A segment is written from the
        # write's chunks as they are (segments copy them a batch at a time).
        for start in range(0, whole, size or 1):
            segments.seal(self._con, view, rows.slice(start, size))
        if whole == rows.num_rows:
            return
        rest = _one_chunk(rows.slice(whole))  # noqa: F841 - read by DuckDB
        self._con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rest")
        if not size:
            return
        # fetchall: DuckDB refuses the seal's `con.sql` while a result is partly read.
        [(found,)] = self._con.execute(f"SELECT count(*) FROM {table}").fetchall()
        if found >= size:
            segments.seal(self._con, view, None)

    def _row_tables(self, cursor: duckdb.DuckDBPyConnection) -> dict[str, str]:
        """The views (spans, logs) whose rows all sit in a DuckDB table, by that table, as
        `cursor` sees the store (committed segments only)."""
        if self.schema_version < SEGMENTS_SINCE:  # a version 2 store read as it is: tables
            return {view: view for view in ROW_TABLES}
        found = cursor.execute("SELECT DISTINCT view_name FROM segments").fetchall()
        sealed = {row[0] for row in found}
        return {view: table for view, table in ROW_TABLES.items() if view not in sealed}

    def _indexed(self, row_tables: dict[str, str], views: tuple[str, ...]) -> TraceIndex | None:
        """The trace index when rows of any of `views` sit in segments it covers, with
        `row_tables` as `_row_tables` gives them."""
        if self.schema_version < TRACE_INDEX_SINCE:
            return None
        return self._trace_index if any(v not in row_tables for v in views) else None

    def _ahead(self) -> dict[str, int]:
        query = "SELECT key[length($1) + 1:], value FROM meta WHERE starts_with(key, $1)"
        return dict(self.cursor().execute(query, [_AHEAD]).fetchall())

    def applied_seq(self) -> int:
        """The last WAL sequence number whose data is committed (0 when none)."""
        found = self.cursor().execute("SELECT value FROM meta WHERE key = ?", [_APPLIED]).fetchone()
        return int(found[0]) if found else 0

    def prune(self, *, older_than_ns: int) -> int:
        """Delete live (not imported) rows older than the cutoff.

        A segment goes as a whole once all its rows are live and older than the cutoff.
        """
        deleted = 0
        with self._lock:
            for table, column in _TIME_COLUMNS.items():
                found = self._con.execute(
                    f"DELETE FROM {table} WHERE NOT imported AND {column} < ?", [older_than_ns]
                ).fetchone()
                deleted += int(found[0]) if found else 0
            if self._segments is not None:
                deleted += self._segments.prune(self._con, older_than_ns)
        return deleted

    def services(self, window: Window) -> list[dict[str, Any]]:
        cursor = self.cursor()
        return log_queries.add_instance_states(cursor, queries.services(cursor, window), window)

    def traces(self, query: TraceQuery) -> list[dict[str, Any]]:
        cursor = self.cursor()
        index = self._indexed(self._row_tables(cursor), ("spans",))
        return queries.traces(cursor, query, index=index)

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        cursor = self.cursor()
        row_tables = self._row_tables(cursor)
        return queries.trace(
            cursor,
            trace_id,
            templated=self._templated,
            row_tables=row_tables,
            index=self._indexed(row_tables, tuple(ROW_TABLES)),
        )

    def trace_ids(self, prefix: str) -> list[str]:
        cursor = self.cursor()
        index = self._indexed(self._row_tables(cursor), tuple(ROW_TABLES))
        return queries.trace_ids_with_prefix(cursor, prefix, index=index)

    def logs(self, query: LogQuery) -> list[dict[str, Any]]:
        cursor = self.cursor()
        index = self._indexed(self._row_tables(cursor), ("logs",))
        return queries.logs(cursor, query, templated=self._templated, index=index)

    def metrics(self, query: MetricQuery) -> dict[str, Any]:
        return queries.metrics(self.cursor(), query)

    def templates(self, query: TemplateQuery) -> list[dict[str, Any]]:
        if not self._templated:
            return []  # a version 1 store opened read-only: nothing was mined yet
        return log_queries.templates(self.cursor(), query)

    def template_rows(self) -> list[TemplateRow]:
        return log_queries.template_rows(self.cursor()) if self._templated else []

    def events(self, query: EventQuery) -> list[dict[str, Any]]:
        return log_queries.events(self.cursor(), query, templated=self._templated)

    def span_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        return profiles.span_profile(self.cursor(), window, bucket_ns)

    def edge_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        return profiles.edge_profile(self.cursor(), window, bucket_ns)

    def log_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        return profiles.log_profile(self.cursor(), window, bucket_ns)

    def call_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        return profiles.call_profile(self.cursor(), window, bucket_ns)

    def clock_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        return clock.clock_profile(self.cursor(), window, bucket_ns)

    def span_clock_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        return clock.span_clock_profile(self.cursor(), window, bucket_ns)

    def peer_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        return peers.peer_profile(self.cursor(), window, bucket_ns)

    def address_book(self, window: Window) -> pa.Table:
        return peers.address_book(self.cursor(), window)

    def event_history(
        self, window: Window, *, names: Sequence[str], per_key: int
    ) -> list[dict[str, Any]]:
        return profiles.event_history(self.cursor(), window, names=names, per_key=per_key)

    def metric_profile(self, window: Window, bucket_ns: int, *, max_series: int) -> pa.Table:
        return profiles.metric_profile(self.cursor(), window, bucket_ns, max_series=max_series)

    def close(self) -> None:
        """Close the file, which folds DuckDB's own log into it. A writer with `segment_rows`
        seals its rows tables first, and copies the file without its free blocks when they are
        most of it (compaction.py): rows sealed before any checkpoint held them never took
        blocks of the file, but those of an earlier checkpoint leave theirs free."""
        with self._lock:
            compactable = False
            try:
                if self._segments is not None and self._segment_rows:
                    self._segments.seal_rows(self._con)
                    self._con.execute("CHECKPOINT")
                    compactable = worth_compacting(self.path, self._used_bytes())
            finally:
                self._con.close()
            if compactable:
                compact(self.path)

    def _used_bytes(self) -> int:
        """Bytes of the file's blocks in use."""
        found = self._con.execute(
            "SELECT block_size * used_blocks FROM pragma_database_size()"
        ).fetchone()
        return int(found[0]) if found else 0
