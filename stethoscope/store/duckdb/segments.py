"""Spans sealed in Parquet files ("segments"): under 60 bytes a span, and faster trace lookups.

Measured on the benchmark's spans (issue 2, 2026-11-26): DuckDB's own table takes 94 B/span
(its codecs do not entropy-code, and it refuses ZSTD for nested columns such as attributes).
DuckDB's Parquet writer with ZSTD and version 2 pages takes 48.8 B/span for the same rows, and
writing them costs about what inserting them into the table does (`DuckDBStore.write` of 1.2M
spans in whole row groups: 3.6-4.0 us of CPU a span, against 3.2-3.6): mostly the writer's
encoding, not ZSTD (LZ4 and Snappy cost as much, for 95-99 B/span). One COPY of 245,760 rows
cost 4.1 us a row, of 122,880 2.9: so one segment per row group. Finding one trace among 10
million spans in 82 segments took 7.4 ms (median of 20), against 17.5 ms in the table: the
writer keeps bloom filters for the dictionary-encoded trace ids, and the reader skips every
row group they rule out. Sorting a segment by trace id made it larger (64.6 B/span) and slower.

So whole row groups of spans go to `<data>/segments/spans-NNNNNN.parquet`, the rest of a write
to the `span_rows` table, which is sealed into a segment as soon as it holds a row group's
worth. The `segments` table lists the files a query may read, and the `spans` view unions them
with `span_rows`. A file is listed, and the view replaced, in the transaction that commits its
rows' write-ahead log position: after a crash a file is either listed and its rows never
replayed, or an orphan (deleted when a writer next opens the store) whose rows are replayed.
Paths in the view are relative to the data directory (DuckDB's `file_search_path`), so a copied
data directory reads anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ROWS_TABLE", "SEGMENTS_DDL", "SEGMENT_DIR", "Segments", "view_ddl"]

SEGMENT_DIR = "segments"
ROWS_TABLE = "span_rows"  # spans not sealed yet, in DuckDB's own table
_TIME_COLUMN = "start_ns"

SEGMENTS_DDL = """
    CREATE TABLE IF NOT EXISTS segments (
        file VARCHAR PRIMARY KEY,
        rows BIGINT NOT NULL,
        imported_rows BIGINT NOT NULL,
        min_time_ns BIGINT NOT NULL,
        max_time_ns BIGINT NOT NULL
    )
"""


def view_ddl(con: duckdb.DuckDBPyConnection, files: list[str]) -> str:
    """The `spans` view over `span_rows` and the segment `files` (relative paths)."""
    if not files:
        return f"CREATE OR REPLACE VIEW spans AS SELECT * FROM {ROWS_TABLE}"
    # The table's column list on both sides: a union by position of two `*` would silently
    # pair different columns if their orders ever parted.
    columns = _columns(con)
    listed = ", ".join(_quoted(name) for name in files)
    return (
        f"CREATE OR REPLACE VIEW spans AS SELECT {columns} FROM {ROWS_TABLE} "
        f"UNION ALL SELECT {columns} FROM read_parquet([{listed}])"
    )


def _columns(con: duckdb.DuckDBPyConnection) -> str:
    names = [row[0] for row in con.execute(f"DESCRIBE {ROWS_TABLE}").fetchall()]
    return ", ".join(f'"{name}"' for name in names)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Segments:
    """The segment files of one store; `seal` and `prune` run inside the writer's transaction."""

    def __init__(self, data_dir: Path, con: duckdb.DuckDBPyConnection) -> None:
        self._dir = data_dir / SEGMENT_DIR
        self._files = [row[0] for row in con.execute("SELECT file FROM segments").fetchall()]
        self._next = 1 + max((_number(name) for name in self._files), default=0)
        self._unlink_later: list[Path] = []

    def remove_orphans(self) -> int:
        """Delete segment files no committed transaction listed (a crash mid-write left them)."""
        if not self._dir.is_dir():
            return 0
        keep = {Path(name).name for name in self._files} | {p.name for p in self._unlink_later}
        orphans = [path for path in self._dir.iterdir() if path.name not in keep]
        for path in orphans:
            path.unlink()
        return len(orphans)

    def seal(self, con: duckdb.DuckDBPyConnection, rows: pa.Table | None) -> None:
        """Write `rows` (an Arrow table; None: everything in `span_rows`) to a new segment.

        Lists it and replaces the view in the caller's open transaction; `rows` None also
        empties `span_rows`. The file is on disk (fsynced) before the caller can commit.
        """
        self._dir.mkdir(exist_ok=True)
        name = f"{SEGMENT_DIR}/spans-{self._next:06d}.parquet"
        self._next += 1  # never reused, even after a rollback: DuckDB caches file metadata
        path = self._dir.parent / name
        # The table's columns in its order, so that every file unions with it; rows lacking
        # one fail here, loudly, instead of writing a file the view cannot read.
        columns = _columns(con)
        source = "rows" if rows is not None else ROWS_TABLE
        con.execute(
            f"COPY (SELECT {columns} FROM {source}) TO {_quoted(str(path))} "
            "(FORMAT parquet, COMPRESSION zstd, PARQUET_VERSION v2)"
        )
        _fsync(path)
        _fsync(self._dir)
        con.execute(
            f"""INSERT INTO segments
                SELECT ?, count(*), count(*) FILTER (WHERE imported),
                       min({_TIME_COLUMN}), max({_TIME_COLUMN})
                FROM read_parquet(?)""",
            [name, str(path)],
        )
        if rows is None:
            con.execute(f"DELETE FROM {ROWS_TABLE}")
        self._files.append(name)
        con.execute(view_ddl(con, self._files))

    def rolled_back(self, con: duckdb.DuckDBPyConnection) -> None:
        """Forget segments a rolled-back transaction listed; their files become orphans."""
        self._files = [row[0] for row in con.execute("SELECT file FROM segments").fetchall()]
        self.remove_orphans()

    def prune(self, con: duckdb.DuckDBPyConnection, older_than_ns: int) -> int:
        """Unlist segments of live spans all older than the cutoff; the rows they held.

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
                "RETURNING file, rows",
                [older_than_ns],
            ).fetchall()
            gone = {name for name, _ in found}
            files = [name for name in self._files if name not in gone]
            if gone:
                con.execute(view_ddl(con, files))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._files = files
        self._unlink_later = [self._dir.parent / name for name in sorted(gone)]
        return sum(rows for _, rows in found)


def _number(name: str) -> int:
    """The sequence number in `segments/spans-NNNNNN.parquet`."""
    return int(Path(name).stem.rpartition("-")[2])


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
