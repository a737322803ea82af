"""The embedded DuckDB store (the default)."""
