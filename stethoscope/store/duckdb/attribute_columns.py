"""A segment's common attribute keys, one Parquet column each.

Why: in the `attributes` list every key's values share one value column, so a request id that
never repeats sits between status codes and routes that always do, and the compressor sees
neither well. Split one column per key, the same spans took less disk (measurements in
segments.py).

So a segment keeps in `attributes` only the entries of keys it did not split out; each split
key `k` gets a column `attributes.k` of STRUCT(type, value), null where a row lacks the key.
A key is split out when at least 1/64 of the segment's rows carry it and none carries it twice
(at most 64 keys, the most common first). The views rebuild `attributes` from the columns
(`rebuilt`), so queries read the list they always did; a row's split keys come first there, in
key order (OTLP attributes are a map: their order carries nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = ["PREFIX", "column", "rebuilt", "split"]

PREFIX = "attributes."
MIN_SHARE = 1 / 64
MAX_KEYS = 64


def split(rows: pa.Table) -> tuple[pa.Table, list[str]]:
    """`rows` with its common attribute keys moved to columns of their own; those keys, sorted."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    column = rows.column("attributes")
    # combine_chunks copies even a single chunk: the whole column, measured (47 MB a segment).
    lists = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    entries = lists.flatten()
    if not len(entries):
        return rows, []
    # int32 and numpy throughout: these arrays are the split's memory above its output.
    parents = np.repeat(np.arange(len(lists), dtype=np.int32), np.diff(lists.offsets.to_numpy()))
    encoded = pc.dictionary_encode(entries.field("key"))
    names = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy()
    # Entries by key, rows in order within a key (a stable sort: numpy sorts 16-bit integers
    # by radix), so that each key's entries are one run and a row carrying a key twice shows
    # as two neighbours with the same row.
    order = np.argsort(codes.astype(np.uint16) if len(names) <= 1 << 16 else codes, kind="stable")
    counts = np.bincount(codes, minlength=len(names))
    ends = np.cumsum(counts)
    rows_in_order = parents[order]
    repeats = np.flatnonzero(rows_in_order[1:] == rows_in_order[:-1]) + 1
    twice = np.zeros(len(names), dtype=bool)
    twice[np.searchsorted(ends, repeats, side="right")] = True
    common = [
        code
        for code in np.argsort(-counts, kind="stable")[:MAX_KEYS]
        if counts[code] >= MIN_SHARE * rows.num_rows and not twice[code]
    ]
    if not common:
        return rows, []
    values = pa.StructArray.from_arrays(
        [entries.field("type"), entries.field("value")], names=["type", "value"]
    ).take(pa.array(order))
    del order
    columns: dict[str, pa.Array] = {}
    for code in sorted(common, key=lambda code: names[code]):
        run = values.slice(ends[code] - counts[code], counts[code])
        if counts[code] < rows.num_rows:
            run = _spread(run, rows_in_order[ends[code] - counts[code] : ends[code]], len(rows))
        columns[PREFIX + names[code]] = run
    split_out = np.zeros(len(names), dtype=bool)
    split_out[common] = True
    keep = ~split_out[codes]
    offsets = np.zeros(rows.num_rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(parents[keep], minlength=rows.num_rows), out=offsets[1:])
    rest = pa.ListArray.from_arrays(pa.array(offsets), entries.filter(pa.array(keep)))
    table = rows.set_column(
        rows.schema.get_field_index("attributes"), "attributes", rest.cast(lists.type)
    )
    for name, column in columns.items():
        table = table.append_column(name, column)
    return table, [name[len(PREFIX) :] for name in columns]


def _spread(run: pa.StructArray, at: np.ndarray, length: int) -> pa.StructArray:
    """`run`, whose entries belong to rows `at` (ascending), as `length` rows, null elsewhere.

    Built from buffers: the strings stay where they are and only their offsets are spread
    (a `take` per key cost the split about half its time, measured on the benchmark's spans).
    """
    import numpy as np
    import pyarrow as pa

    present = np.zeros(length, dtype=bool)
    present[at] = True
    types, text = run.field("type"), run.field("value")
    kinds = np.zeros(length, dtype=np.uint8)
    kinds[at] = types.fill_null(0).to_numpy()
    ends = np.frombuffer(text.buffers()[1], dtype=np.int32)
    ends = ends[text.offset : text.offset + len(text) + 1]
    sizes = np.zeros(length, dtype=np.int32)
    sizes[at] = np.diff(ends)
    offsets = np.empty(length + 1, dtype=np.int32)
    offsets[0] = ends[0]
    np.cumsum(sizes, out=offsets[1:])
    offsets[1:] += ends[0]

    def valid(inner: pa.Array) -> pa.Buffer:
        rows = present.copy()
        if inner.null_count:
            rows[at] = inner.is_valid().to_numpy(zero_copy_only=False)
        return pa.py_buffer(np.packbits(rows, bitorder="little"))

    return pa.StructArray.from_arrays(
        [
            pa.Array.from_buffers(pa.uint8(), length, [valid(types), pa.py_buffer(kinds)]),
            pa.Array.from_buffers(
                pa.string(), length, [valid(text), pa.py_buffer(offsets), text.buffers()[2]]
            ),
        ],
        names=["type", "value"],
        mask=pa.array(~present),
    )


def rebuilt(keys: list[str]) -> str:
    """SQL for the `attributes` list of a segment row, over the columns of `keys`."""
    if not keys:
        return "attributes"
    items = ", ".join(_entry(key) for key in keys)
    return f"list_concat(list_filter([{items}], lambda a: a IS NOT NULL), attributes)"


def _entry(key: str) -> str:
    """SQL for the attribute struct of `key` in a segment row (null when it lacks the key)."""
    name = column(key)
    return (
        f"CASE WHEN {name} IS NOT NULL THEN {{'key': {_literal(key)}, "
        f"'type': struct_extract({name}, 'type'), 'value': struct_extract({name}, 'value')}} END"
    )


def column(key: str) -> str:
    """The SQL name of `key`'s column."""
    return '"' + (PREFIX + key).replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
