"""A segment's common attribute keys, one Parquet column each.

Why: in the `attributes` list every key's values share one value column, so a request id that
never repeats sits between status codes and routes that always do, and the compressor sees
neither well. Split one column per key, the same spans took less disk (measurements in
segments.py).

So a segment keeps in `attributes` only the entries it did not split out; each split key `k`
gets a column `attributes.k` of STRUCT(type, value), null where a row lacks the key, or, when
every entry of the key in the segment has one type T and a value, `attributes:T.k` holding the
value alone (`SplitColumn`): a STRUCT's two columns each keep their own record of which rows
have the key, and on a segment of the benchmark's spans the second cost 1.9 B a span (57.96
-> 56.02) and made a trace lookup decode 34 columns where 17 do (13.5-17.6 ms against
9.4-14.4). A key is split out when at least 1/64 of the segment's rows carry it (at most 64
keys, the most common first), or when the segment before split it (`SegmentKeys.after`). A
row's first entry of the key moves; a repeat of it (OTLP forbids them; senders still send
them) stays in the list. The views rebuild `attributes` from the columns (`rebuilt`), so
queries read the list they always did; a row's split keys come first there, in key order (OTLP
attributes are a map: their order carries nothing), and a repeat after them, as it came.

The split runs over batches of BATCH_ROWS rows streamed into the Parquet writer: done over a
whole segment at once, its arrays raised the server's peak memory by 100-300 MiB (benchmark runs).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = [
    "ONE_TYPE_PREFIX",
    "PREFIX",
    "SegmentKeys",
    "SplitColumn",
    "column",
    "literal",
    "quoted",
    "rebuilt",
    "split_batches",
    "split_text",
]

PREFIX = "attributes."
ONE_TYPE_PREFIX = "attributes:"  # then the type, a dot and the key: a column of values alone
MIN_SHARE = 1 / 64
MAX_KEYS = 64  # codes fit 8 bits with "not split" (see _split)
BATCH_ROWS = 24_576  # a segment's row group (segment_writer.py): each batch is written as one


class SegmentKeys:
    """The attribute keys of a segment's rows, each entry's hashed once.

    Which keys are common, the types of their values and which entries move to their columns
    are all read from one dictionary encoding of the keys, where three hash passes (the counts,
    the types, each batch's split) had read them. A 122,880-row segment of benchmark traffic,
    the split's CPU before and after, alternated in one process (2026-11-28): spans 1.44 ->
    1.31 us a row (least of 15), log records 0.39 -> 0.33.
    """

    def __init__(self, rows: pa.Table) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        entries = [chunk.flatten() for chunk in rows.column("attributes").chunks]
        keys = pc.dictionary_encode(
            pa.chunked_array([entry.field("key") for entry in entries], pa.string())
        )
        # One memo table over all chunks: every chunk's indices point into the last one's
        # dictionary. A null key gets -1, which `codes` maps to "not split".
        self.names: list[str] = (
            keys.chunk(keys.num_chunks - 1).dictionary.to_pylist() if keys.num_chunks else []
        )
        self._index = np.concatenate(
            [np.zeros(0, np.int32)]
            + [chunk.indices.fill_null(-1).to_numpy().astype(np.int32) for chunk in keys.chunks]
        )
        self._entries = entries
        self.rows = rows  # the table the keys were read from

    def common(self) -> list[str]:
        """The keys to split out of these rows alone, sorted."""
        import numpy as np

        counts = np.bincount(self._index[self._index >= 0], minlength=len(self.names))
        # Most common first; a tie in the order the keys came (as `Counter.most_common`).
        ranked = np.argsort(-counts, kind="stable")[:MAX_KEYS]
        wanted = MIN_SHARE * self.rows.num_rows
        return sorted(self.names[i] for i in ranked if counts[i] >= wanted)

    def after(self, previous: tuple[str, ...]) -> tuple[str, ...]:
        """The keys these rows split out, after a segment that split `previous`.

        Their common keys and the previous segment's while at most MAX_KEYS (a key these rows
        lack costs a column of nulls), else the common ones alone: the views read the files of
        one set of keys together, so few sets keep queries fast.
        """
        common = self.common()
        joined = set(common) | set(previous)
        return tuple(sorted(joined if len(joined) <= MAX_KEYS else common))

    def codes(self, keys: Sequence[str]) -> np.ndarray:
        """Each entry's key as its place in `keys`, len(keys) for a key not among them."""
        import numpy as np

        place = {key: code for code, key in enumerate(keys)}
        # The last slot is the null key's (index -1).
        table = np.array([place.get(name, len(keys)) for name in self.names] + [len(keys)])
        return table.astype(np.uint8)[self._index]

    def columns(self, keys: Sequence[str]) -> tuple[SplitColumn, ...]:
        """The columns of `keys`: the values alone for a key whose entries all have one type
        and a value, else type and value (a key no row has among them)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        kinds = 257  # a type (0-255), or none: a null type or value
        given = pa.chunked_array([part.field("type") for part in self._entries], pa.uint8())
        values = pa.chunked_array([part.field("value") for part in self._entries], pa.string())
        types = given.fill_null(0).to_numpy().astype(np.int32)
        valid = pc.is_valid(values).to_numpy()
        if given.null_count:
            valid &= pc.is_valid(given).to_numpy()
        types[~valid] = kinds - 1
        # Entries by key and type; those of no key in `keys` count in a last block, unread.
        codes = self.codes(keys).astype(np.int32)
        counts = np.bincount(codes * kinds + types, minlength=(len(keys) + 1) * kinds)
        columns = []
        for code, key in enumerate(keys):
            found = np.flatnonzero(counts[code * kinds : (code + 1) * kinds])
            one = len(found) == 1 and found[0] < kinds - 1
            columns.append(SplitColumn(key, int(found[0]) if one else None))
        return tuple(columns)


class SplitColumn(NamedTuple):
    """A key a segment splits out, and the one type of all its values when its column holds
    the values alone (None: a STRUCT of type and value)."""

    key: str
    type: int | None = None

    @property
    def name(self) -> str:
        """The column's name in the segment."""
        if self.type is None:
            return PREFIX + self.key
        return f"{ONE_TYPE_PREFIX}{self.type}.{self.key}"

    @classmethod
    def named(cls, name: str) -> SplitColumn | None:
        """The split column a segment's column `name` is (None: not one)."""
        if name.startswith(PREFIX):
            return cls(name[len(PREFIX) :])
        if name.startswith(ONE_TYPE_PREFIX):
            kind, _, key = name[len(ONE_TYPE_PREFIX) :].partition(".")
            return cls(key, int(kind))
        return None


