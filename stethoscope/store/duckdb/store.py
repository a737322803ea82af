"""The embedded DuckDB store: one file, one writing process, batched atomic commits."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from stethoscope.errors import DataError
from stethoscope.store.base import LogQuery, MetricQuery, TraceQuery, Window
from stethoscope.store.duckdb import queries

if TYPE_CHECKING:  # writing needs pyarrow; reading (the CLI's path) does not load it
    import pyarrow as pa

    from stethoscope.model.batch import SignalBatch

STORE_FILE = "steth.duckdb"
_ORIGIN_TABLES = {"resources": "resource_id", "scopes": "scope_id"}
_TIME_COLUMNS = {"spans": "start_ns", "logs": "time_ns", "metric_points": "time_ns"}


class DuckDBStore:
    """A Store over `<data>/steth.duckdb`; reads use their own cursors, safe across threads."""

    def __init__(self, data_dir: Path, *, read_only: bool = False, memory_limit: str = "1GB"):
        self.path = Path(data_dir) / STORE_FILE
        if read_only and not self.path.exists():
            raise DataError(f"no store at {self.path} (run `steth up --data {data_dir}` first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(
                str(self.path),
                read_only=read_only,
                config={"memory_limit": memory_limit, "threads": 2},
            )
        except duckdb.IOException as error:
            raise DataError(f"cannot open {self.path}: {error}") from None
        self._lock = threading.Lock()
        if not read_only:
            from stethoscope.store.duckdb.schema import create_schema

            create_schema(self._con)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection for one reader thread."""
        return self._con.cursor()

    def write(self, batches: list[SignalBatch], *, applied_seq: int | None = None) -> None:
        """Commit all batches in one transaction, with the WAL position they reach."""
        import pyarrow as pa

        grouped: dict[str, list[pa.Table]] = {}
        for batch in batches:
            for name, table in batch.tables.items():
                if table.num_rows:
                    grouped.setdefault(name, []).append(table)
        with self._lock:
            con = self._con
            con.execute("BEGIN")
            try:
                for name, tables in grouped.items():
                    combined = pa.concat_tables(tables)  # noqa: F841 - read by DuckDB
                    key = _ORIGIN_TABLES.get(name)
                    if key:
                        con.execute(
                            f"INSERT INTO {name} SELECT DISTINCT ON ({key}) * FROM combined "
                            f"WHERE {key} NOT IN (SELECT {key} FROM {name})"
                        )
                    else:
                        con.execute(f"INSERT INTO {name} SELECT * FROM combined")
                if applied_seq is not None:
                    con.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('wal_applied_seq', ?)", [applied_seq]
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def applied_seq(self) -> int:
        """The last WAL sequence number whose data is committed (0 when none)."""
        found = (
            self.cursor().execute("SELECT value FROM meta WHERE key = 'wal_applied_seq'").fetchone()
        )
        return int(found[0]) if found else 0

    def prune(self, *, older_than_ns: int) -> int:
        """Delete live (not imported) rows older than the cutoff."""
        deleted = 0
        with self._lock:
            for table, column in _TIME_COLUMNS.items():
                found = self._con.execute(
                    f"DELETE FROM {table} WHERE NOT imported AND {column} < ?", [older_than_ns]
                ).fetchone()
                deleted += int(found[0]) if found else 0
        return deleted

    def checkpoint(self) -> None:
        """Fold DuckDB's own log into the database file."""
        with self._lock:
            self._con.execute("CHECKPOINT")

    def services(self, window: Window) -> list[dict[str, Any]]:
        return queries.services(self.cursor(), window)

    def traces(self, query: TraceQuery) -> list[dict[str, Any]]:
        return queries.traces(self.cursor(), query)

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        return queries.trace(self.cursor(), trace_id)

    def trace_ids(self, prefix: str) -> list[str]:
        return queries.trace_ids_with_prefix(self.cursor(), prefix)

    def logs(self, query: LogQuery) -> list[dict[str, Any]]:
        return queries.logs(self.cursor(), query)

    def metrics(self, query: MetricQuery) -> dict[str, Any]:
        return queries.metrics(self.cursor(), query)

    def close(self) -> None:
        """Checkpoint and close the file."""
        with self._lock:
            self._con.close()
