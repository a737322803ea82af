"""Spans and log records sealed in Parquet files ("segments"): about half the disk, slower reads.

Measured on spans the benchmark sent through `steth up` (issue 2, 2026-11-26): DuckDB's own
table takes 94 B/span (its codecs do not entropy-code, and it refuses ZSTD for nested columns
such as attributes); DuckDB's Parquet writer with ZSTD takes 52.1 B/span for the same rows at
2.86 us of CPU a row, about what inserting them into the table costs (3.2-3.6 us a span for
`DuckDBStore.write`). Most of that is the writer's encoding, not ZSTD: LZ4 and Snappy cost as
much for 95-99 B/span. Also measured, not taken: ZSTD level 6, 48.8 B/span at 4.11 us; one row
group of 245,760 rows, 47.4 at 3.37; Parquet version 2 pages, 61.1 (its delta encodings lose
to dictionaries here). Log records through `steth up`: 53.8 B a record against 94.5.

Queries pay for it (the benchmark's 10M-span store, same period): a trace by id took 57.2 ms
in-process against 16.3, 186.5 through a running server against 95.9; the filtered traces
search 271 ms against 56; building the store ran at 65.8k spans/s against 75.3k. The writer
keeps bloom filters for the dictionary-encoded trace ids and the reader skips the row groups
they rule out, but it decodes every column of a row group it keeps (no page skipping), so one
trace costs a row group; smaller row groups lose the gain (32,768 rows: 64.1 B/span, the trace
17.5 ms). Sorting a segment by trace id made it larger. Hence `steth up --compact-store`: the
operator chooses.

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

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from stethoscope.store.durable import fsync_path

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ROW_TABLES", "SEGMENTS_DDL", "SEGMENT_DIR", "TIME_COLUMNS", "Segments", "view_ddl"]

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


def view_ddl(con: duckdb.DuckDBPyConnection, view: str, files: list[str]) -> str:
    """The `view` over its rows table and its segment `files` (relative paths)."""
    table = ROW_TABLES[view]
    if not files:
        return f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {table}"
    # The table's column list on both sides: a union by position of two `*` would silently
    # pair different columns if their orders ever parted.
    columns = ", ".join(f'"{name}"' for name, _ in _columns(con, table))
    listed = ", ".join(_quoted(name) for name in files)
    return (
        f"CREATE OR REPLACE VIEW {view} AS SELECT {columns} FROM {table} "
        f"UNION ALL SELECT {columns} FROM read_parquet([{listed}])"
    )


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, type) of the table's columns, in order."""
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE {table}").fetchall()]


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Segments:
    """The segment files of one store, kept by its writer: `seal` runs inside the writer's
    transaction, `prune` in a transaction of its own."""

    def __init__(self, data_dir: Path, con: duckdb.DuckDBPyConnection) -> None:
        self._dir = data_dir / SEGMENT_DIR
        self._files = self._listed(con)
        numbers = [_number(name) for names in self._files.values() for name in names]
        self._next = 1 + max(numbers, default=0)
        self._unlink_later: list[Path] = []

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
        # The table's columns in its order, so that every file unions with it. Rows from an
        # older write-ahead log may lack a newer (nullable) column: it is written as nulls.
        have = set(rows.column_names) if rows is not None else None
        columns = ", ".join(
            f'"{column}"' if have is None or column in have else f'NULL::{kind} AS "{column}"'
            for column, kind in _columns(con, table)
        )
        source = "rows" if rows is not None else table
        con.execute(
            f"COPY (SELECT {columns} FROM {source}) TO {_quoted(str(path))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        fsync_path(path)
        fsync_path(self._dir)
        time = TIME_COLUMNS[view]
        con.execute(
            f"""INSERT INTO segments
                SELECT ?, ?, count(*), count(*) FILTER (WHERE imported), min({time}), max({time})
                FROM read_parquet(?)""",
            [name, view, str(path)],
        )
        if rows is None:
            con.execute(f"DELETE FROM {table}")
        self._files[view].append(name)
        con.execute(view_ddl(con, view, self._files[view]))

    def rolled_back(self, con: duckdb.DuckDBPyConnection) -> None:
        """Forget segments a rolled-back transaction listed; their files become orphans."""
        self._files = self._listed(con)
        self.remove_orphans()

    def prune(self, con: duckdb.DuckDBPyConnection, older_than_ns: int) -> int:
        """Unlist segments of live rows all older than the cutoff; the rows they held.

        Their files are deleted at the next prune, not now: a query that read the view just
        before may still be opening them.
        """
        for path in self._unlink_later:
            path.unlink(missing_ok=True)
        self._unlink_later = []
        con.execute("BEGIN")
        try:
            found = con.execute(
                "DELETE FROM segments WHERE imported_rows = 0 AND max_time_ns < ? "
                "RETURNING view_name, file, rows",
                [older_than_ns],
            ).fetchall()
            gone = {name for _, name, _ in found}
            files = {
                view: [n for n in names if n not in gone] for view, names in self._files.items()
            }
            for view in sorted({view for view, _, _ in found}):
                con.execute(view_ddl(con, view, files[view]))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._files = files
        self._unlink_later = [self._dir.parent / name for name in sorted(gone)]
        return sum(rows for _, _, rows in found)


def _number(name: str) -> int:
    """The sequence number in `segments/VIEW-NNNNNN.parquet`."""
    return int(Path(name).stem.rpartition("-")[2])
