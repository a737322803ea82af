"""A segment's common attribute keys, one Parquet column each.

Why: in the `attributes` list every key's values share one value column, so a request id that
never repeats sits between status codes and routes that always do, and the compressor sees
neither well. Split one column per key, the same spans took less disk (measurements in
segments.py).

So a segment keeps in `attributes` only the entries it did not split out; each split key `k`
gets a column `attributes.k` of STRUCT(type, value), null where a row lacks the key. A key is
split out when at least 1/64 of the segment's rows carry it (at most 64 keys, the most common
first), or when the segment before split it (`keys_for`). A row's first entry of the key
moves; a repeat of it (OTLP forbids them; senders still send them) stays in the list. The
views rebuild `attributes` from the columns (`rebuilt`), so queries read the list they always
did; a row's split keys come first there, in key order (OTLP attributes are a map: their order
carries nothing), and a repeat after them, as it came.

The split runs over batches of 16,384 rows streamed into the Parquet writer: done over a whole
segment at once, its arrays raised the server's peak memory by 100-300 MiB (benchmark runs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = [
    "PREFIX",
    "SPLIT_TYPE",
    "column",
    "common_keys",
    "keys_for",
    "literal",
    "rebuilt",
    "split_batches",
]

PREFIX = "attributes."
MIN_SHARE = 1 / 64
MAX_KEYS = 64  # codes fit 8 bits with "not split" (see _split)
BATCH_ROWS = 16_384
SPLIT_TYPE = "STRUCT(type UTINYINT, value VARCHAR)"  # a split key's column in SQL (_value_type)


def common_keys(rows: pa.Table) -> list[str]:
    """The attribute keys to split out of `rows`, sorted."""
    import pyarrow.compute as pc

    counts: Counter[str] = Counter()
    for chunk in rows.column("attributes").chunks:
        found = pc.value_counts(chunk.flatten().field("key"))
        names, numbers = found.field("values").to_pylist(), found.field("counts").to_pylist()
        counts.update(dict(zip(names, numbers, strict=True)))
    wanted = MIN_SHARE * rows.num_rows
    return sorted(key for key, count in counts.most_common(MAX_KEYS) if count >= wanted)


def keys_for(rows: pa.Table, previous: tuple[str, ...]) -> tuple[str, ...]:
    """The keys a segment of `rows` splits out, after one that split `previous`.

    Its common keys and the previous segment's while at most MAX_KEYS (a key these rows lack
    costs a column of nulls), else the common ones alone: the views read the files of one set
    of keys together, so few sets keep queries fast.
    """
    common = common_keys(rows)
    joined = set(common) | set(previous)
    return tuple(sorted(joined if len(joined) <= MAX_KEYS else common))


def split_batches(rows: pa.Table, keys: Sequence[str]) -> pa.RecordBatchReader:
    """`rows` in batches with the entries of `keys` moved to columns of their own."""
    import pyarrow as pa

    schema = rows.schema
    for key in keys:
        schema = schema.append(pa.field(PREFIX + key, _value_type()))
    batches = (_split(batch, keys, schema) for batch in rows.to_batches(BATCH_ROWS))
    return pa.RecordBatchReader.from_batches(schema, batches)


def _split(batch: pa.RecordBatch, keys: Sequence[str], schema: pa.Schema) -> pa.RecordBatch:
    """One batch of `split_batches`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    value_type = _value_type()
    at_list = batch.schema.get_field_index("attributes")
    lists = batch.column(at_list)
    entries = lists.flatten()
    length = batch.num_rows
    parents = np.repeat(np.arange(length, dtype=np.int32), np.diff(lists.offsets.to_numpy()))
    others = len(keys)  # the code of every entry that stays in the list
    wanted = pa.array(list(keys), pa.string())
    codes = pc.index_in(entries.field("key"), value_set=wanted).fill_null(others).to_numpy()
    # Entries by key, rows in order within a key (a stable sort: numpy sorts 8-bit integers by
    # radix), so that a key's entries are one run and a repeat follows its row's first entry.
    order = np.argsort(codes.astype(np.uint8), kind="stable")
    sorted_codes = np.repeat(np.arange(others + 1), np.bincount(codes, minlength=others + 1))
    sorted_rows = parents[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (sorted_rows[1:] != sorted_rows[:-1]) | (sorted_codes[1:] != sorted_codes[:-1])
    moved = first & (sorted_codes < others)
    keep = np.ones(len(order), dtype=bool)
    keep[order[moved]] = False
    values = pc.take(
        pa.StructArray.from_arrays(
            [entries.field("type"), entries.field("value")], fields=list(value_type)
        ),
        pa.array(order[moved]),
    )
    rows_of = sorted_rows[moved]
    ends = np.cumsum(np.bincount(sorted_codes[moved], minlength=others))
    columns = []
    for code in range(others):
        start, end = (ends[code - 1] if code else 0), ends[code]
        if start == end:
            columns.append(pa.nulls(length, value_type))
        elif end - start == length:
            columns.append(values.slice(start, end - start))
        else:
            columns.append(_spread(values.slice(start, end - start), rows_of[start:end], length))
    offsets = np.zeros(length + 1, dtype=np.int32)
    np.cumsum(np.bincount(parents[keep], minlength=length), out=offsets[1:])
    rest = pa.ListArray.from_arrays(
        pa.array(offsets), entries.filter(pa.array(keep)), type=lists.type
    )
    arrays = [*batch.columns[:at_list], rest, *batch.columns[at_list + 1 :], *columns]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _value_type() -> pa.DataType:
    """A split key's column: its entries' type and value, null where a row lacks the key."""
    import pyarrow as pa

    return pa.struct([pa.field("type", pa.uint8()), pa.field("value", pa.string())])


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
    kinds[at] = (types.fill_null(0) if types.null_count else types).to_numpy()  # fill_null copies
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


def rebuilt(keys: Sequence[str]) -> str:
    """SQL for the `attributes` list of a segment row, over the columns of `keys`."""
    if not keys:
        return "attributes"
    items = ", ".join(_entry(key) for key in keys)
    return f"list_concat(list_filter([{items}], lambda a: a IS NOT NULL), attributes)"


def _entry(key: str) -> str:
    """SQL for the attribute struct of `key` in a segment row (null when it lacks the key)."""
    name = column(key)
    return (
        f"CASE WHEN {name} IS NOT NULL THEN {{'key': {literal(key)}, "
        f"'type': struct_extract({name}, 'type'), 'value': struct_extract({name}, 'value')}} END"
    )


def column(key: str) -> str:
    """The SQL name of `key`'s column."""
    return '"' + (PREFIX + key).replace('"', '""') + '"'


def literal(text: str) -> str:
    """`text` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
