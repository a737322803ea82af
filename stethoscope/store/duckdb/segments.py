"""Spans and log records sealed in Parquet files ("segments"): 0.6x the disk, slower reads.

Measured with the benchmark's traffic through `steth up` (issue 2, 2026-11-26), every id,
request id and timestamp new on every send: DuckDB's own table takes 92-94 B/span (its codecs
do not entropy-code, and it refuses ZSTD for nested columns such as attributes); DuckDB's
Parquet writer with ZSTD 61-64 B/span, log records 57-61 B against 95-106; with the common
attribute keys in columns of their own (attribute_columns.py) 53-56 B/span, log records 56-62.
Per segment of 122,880 real spans: 62.8 B/span with the attributes list, 52.5 split; splitting
costs ~0.6 us a span and the smaller file saves ~0.4 of the COPY's 3.2. (A benchmark that
repeated span ids and request ids every 51,200 spans had shown 52 B/span: Parquet's dictionaries
compressed the repeats.) Writing a segment costs about what inserting into the table does
(a COPY of 122,880 real spans: 2.7-3.5 us a span). Also measured earlier, on repeated ids:
ZSTD level 6 about 6% smaller at 1.4x the CPU; Parquet version 2 pages larger (their delta
encodings lose to dictionaries). Those figures came from a benchmark whose row groups saw each
pooled request twice or more (durations, names and attribute values repeating in order): on
traffic that does not repeat, segments take ~58 B/span and version 2 pages suit spans
(segment_writer.py).

Measured, not taken: sorting a segment by service, then start (log records by service,
template, time) makes it 55-57 B/span (47-52 a log record), since one service's attributes
resemble each other; but the writer falls behind (spans/s 0.80-0.98x, 10M-span build
0.89-0.94x, four pairs of runs), a trace by id gets slower (64-86 ms in-process against 37-56)
and the server's peak RSS rose over 1 GiB in four of five runs (1,055-1,301 MiB against
910-951): a sort by DuckDB's ORDER BY costs 1.3-1.7 us a span and its memory, one by Arrow
(sort_indices + take) 0.6-0.75 us and a copy of the segment. Sorted by service, name and start:
52 B/span, a trace 94 ms; by trace id: no smaller than arrival order.

Queries pay for segments (10M-span store, five runs 12:28-13:55, a table at 12:35): a trace
by id took 37-56 ms in-process against 16 in a table, 122-137 ms through a running server
against 107; the filtered traces search 183-219 ms against 69. DuckDB skips the row groups the
trace ids' bloom filters rule out, then decodes every column around the matching rows: a trace
whose spans sit together costs less (that sorting scattered them and doubled the cost suggests
it skips the 2,048-row vectors without a match). Split attribute keys, one pair of runs (16:24
split, 16:29 not): trace 47.7 against 35.7 ms in-process, 122 against 123 through a server,
search 210 against 198 ms; peak RSS summed over the server's processes 1,017 against 948 MiB
(the 10M build 1,017 against 902, also 1,017 at 16:13; the split's own arrays stay under the
writer's other memory, measured in a harness, so the rest is unexplained). Hence a choice
for the operator: `steth up` seals (issue 2 asks for at most 60 B/span; the table store takes
93), `steth up --no-compact-store` keeps the faster tables.

So whole row groups of spans go to `<data>/segments/spans-NNNNNN.parquet`, one file each, the
rest of a write to the `span_rows` table, which is sealed into a segment as soon as it holds a
row group's worth; log records likewise (`logs-NNNNNN.parquet`, `log_rows`). The `segments`
table lists the files a query may read, and the `spans` and `logs` views union them with the
rows tables. A file is listed, and the view replaced, in the transaction that commits its
rows' write-ahead log position: after a crash a file is either listed and its rows never
replayed, or an orphan (deleted when a writer next opens the store) whose rows are replayed.
Paths in the view are relative to the data directory (DuckDB's `file_search_path`), so a copied
data directory reads anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from stethoscope.errors import DataError
from stethoscope.store.duckdb.attribute_columns import (
    ONE_TYPE_PREFIX,
    PREFIX,
    SegmentKeys,
    SplitColumn,
    column,
    literal,
    rebuilt,
    split_batches,
    split_text,
)
from stethoscope.store.duckdb.attribute_sql import UNSPLIT
from stethoscope.store.duckdb.segment_writer import TRACE_COLUMNS, write_segment
from stethoscope.store.durable import fsync_path

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ROW_TABLES",
    "SEGMENTS_DDL",
    "SEGMENT_DIR",
    "TIME_COLUMNS",
    "TRACE_INDEX_DDL",
    "Segments",
    "TraceIndex",
    "index_listed_traces",
    "view_ddl",
]

SEGMENT_DIR = "segments"
# Each sealed view, with the table of its rows not sealed yet and the time retention goes by.
ROW_TABLES = {"spans": "span_rows", "logs": "log_rows"}
TIME_COLUMNS = {"spans": "start_ns", "logs": "time_ns"}

SEGMENTS_DDL = """
    CREATE TABLE IF NOT EXISTS segments (
        file VARCHAR PRIMARY KEY,
        view_name VARCHAR NOT NULL,
        rows BIGINT NOT NULL,
        imported_rows BIGINT NOT NULL,
        min_time_ns BIGINT NOT NULL,
        max_time_ns BIGINT NOT NULL
    )
