"""The DuckDB tables, derived from the Arrow schemas in `stethoscope.model` (one truth).

Versions: 1 is the first store; 2 adds `logs.template_id` and `logs.template_params` (appended,
so that migrated and new tables share one column order) and the `templates` table; 3 keeps
spans and log records in Parquet segments and the `span_rows` and `log_rows` tables, read
through the `spans` and `logs` views (segments.py); 4 adds `segment_traces`, the segments'
trace index, filled from the segments listed when a writer migrates. A writer migrates an
older store when it opens it; a read-only open leaves it as it is and the queries fill in what
it lacks (see `DuckDBStore.schema_version`).
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from stethoscope.errors import DataError
from stethoscope.store.duckdb.segments import (
    ROW_TABLES,
    SEGMENTS_DDL,
    TRACE_INDEX_DDL,
    index_listed_traces,
)

__all__ = ["SCHEMA_VERSION", "create_schema", "read_schema_version"]

SCHEMA_VERSION = 4

META_DDL = "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL)"

# One row per (service, template): what the miners need to assign the same ids after a restart
# (restored in `ordinal` order, the order they were founded in) and what `steth templates`
# shows. Counts are not kept here: they are counted from `logs` for the window asked about.
TEMPLATES_DDL = """
    CREATE TABLE IF NOT EXISTS templates (
        service VARCHAR NOT NULL,
        template_id UBIGINT NOT NULL,
        ordinal INTEGER NOT NULL,
        template VARCHAR NOT NULL,
        overflow BOOLEAN NOT NULL,
        first_seen_ns BIGINT NOT NULL,
        last_seen_ns BIGINT NOT NULL,
        example VARCHAR NOT NULL,
        PRIMARY KEY (service, template_id)
    )
"""

# Each step: SQL statements, or functions of the connection for what SQL alone cannot do.
_MIGRATIONS: dict[int, tuple[str | Callable[[duckdb.DuckDBPyConnection], None], ...]] = {
    1: (
        "ALTER TABLE logs ADD COLUMN template_id UBIGINT",
        "ALTER TABLE logs ADD COLUMN template_params VARCHAR[]",
        TEMPLATES_DDL,
    ),
    2: (
        *(f"ALTER TABLE {view} RENAME TO {table}" for view, table in ROW_TABLES.items()),
        SEGMENTS_DDL,
        *(f"CREATE VIEW {view} AS SELECT * FROM {table}" for view, table in ROW_TABLES.items()),
    ),
    3: (TRACE_INDEX_DDL, index_listed_traces),
}


def read_schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The version recorded in the store, or None for a store without one (new)."""
    tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "meta" not in tables:
        return None
    found = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(found[0]) if found else None


def check_readable(version: int | None) -> None:
    """DataError for a store written by a newer steth."""
    if version is not None and version > SCHEMA_VERSION:
        raise DataError(
            f"store schema version {version} is newer than the supported {SCHEMA_VERSION}; "
            "use a matching steth or a fresh --data directory"
        )


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every missing table, migrate an older store, and record the schema version."""
    version = read_schema_version(con)
    check_readable(version)
    con.execute("BEGIN")
    try:
        con.execute(META_DDL)
        if version is not None:
            _migrate(con, version)
        _create_missing(con)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _migrate(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """Bring a store from `version` up to SCHEMA_VERSION, one step at a time."""
    while version < SCHEMA_VERSION:
        for step in _MIGRATIONS[version]:
            if isinstance(step, str):
                con.execute(step)
            else:
                step(con)
        version += 1


def _create_missing(con: duckdb.DuckDBPyConnection) -> None:
    import pyarrow as pa  # only writers get here: readers keep pyarrow out of start-up

    from stethoscope.model.schema import TABLES

    existing = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    for name, schema in TABLES.items():
        table = ROW_TABLES.get(name, name)
        if table not in existing:
            empty = pa.Table.from_pylist([], schema=schema)  # noqa: F841 - read by DuckDB
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM empty")
    con.execute(TEMPLATES_DDL)
    con.execute(SEGMENTS_DDL)
    con.execute(TRACE_INDEX_DDL)
    for view, table in ROW_TABLES.items():
        con.execute(f"CREATE VIEW IF NOT EXISTS {view} AS SELECT * FROM {table}")