def split_batches(keys: SegmentKeys, columns: Sequence[SplitColumn]) -> pa.RecordBatchReader:
    """The rows `keys` were read from, in batches, the entries of the split `columns`' keys
    moved to them."""
    import pyarrow as pa

    rows = keys.rows
    schema = rows.schema
    for split in columns:
        kind = _value_type() if split.type is None else pa.string()
        schema = schema.append(pa.field(split.name, kind))
    codes = keys.codes([split.key for split in columns])

    def each() -> Iterator[pa.RecordBatch]:
        done = 0  # entries of the batches before
        for batch in _batches(rows):
            count = len(batch.column("attributes").flatten())
            yield _split(batch, columns, codes[done : done + count], schema)
            done += count

    return pa.RecordBatchReader.from_batches(schema, each())


def _batches(rows: pa.Table) -> Iterator[pa.RecordBatch]:
    """`rows` in batches of BATCH_ROWS, each copied into one chunk only as it is read: the rows
    of a segment come in the many small chunks of the requests they arrived in, and combining
    the whole segment first held a second copy of it while it was written (Arrow's peak over a
    segment of benchmark spans 72.8 MiB that way, 20.1 this way; log records 32.7 and 9.1)."""
    for start in range(0, rows.num_rows, BATCH_ROWS):
        yield from rows.slice(start, BATCH_ROWS).combine_chunks().to_batches()


def _split(
    batch: pa.RecordBatch, splits: Sequence[SplitColumn], codes: np.ndarray, schema: pa.Schema
) -> pa.RecordBatch:
    """One batch of `split_batches`; `codes`: its entries' keys' places in `splits`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    value_type = _value_type()
    at_list = batch.schema.get_field_index("attributes")
    lists = batch.column(at_list)
    entries = lists.flatten()
    length = batch.num_rows
    parents = np.repeat(np.arange(length, dtype=np.int32), np.diff(lists.offsets.to_numpy()))
    others = len(splits)  # the code of every entry that stays in the list
    # Entries by key, rows in order within a key (a stable sort: numpy sorts 8-bit integers by
    # radix), so that a key's entries are one run and a repeat follows its row's first entry.
    order = np.argsort(codes, kind="stable")
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
    for code, split in enumerate(splits):
        start, end = (ends[code - 1] if code else 0), ends[code]
        alone = split.type is not None
        if start == end:
            columns.append(pa.nulls(length, pa.string() if alone else value_type))
        elif end - start == length:
            run = values.slice(start, end - start)
            columns.append(run.field("value") if alone else run)
        else:
            spread = _spread(values.slice(start, end - start), rows_of[start:end], length)
            columns.append(spread.field("value") if alone else spread)
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


def rebuilt(columns: Sequence[SplitColumn]) -> str:
    """SQL for the `attributes` list of a segment row, over its split `columns`."""
    if not columns:
        return "attributes"
    items = ", ".join(_entry(split) for split in columns)
    return f"list_concat(list_filter([{items}], lambda a: a IS NOT NULL), attributes)"


def _entry(split: SplitColumn) -> str:
    """SQL for the attribute struct of a split column's key in a segment row (null when the row
    lacks the key)."""
    name = quoted(split.name)
    key = literal(split.key)
    if split.type is not None:
        kind, value = f"CAST({split.type} AS UTINYINT)", name
    else:
        kind, value = f"struct_extract({name}, 'type')", f"struct_extract({name}, 'value')"
    return (
        f"CASE WHEN {name} IS NOT NULL THEN {{'key': {key}, 'type': {kind}, 'value': {value}}} END"
    )


def split_text(split: SplitColumn) -> str:
    """SQL for a split column's value, as the views show every split key: text, null where the
    row lacks the key. (Shown as a STRUCT of type and value, rebuilt from a column of values
    alone, it made `steth services` 22% slower and a `traces` search 15%, 3M benchmark spans:
    what reads a key's value wants the value alone.)"""
    name = quoted(split.name)
    return name if split.type is not None else f"struct_extract({name}, 'value')"


def column(key: str) -> str:
    """The SQL name of `key`'s column, as the views show it."""
    return quoted(PREFIX + key)


def quoted(name: str) -> str:
    """`name` as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """`text` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
