"""SQL that reads rows' attributes: a key with a column of its own from that column.

Why: a view over split rows (attribute_columns.py) rebuilds the `attributes` list on every row
it is asked for, and searching that list cost 6-8x the search of a stored list (2M benchmark
spans: an error count 1.76 s against 0.35, an attribute filter 1.92 against 0.24), where the
key's own column answers in 15 ms. So a view that has split rows also shows each split key's
column and the list of the entries left (`UNSPLIT`), and the read side asks for one key's value
through `AttributeSql`: from the key's column where it has one, else from the entries left. A
relation without those columns (metric points, a store's view from before) is read from its
`attributes` list as before.

The column holds a row's first entry of its key (a repeat stays in the list), so the value of
a key is the column's, else the first in the list, as the list gave it before the split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stethoscope.store.duckdb.attribute_columns import PREFIX, column, literal

if TYPE_CHECKING:
    import duckdb

__all__ = ["UNSPLIT", "AttributeSql"]

UNSPLIT = "unsplit_attributes"
# An HTTP answer's status code, under its current and its older semantic-convention name.
HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")


class AttributeSql:
    """SQL for the attributes of one relation's rows (a view, or a table with `alias`)."""

    def __init__(
        self, split: frozenset[str] | None, alias: str = "", *, structs: bool = False
    ) -> None:
        """`split`: the keys with a column of their own; None: only the `attributes` list.
        `structs`: those columns are STRUCTs of type and value (views made before 2026-11-27
        afternoon), not the value alone."""
        self._split = split
        self._prefix = f"{alias}." if alias else ""
        self._structs = structs

    @classmethod
    def of(cls, cursor: duckdb.DuckDBPyConnection, view: str, alias: str = "") -> AttributeSql:
        """For the rows of `view` (or table) as the store has it now."""
        found = cursor.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?", [view]
        ).fetchall()
        if UNSPLIT not in {name for name, _ in found}:
            return cls(None, alias)
        split = {name[len(PREFIX) :]: kind for name, kind in found if name.startswith(PREFIX)}
        structs = any(kind.startswith("STRUCT") for kind in split.values())
        return cls(frozenset(split), alias, structs=structs)

    def _list(self) -> str:
        return self._prefix + ("attributes" if self._split is None else UNSPLIT)

    def _column(self, key: str) -> str | None:
        """SQL for the value in `key`'s column, when it has one."""
        if self._split is None or key not in self._split:
            return None
        own = self._prefix + column(key)
        return f"{own}.value" if self._structs else own

    def value(self, key: str) -> str:
        """The text value of the row's `key` (NULL when it lacks it); `key` is ours."""
        listed = f"[a.value FOR a IN {self._list()} IF a.key = {literal(key)}][1]"
        own = self._column(key)
        return listed if own is None else f"CASE WHEN {own} IS NULL THEN {listed} ELSE {own} END"

    def has(self, key: str, value: str) -> tuple[str, tuple[str, ...]]:
        """A condition, with its parameters, for rows with an entry `key` = `value` (the
        user's: both travel as parameters)."""
        listed = f"len([1 FOR a IN {self._list()} IF a.key = ? AND a.value = ?]) > 0"
        own = self._column(key)
        if own is None:
            return listed, (key, value)
        return f"({own} = ? OR {listed})", (value, key, value)

    def http_error(self) -> str:
        """A condition: the row answered an HTTP 5xx (NULL when it names no status).

        The status values are picked out first and cast as one short list: a cast inside the
        per-entry condition runs on every entry and cost ~2.5 times more on a full scan.
        """
        keys = ", ".join(literal(key) for key in HTTP_STATUS_KEYS)
        statuses = f"[a.value FOR a IN {self._list()} IF a.key IN ({keys})]"
        listed = f"list_max(TRY_CAST({statuses} AS DOUBLE[]))"
        owns = [own for own in map(self._column, HTTP_STATUS_KEYS) if own is not None]
        if not owns:
            return f"{listed} >= 500"
        # greatest() passes over NULLs: a key the row lacks, a value that is no number
        cast = ", ".join(f"TRY_CAST({own} AS DOUBLE)" for own in owns)
        return f"greatest({cast}, {listed}) >= 500"

    def span_error(self) -> str:
        """A condition: the span is an error, by its status or by an HTTP 5xx answer."""
        return f"({self._prefix}status_code = 2 OR {self.http_error()})"