"""

# Which segment files hold rows of which traces, by the first 32 bits of the trace id: a trace
# lookup reads the files named here instead of asking every file's bloom filters (~0.26 ms a
# file, 21 of a lookup's 54 ms among 80 files of 10M spans, and growing with the store). With
# it, on the benchmark's 10M compact store (two full runs each, alternated): 42.1-43.6 ms
# in-process against 57.6-61.9, 106-121 through a running server against 149-154. Indexing a
# segment takes ~6 ms, 0.05 us a span (the writer alone, 2M spans in 20,480-span writes, five
# alternated pairs: 5.3-6.0 us a span with it, 5.5-6.2 without); its rows take 0.35 B a span
# (~10,000 traces a segment) and ~2.3 B a log record (about one trace each). 32 bits: ~4 B a
# row; an unrelated trace sharing them (at 10M traces, one lookup in ~400) only adds a file to
# read, since the lookup filters the full id. What is left is decoding the matching row group
# (segment_writer.py).
TRACE_INDEX_DDL = """
    CREATE TABLE IF NOT EXISTS segment_traces (
        trace_key UINTEGER NOT NULL,
        file VARCHAR NOT NULL
    )
"""
_TRACE_KEY = "(trace_hi >> 32)::UINTEGER"


Split = tuple[SplitColumn, ...]  # the attribute keys a segment split out, by key


def view_ddl(con: duckdb.DuckDBPyConnection, view: str, files: dict[str, Split]) -> str:
    """The `view` over its rows table and its segment `files` (relative paths), each with the
    attribute keys it split out (attribute_columns.py): `_rows_sql` as a view."""
    columns = [name for name, _ in _columns(con, ROW_TABLES[view])]
    return f"CREATE OR REPLACE VIEW {view} AS {_rows_sql(columns, view, files)}"


def _rows_sql(columns: Sequence[str], view: str, files: dict[str, Split]) -> str:
    """A query of the rows of `view` in its rows table (of `columns`, in order) and in the
    segment `files` (relative paths, each with the attribute keys it split out).

    Besides the table's columns (`attributes` rebuilt whole), the view shows each split key's
    column (null on rows from a file that did not split it, and on the table's) and the entries
    left in the list, `UNSPLIT`: what `AttributeSql` reads a key from.
    """
    table = ROW_TABLES[view]
    every_key = sorted({split.key for splits in files.values() for split in splits})

    def select(splits: Split, source: str) -> str:
        own = {split.key: split for split in splits}
        shown = [split_text(own[key]) if key in own else "NULL::VARCHAR" for key in every_key]
        named = [f"{value} AS {column(key)}" for value, key in zip(shown, every_key, strict=True)]
        listed = [_table_columns(columns, splits), *named, f"attributes AS {UNSPLIT}"]
        return f"SELECT {', '.join(listed)} FROM {source}"

    parts = [select((), table)]
    # One read_parquet a set of split keys: reading files of different columns together
    # (union_by_name) made a trace lookup among 10M spans take 62 ms instead of 38.
    by_split: dict[Split, list[str]] = {}
    for name, splits in files.items():
        by_split.setdefault(splits, []).append(name)
    for splits, group in by_split.items():
        listed = ", ".join(literal(name) for name in group)
        parts.append(select(splits, f"read_parquet([{listed}])"))
    return " UNION ALL ".join(parts)


def _table_columns(columns: Sequence[str], splits: Split) -> str:
    """SQL for the rows table's `columns` (in order) of a segment row that split out `splits`:
    its `attributes` rebuilt whole. The table's column list on every side of a union: one by
    position of two `*` would silently pair different columns if their orders ever parted."""
    return ", ".join(
        f'{rebuilt(splits)} AS "attributes"' if name == "attributes" else f'"{name}"'
        for name in columns
    )


class TraceIndex:
    """Where a store's traces sit, from its trace index (`segment_traces`): by view, a subquery
    of the rows table and the segments holding given traces.

    Remembers what cannot change while the store is open: each segment's split keys (a listed
    file is never rewritten and its name never reused) and the rows tables' columns (changed
    only by a migration, which a writer runs as it opens the store). Reading them took ~2 ms
    of each lookup on the benchmark's 10M compact store (the schema 1.1, the two DESCRIBEs
    1.0); whole lookups, alternated, moved within the noise (~27-40 ms either way).
    """

    def __init__(self) -> None:
        self._keys: dict[str, Split] = {}  # by file
        self._columns: dict[str, list[str]] = {}  # by rows table

    def sources(self, con: duckdb.DuckDBPyConnection, trace_his: Sequence[int]) -> dict[str, str]:
        """The subqueries for the traces whose ids have these high halves."""
        keys = sorted({trace_hi >> 32 for trace_hi in trace_his})
        return self._sources(con, "list_contains(?::UINTEGER[], trace_key)", [keys])

    def range_sources(
        self, con: duckdb.DuckDBPyConnection, first_hi: int, last_hi: int
    ) -> dict[str, str]:
        """The subqueries for every trace whose id's high half lies between `first_hi` and
        `last_hi`."""
        return self._sources(con, "trace_key BETWEEN ? AND ?", [first_hi >> 32, last_hi >> 32])

    def _sources(
        self, con: duckdb.DuckDBPyConnection, keys_sql: str, params: list[object]
    ) -> dict[str, str]:
        """The subqueries for the index rows whose keys meet `keys_sql`."""
        found = con.execute(
            "SELECT view_name, file FROM segments WHERE file IN "
            f"(SELECT file FROM segment_traces WHERE {keys_sql}) ORDER BY file",
            params,
        ).fetchall()
        files: dict[str, list[str]] = {view: [] for view in ROW_TABLES}
        for view, name in found:
            files[view].append(name)
        unknown = {
            view: [name for name in names if name not in self._keys]
            for view, names in files.items()
        }
        self._keys.update(_split_keys(con, unknown))
        sources = {}
        for view, names in files.items():
            table = ROW_TABLES[view]
            if table not in self._columns:
                self._columns[table] = [name for name, _ in _columns(con, table)]
            listed = {name: self._keys[name] for name in names}
            sources[view] = f"({_rows_sql(self._columns[table], view, listed)})"
        return sources


def index_listed_traces(con: duckdb.DuckDBPyConnection) -> None:
    """Fill the trace index from the listed segments (a store sealed before it existed)."""
    for (name,) in con.execute("SELECT file FROM segments ORDER BY file").fetchall():
        _index_traces(con, name)


def _index_traces(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Record the traces of the segment `name` (a relative path) in the trace index."""
    con.execute(
        f"INSERT INTO segment_traces SELECT DISTINCT {_TRACE_KEY}, ? FROM read_parquet(?) "
        "WHERE trace_hi IS NOT NULL",
        [name, name],
    )


