"""Template variables of many lines at once: RE2 over Arrow columns, per template text.

`templates.extract_variables` matches one line against its template's regular expression with
Python's `re`, about 2 us a line and a third of mining. Here the lines of one template text are
matched as one column with pyarrow's RE2 (`extract_regex`), whose leftmost-first semantics give
the same groups as a backtracking engine for the same lazy pattern. RE2's classes are ASCII
while Python's `re` and `str.split` know Unicode, so only lines of printable ASCII (and tabs)
take this path; the others, and any line RE2 does not match, go through `extract_variables`.
Either way the answer is the same (the tests compare them).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stethoscope.logs.templates import WILDCARD, Template, extract_variables

__all__ = ["VARIABLES", "variables_of"]

VARIABLES = pa.list_(pa.string())
# Lines by what RE2 may do with them: printable ASCII with single spaces; printable ASCII with
# tabs, space runs or spaces at the ends (normalised first); anything else (left to Python).
PLAIN, SPACED, OTHER = 0, 1, 2
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def variables_of(column: pa.Array, groups: Mapping[str, Sequence[int] | np.ndarray]) -> pa.Array:
    """Each line's variables under its template text, null for lines in no group.

    `groups` maps a template text (as it was when its lines were placed) to the indices of
    those lines in `column`.
    """
    pieces: list[pa.Array] = [pa.nulls(1, VARIABLES)]  # what ungrouped lines point at
    positions = np.zeros(len(column), dtype=np.int64)
    kinds = _line_kinds(column)
    start = 1
    for text, indices in groups.items():
        rows = np.asarray(indices, dtype=np.int64)
        for found, piece in _text_variables(text, column, rows, kinds[rows]):
            positions[found] = np.arange(start, start + len(found))
            start += len(found)
            pieces.append(piece)
    return pa.concat_arrays(pieces).take(pa.array(positions))


def _line_kinds(column: pa.Array) -> np.ndarray:
    """PLAIN, SPACED or OTHER for each line, from the bytes of the whole column at once.

    Checking printability and spacing with RE2 line by line took half of mining's time.
    """
    _, offsets_buffer, data_buffer = column.buffers()
    width = np.int64 if pa.types.is_large_string(column.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, width)[column.offset : column.offset + len(column) + 1]
    data = (
        np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    )
    starts, ends = offsets[:-1].astype(np.int64), offsets[1:].astype(np.int64)
    other = _any_between(((data < 0x20) & (data != 0x09)) | (data > 0x7E), starts, ends)
    space = data == 0x20
    runs = (data == 0x09) | (space & np.append(space[1:], False))  # (may cross into the next line)
    spaced = _any_between(runs, starts, ends)
    nonempty = ends > starts
    spaced[nonempty] |= space[starts[nonempty]] | space[ends[nonempty] - 1]  # to be trimmed
    kinds = np.where(spaced, SPACED, PLAIN).astype(np.int8)
    kinds[other | ~np.asarray(column.is_valid(), dtype=bool)] = OTHER
    return kinds


def _any_between(flags: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each [start, end) of consecutive pieces (each starts where the last ended), whether
    any flag in it is set."""
    found = np.zeros(len(starts), bool)
    nonempty = np.flatnonzero(ends > starts)
    if len(nonempty):
        # Empty pieces are left out: between the others, reduceat's slices are the pieces.
        last = ends[nonempty[-1]]
        found[nonempty] = np.logical_or.reduceat(flags[:last], starts[nonempty])
    return found


def _text_variables(
    text: str, column: pa.Array, rows: np.ndarray, kinds: np.ndarray
) -> list[tuple[np.ndarray, pa.Array]]:
    """(rows, their variables) pieces covering `rows`: matched by RE2 where it may be."""
    pattern = _re2_pattern(text)
    if pattern is None:  # no wildcard token: no variables
        return [(rows, _empty_lists(len(rows)))]
    pieces = []
    left = [rows[kinds == OTHER]]
    for kind in (PLAIN, SPACED):
        subset = rows[kinds == kind]
        if not len(subset):
            continue
        lines = column.take(pa.array(subset))
        if kind == SPACED:  # as `str.split()` then joining with single spaces would
            lines = pc.utf8_trim(pc.replace_substring_regex(lines, r"[ \t]+", " "), " ")
        matched = pc.extract_regex(lines, pattern)
        found = np.asarray(matched.is_valid(), dtype=bool)
        if found.any():
            pieces.append((subset[found], _as_lists(matched.filter(pa.array(found)))))
        left.append(subset[~found])
    slow = np.concatenate(left)
    if len(slow):
        template = Template("", text.split(" "))
        lines_left = column.take(pa.array(slow)).to_pylist()
        values = [extract_variables(template, line) for line in lines_left]
        pieces.append((slow, pa.array(values, VARIABLES)))
    return pieces


@functools.lru_cache(maxsize=4096)
def _re2_pattern(text: str) -> str | None:
    """The RE2 form of `templates._template_regex(text)`, groups named as `extract_regex` needs."""
    if WILDCARD not in text.split(" "):
        return None
    parts = [
        "".join("\\" + c if c in _RE2_SPECIAL else c for c in part) for part in text.split(WILDCARD)
    ]
    body = parts[0] + "".join(f"(?P<v{i}>.*?){part}" for i, part in enumerate(parts[1:]))
    return rf"(?s)\A{body}\z"


def _as_lists(structs: pa.StructArray) -> pa.Array:
    """A struct of k string fields per row as a list of k strings per row."""
    rows, width = len(structs), structs.type.num_fields
    values = pa.concat_arrays([structs.field(i) for i in range(width)])
    order = (np.arange(rows)[:, None] + np.arange(width)[None, :] * rows).ravel()
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values.take(pa.array(order)))


def _empty_lists(count: int) -> pa.Array:
    offsets = pa.array(np.zeros(count + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array([], pa.string()))
