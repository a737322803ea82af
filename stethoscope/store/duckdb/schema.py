"""The DuckDB tables, derived from the Arrow schemas in `stethoscope.model` (one truth)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from stethoscope.model.schema import TABLES

SCHEMA_VERSION = 1

META_DDL = "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL)"


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table that is missing and record the schema version."""
    con.execute(META_DDL)
    existing = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    for name, schema in TABLES.items():
        if name not in existing:
            empty = pa.Table.from_pylist([], schema=schema)  # noqa: F841 - read by DuckDB
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM empty")
    found = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if found is None:
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
    elif found[0] != SCHEMA_VERSION:
        from stethoscope.errors import DataError

        raise DataError(
            f"store schema version {found[0]} is not the supported {SCHEMA_VERSION}; "
            "use a matching steth or a fresh --data directory"
        )