def _split_keys(con: duckdb.DuckDBPyConnection, files: dict[str, list[str]]) -> dict[str, Split]:
    """The attribute keys each of `files` split out, read from the files' schemas."""
    names = [name for listed in files.values() for name in listed]
    if not names:
        return {}
    by_base = {Path(name).name: name for name in names}
    splits: dict[str, list[SplitColumn]] = {name: [] for name in names}
    listed = ", ".join(literal(name) for name in names)
    try:
        found = con.execute(
            f"SELECT file_name, name FROM parquet_schema([{listed}]) "
            "WHERE starts_with(name, ?) OR starts_with(name, ?)",
            [PREFIX, ONE_TYPE_PREFIX],
        ).fetchall()
    except duckdb.IOException as error:
        raise DataError(f"a listed segment cannot be read: {error}") from None
    for path, column_name in found:
        split = SplitColumn.named(column_name)
        if split is not None:
            splits[by_base[Path(path).name]].append(split)
    return {name: tuple(sorted(split)) for name, split in splits.items()}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, type) of the table's columns, in order."""
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE {table}").fetchall()]


class Segments:
    """The segment files of one store, kept by its writer: `seal` runs inside the writer's
    transaction, `prune` in a transaction of its own."""

    def __init__(self, data_dir: Path, con: duckdb.DuckDBPyConnection) -> None:
        self._dir = data_dir / SEGMENT_DIR
        self._files = self._listed(con)
        self._keys = _split_keys(con, self._files)  # by file
        numbers = [_number(name) for names in self._files.values() for name in names]
        self._next = 1 + max(numbers, default=0)
        self._unlink_later: list[Path] = []
        # A store sealed by an older steth has views without the split keys' columns.
        for view, names in self._files.items():
            if names:
                con.execute(view_ddl(con, view, self._view_files(view, self._files)))

    @staticmethod
    def _listed(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
        files: dict[str, list[str]] = {view: [] for view in ROW_TABLES}
        for view, name in con.execute(
            "SELECT view_name, file FROM segments ORDER BY file"
        ).fetchall():
            files[view].append(name)
        return files

    def remove_orphans(self) -> None:
        """Delete segment files no committed transaction listed (a crash mid-write left them)."""
        if not self._dir.is_dir():
            return
        keep = {Path(name).name for names in self._files.values() for name in names}
        keep |= {path.name for path in self._unlink_later}
        orphans = [path for path in self._dir.iterdir() if path.name not in keep]
        for path in orphans:
            path.unlink()

    def seal(self, con: duckdb.DuckDBPyConnection, view: str, rows: pa.Table | None) -> None:
        """Write `rows` (an Arrow table; None: the view's whole rows table) to a new segment.

        Lists it and replaces the view in the caller's open transaction; `rows` None also
        empties the rows table. The file is on disk (fsynced) before the caller can commit.
        """
        self._dir.mkdir(exist_ok=True)
        name = f"{SEGMENT_DIR}/{view}-{self._next:06d}.parquet"
        self._next += 1  # never reused, even after a rollback: DuckDB caches file metadata
        path = self._dir.parent / name
        table = ROW_TABLES[view]
        sealing_table = rows is None
        if rows is None:
            rows = con.sql(f"SELECT * FROM {table}").to_arrow_table()
        listed = self._files[view]
        previous = [split.key for split in self._keys[listed[-1]]] if listed else ()
        keys = SegmentKeys(rows)
        splits = keys.columns(keys.after(tuple(previous)))
        # The table's columns in its order, so that every file unions with it, then the split
        # keys'. Rows from an older write-ahead log may lack a newer (nullable) column: it is
        # written as nulls.
        from stethoscope.model.schema import TABLES  # pyarrow: a writer's, not a reader's

        model = TABLES[view]
        fields = [model.field(name) for name, _ in _columns(con, table)]
        spans = view == "spans"
        filtered = TRACE_COLUMNS if spans else ()  # a log record's trace: ~1 record each
        batches = split_batches(keys, splits)
        write_segment(path, iter(batches), fields, deltas=spans, bloom=filtered)
        fsync_path(path)
        fsync_path(self._dir)
        time = TIME_COLUMNS[view]
        con.execute(
            f"""INSERT INTO segments
                SELECT ?, ?, count(*), count(*) FILTER (WHERE imported), min({time}), max({time})
                FROM read_parquet(?)""",
            [name, view, str(path)],
        )
        _index_traces(con, name)
        if sealing_table:
            con.execute(f"DELETE FROM {table}")
        self._files[view].append(name)
        self._keys[name] = splits
        con.execute(view_ddl(con, view, self._view_files(view, self._files)))

    def seal_rows(self, con: duckdb.DuckDBPyConnection) -> None:
        """Seal what waits in each rows table, each in a transaction of its own: a writer
        closing leaves a store of segments alone, ~58 B a span (benchmark traffic) where the
        table takes ~93. The next writer takes those rows back (`unseal_short`)."""
        for view, table in ROW_TABLES.items():
            [(waiting,)] = con.execute(f"SELECT count(*) FROM {table}").fetchall()
            if not waiting:
                continue
            try:
                with _transaction(con):
                    self.seal(con, view, None)
            except BaseException as error:
                self.rolled_back(con)
                if isinstance(error, duckdb.Error | OSError):
                    raise DataError(
                        f"could not seal the {waiting:,} rows waiting in {table} (they stay "
                        f"there, stored): {error}"
                    ) from None
                raise

    def unseal_short(self, con: duckdb.DuckDBPyConnection, segment_rows: int) -> None:
        """Move the rows of segments shorter than `segment_rows` (sealed by a writer closing)
        back into their rows tables and delete the files, in one transaction: they are sealed
        again with the rows that follow, so that restarts do not leave a trail of small files.
        """
        short = con.execute(
            "SELECT view_name, file FROM segments WHERE rows < ? ORDER BY file", [segment_rows]
        ).fetchall()
        if not short:
            return
        names = [name for _, name in short]
        with _transaction(con):
            for view, name in short:
                table = ROW_TABLES[view]
                columns = [column_name for column_name, _ in _columns(con, table)]
                con.execute(
                    f"INSERT INTO {table} SELECT {_table_columns(columns, self._keys[name])} "
                    "FROM read_parquet(?)",
                    [name],
                )
            files = self._unlist(con, names)
        self._forget(files, names)
        for name in names:
            # No reader has the store open while a writer does (DuckDB's file lock); a file
            # left by a crash here is an orphan, deleted when a writer next opens the store.
            (self._dir.parent / name).unlink(missing_ok=True)

    def _unlist(self, con: duckdb.DuckDBPyConnection, names: list[str]) -> dict[str, list[str]]:
        """Take the segments `names` out of the segments table, the trace index and the views,
        in the caller's transaction; by view, the files left (for `_forget` once committed)."""
        con.execute("DELETE FROM segments WHERE list_contains(?, file)", [names])
        con.execute("DELETE FROM segment_traces WHERE list_contains(?, file)", [names])
        gone = set(names)
        files = {
            view: [name for name in listed if name not in gone]
            for view, listed in self._files.items()
        }
        for view in ROW_TABLES:
            if files[view] != self._files[view]:
                con.execute(view_ddl(con, view, self._view_files(view, files)))
        return files

    def _forget(self, files: dict[str, list[str]], names: list[str]) -> None:
        """Keep `files` (from `_unlist`) as the listed ones, once its transaction committed."""
        self._files = files
        for name in names:
            del self._keys[name]

    def _view_files(self, view: str, files: dict[str, list[str]]) -> dict[str, Split]:
        """The view's files of `files` with the keys each split out, for `view_ddl`."""
        return {name: self._keys[name] for name in files[view]}

    def rolled_back(self, con: duckdb.DuckDBPyConnection) -> None:
        """Forget segments a rolled-back transaction listed; their files become orphans."""
        self._files = self._listed(con)
        self._keys = _split_keys(con, self._files)
        self.remove_orphans()

    def prune(self, con: duckdb.DuckDBPyConnection, older_than_ns: int) -> int:
        """Unlist segments of live rows all older than the cutoff; the rows they held.

        Their files are deleted at the next prune, not now: a query that read the view just
        before may still be opening them.
        """
        for path in self._unlink_later:
            path.unlink(missing_ok=True)
        self._unlink_later = []
        with _transaction(con):
            found = con.execute(
                "SELECT file, rows FROM segments WHERE imported_rows = 0 AND max_time_ns < ? "
                "ORDER BY file",
                [older_than_ns],
            ).fetchall()
            gone = [name for name, _ in found]
            files = self._unlist(con, gone)
        self._forget(files, gone)
        self._unlink_later = [self._dir.parent / name for name in gone]
        return sum(rows for _, rows in found)


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """A transaction of its own on `con`: committed when the block ends, rolled back when it
    raises."""
    con.execute("BEGIN")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _number(name: str) -> int:
    """The sequence number in `segments/VIEW-NNNNNN.parquet`."""
    return int(Path(name).stem.rpartition("-")[2])
