"""A segment's rows into a Parquet file: pyarrow's writer, with an encoding chosen per column.

DuckDB's `COPY ... TO` wrote these files until 2026-11-28, with the choices below; pyarrow
writes the same columns, types and encodings with about a third less CPU. The two alternated
on the same Arrow tables of benchmark traffic (2026-11-28): a 122,880-span segment 2.41-3.16
-> 1.52-1.59 us of CPU a span (five each) and 55.67 -> 56.27 B a span; 122,880 log records
1.18-1.21 -> 0.76-0.81 us a record (three each) and 44.19 -> 44.36 B. DuckDB reads the rows
and their types back the same, and finds a trace in them as fast (8.2 against 8.8 ms).

Encodings by rule, the ones DuckDB's writer chose on that traffic (on the span segment they
differed in one split column and the boolean): a dictionary for a column whose sample has
few distinct values (ids of resources, names, status, trace ids: a trace has ~10 spans), else,
in span files, delta encodings (ids and times as deltas, strings by length) in Parquet
version 2 pages, and in log record files plain values in version 1 pages (a log record's body
did worse in version 2: 47.1 B against 42.5). Nested columns (attributes, events, links) go
without dictionaries.

Row groups of 24,576 rows (five a segment; one a batch, `attribute_columns.BATCH_ROWS`), in span
files each with its trace ids' bloom filters: a column chunk is one page, which a filter cannot
skip, and a lookup decodes every column of each row group its bloom filters do not rule out
(pages of 20,000 rows read in 12 ms against 30, but took 11% more bytes). One honest segment
(benchmark traffic, no row group repeating a request; written by DuckDB each way, 2026-11-27):
spans 58.25 B/span and a lookup 30-31 ms (one row group of 122,880, version 1) against 58.02
B/span and 8-13 ms; log records 42.61 B and 33-34 ms against 42.49 and 11. Smaller groups cost
bytes (16,384: 58.6 B/span).

ZSTD at level 1: a segment's write is the writer's largest step, and the writer is the one
stage every record passes through. Written by DuckDB five times alternating the levels, best
of five (2026-11-27): spans 2.51-3.07 -> 2.15-2.52 us of CPU a span at level 1 against 3, and
56.0-56.1 -> 55.7 B (measured, not explained); log records 1.36-1.62 -> 1.03-1.25 us and
41.5-42.5 -> 43.8-44.0 B (level 2: 1.30-1.43 us, 42.1-42.8 B).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["TRACE_COLUMNS", "write_segment"]

# A column gets a dictionary when fewer than this share of a sample's values are distinct: on
# benchmark traffic DuckDB's writer gave one to columns of 0.06-0.08 (trace ids of spans) and
# not to those of 0.49 and over (trace ids of log records, whose dictionaries came out larger).
_DISTINCT_SHARE = 0.25
_SAMPLE_ROWS = 4_096
TRACE_COLUMNS = ("trace_hi", "trace_lo")
# A bloom filter's false positive rate: DuckDB's filters were about this size (4 KB a row group
# of a trace id column; 0.05 made them half that, and a lookup decodes a group each one lets by).
_BLOOM_FPP = 0.01
# DuckDB wrote a column chunk as one page; so does this (pages are not what a reader skips).
_PAGE_BYTES = 100 << 20


def write_segment(
    path: Path,
    batches: Iterator[pa.RecordBatch],
    fields: Sequence[pa.Field],
    *,
    deltas: bool,
    bloom: Sequence[str] = (),
) -> None:
    """Write `batches` (row groups) to `path`: `fields` (the rows table's, in order; a field
    the rows lack is written as nulls), then the batches' other columns (split keys).

    `deltas`: delta encodings for the columns without a dictionary, in version 2 pages;
    `bloom`: the columns with a bloom filter in each row group.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    first = next(batches, None)
    if first is None:
        raise ValueError("a segment needs rows")
    given = {field.name: field for field in first.schema}
    named = {field.name for field in fields}
    own = [given.get(field.name, field) for field in fields]
    schema = pa.schema(own + [field for field in first.schema if field.name not in named])
    first = _shaped(first, schema)
    dictionary, encodings = _encodings(first, deltas=deltas)
    filters = {
        name: {"ndv": max(1, pc.count_distinct(first.column(name)).as_py()), "fpp": _BLOOM_FPP}
        for name in bloom
    }
    with pq.ParquetWriter(
        str(path),
        schema,
        compression="zstd",
        compression_level=1,
        use_dictionary=dictionary,
        column_encoding=encodings,
        data_page_version="2.0" if deltas else "1.0",
        data_page_size=_PAGE_BYTES,
        bloom_filter_options=filters,
    ) as writer:
        writer.write_batch(first)
        for batch in batches:
            writer.write_batch(_shaped(batch, schema))


def _shaped(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with `schema`'s columns in its order, nulls for those it lacks."""
    import pyarrow as pa

    present = set(batch.schema.names)
    return pa.RecordBatch.from_arrays(
        [
            batch.column(field.name)
            if field.name in present
            else pa.nulls(batch.num_rows, field.type)
            for field in schema
        ],
        schema=schema,
    )


def _encodings(batch: pa.RecordBatch, *, deltas: bool) -> tuple[list[str], dict[str, str]]:
    """The columns to write with a dictionary, and the encoding of every other leaf column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dictionary: list[str] = []
    encodings: dict[str, str] = {}
    for field in batch.schema:
        if pa.types.is_list(field.type) or pa.types.is_struct(field.type):
            for path, leaf in _leaves(field.name, field.type):
                encodings[path] = _without_dictionary(leaf, deltas=deltas)
        elif pa.types.is_boolean(field.type):
            continue  # the writer's default (one bit a value)
        else:
            sample = batch.column(field.name).slice(0, _SAMPLE_ROWS)
            values = len(sample) - sample.null_count
            if pc.count_distinct(sample).as_py() < _DISTINCT_SHARE * max(values, 1):
                dictionary.append(field.name)
            else:
                encodings[field.name] = _without_dictionary(field.type, deltas=deltas)
    return dictionary, encodings


def _leaves(path: str, kind: pa.DataType) -> Iterator[tuple[str, pa.DataType]]:
    """The Parquet column paths under a nested column, with their types."""
    import pyarrow as pa

    if pa.types.is_list(kind):
        yield from _leaves(f"{path}.list.element", kind.value_type)
    elif pa.types.is_struct(kind):
        for child in kind:
            yield from _leaves(f"{path}.{child.name}", child.type)
    else:
        yield path, kind


def _without_dictionary(kind: pa.DataType, *, deltas: bool) -> str:
    import pyarrow as pa

    if deltas and pa.types.is_integer(kind):
        return "DELTA_BINARY_PACKED"
    if deltas and (pa.types.is_string(kind) or pa.types.is_binary(kind)):
        return "DELTA_LENGTH_BYTE_ARRAY"
    return "PLAIN"
