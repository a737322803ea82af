"""Spans and log records sealed in Parquet files ("segments"): 0.6x the disk, slower reads.

Measured on the benchmark's traffic through `steth up` (issue 2, 2026-11-26), every id, request
id and timestamp new on every send: DuckDB's own table takes 92-94 B/span (its codecs do not
entropy-code, and it refuses ZSTD for nested columns such as attributes). DuckDB's Parquet
writer with ZSTD takes 61-64 B/span for rows in arrival order and 55-57 sorted by service,
then start (`SEGMENT_ORDER`: one service's attribute values resemble each other, and times
come in order); log records 61 -> 49 B sorted by service, template and time, against 95 in the
table. Sorting costs about 0.6 us a span done by Arrow, on top of the 3.2-4.0 us of
`DuckDBStore.write`; an ORDER BY in the COPY moved every wide row and cost 1.4-1.7. (An
earlier benchmark repeated span ids and request ids every 51,200 spans, and Parquet's
dictionaries made segments look 52 B/span.) Also measured, on real segments copied to 12M
spans with new trace ids: sorted by service, name and start, 52.1 B/span, but a trace by id
took 94 ms instead of 79 (in service then start order) and 50 (arrival order): DuckDB skips
decoding the 2,048-row vectors without a match, so the fewer vectors a trace's spans sit in,
the cheaper it is. Smaller row groups (30,720) lose the trace ids' dictionaries in sorted
segments, and with them the bloom filters a lookup prunes by: 54.1 B, 138 ms.

Queries pay for it (10M-span store; two pairs of benchmark runs, sorted then arrival order,
13:04-13:30, and a table at 12:35): a trace by id took 64-65 ms in-process against 37-56
unsorted and 16 in a table, 157-161 ms through a running server against 135-137 and 107; the
filtered traces search 199-207 ms against 195-219 and 69. Sorting cost the writer enough to
fall behind at times: spans/s 0.90-0.98x of arrival order. Hence `steth up --compact-store`:
the operator chooses.

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
# Rows alike sit together inside a segment, so that ZSTD finds their likeness (the attributes of
# one service, the bodies of one template); spans stay in time order within a service, which
# keeps a trace's spans in one service near each other (see the module docstring).
SEGMENT_ORDER = {"spans": ("service", "start_ns"), "logs": ("service", "template_id", "time_ns")}

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
        whole_table = rows is None
        if rows is None:
            rows = con.sql(f"SELECT * FROM {table}").to_arrow_table()
        # The table's columns in its order, so that every file unions with it. Rows from an
        # older write-ahead log may lack a newer (nullable) column: it is written as nulls.
        columns = ", ".join(
            f'"{column}"' if column in rows.column_names else f'NULL::{kind} AS "{column}"'
            for column, kind in _columns(con, table)
        )
        ordered = _ordered(rows, view)  # noqa: F841 (read by name in the COPY)
        con.execute(
            f"COPY (SELECT {columns} FROM ordered) TO {_quoted(str(path))} "
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
        if whole_table:
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


def _ordered(rows: pa.Table, view: str) -> pa.Table:
    """`rows` in the view's SEGMENT_ORDER (by the columns they have).

    Sorted by Arrow, not by an ORDER BY in the COPY: DuckDB's sort moves every wide row and
    cost 1.4-1.7 us a span on top of `DuckDBStore.write`'s 3.2-4.0, Arrow's 0.6.
    """
    import pyarrow.compute as pc  # not at the top: the CLI's read path imports this module

    keys = [(column, "ascending") for column in SEGMENT_ORDER[view] if column in rows.column_names]
    return rows.take(pc.sort_indices(rows, keys))


def _number(name: str) -> int:
    """The sequence number in `segments/VIEW-NNNNNN.parquet`."""
    return int(Path(name).stem.rpartition("-")[2])
