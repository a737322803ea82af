"""The stateless first step of template mining, done where records are decoded.

Masking a line (`templates.mask`) needs no miner state, so the decode workers do it and the
writer, which owns the miners, only places the masked text. The masked text travels with the
records as the transient `MASKED_COLUMN` of the logs table: the writer drops it before the
store sees the records. A table without it (an older write-ahead log, a source that does not
mask) is masked by the writer itself, with the same result.

A whole request is masked at once with RE2 (pyarrow.compute), and the result must be exactly
what `templates.mask` gives line by line: the masked text decides template ids. RE2 has no
look-around and its classes are ASCII-only, so the Python expression is rebuilt from passes
that need neither, equal under the conditions below (the tests check it on every loghub line,
the benchmark's bodies and by property):

- Only ASCII lines are masked here, with the ASCII characters Python calls space spelled out.
- A *run* is a maximal stretch of non-delimiters. Every variable is a whole run (it has a digit,
  starts with ``/`` or ``word://``, or follows ``=``) or a span that starts on a delimiter or at
  a run start (a parenthesised aside, a date). Found leftmost without a look-behind, such a
  match starts where Python's would, as long as no path or date could start inside a run;
  lines where one could are passed on. Values after ``=`` come second (their run is untouched
  by then), and runs of wildcards are collapsed last, as in `templates.mask`.
- Dates are rare in bodies but costly to look for: a first try leaves them out and passes on
  the lines that may hold one; those are tried again with dates.
- What this cannot reproduce goes through `templates.mask` (`_UNDECIDED`): a date that ends
  inside a run (``12:00:00.5``), a duration a digit run would not cover (``<1 ms``,
  ``5 sec``), a path-like run with no digit (``TCP/IP``), and blank or non-ASCII lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stethoscope.logs.templates import (
    _DAY,
    _DELIMS,
    _MONTH,
    _UNIT,
    MINED_LINE_CHARS,
    mask,
    mined_line,
)
from stethoscope.model.codes import ValueType

__all__ = [
    "MASKED_COLUMN",
    "masked_column",
    "masked_lines",
    "masked_texts",
]

MASKED_COLUMN = "masked_line"
# What Python's str `\s` matches among ASCII characters (RE2's `\s` lacks \v and \x1c-\x1f).
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f "
_DELIM = _DELIMS.replace(r"\s", _SPACE)
_S = f"[{_SPACE}]"
_D = f"[{_DELIM}]"
_N = f"[^{_DELIM}]"
_ASIDE = rf"{_S}*\((?:[^()]*[0-9][^()]*)?\)"
_DATE = f"(?:{_DAY}{_S}+)?{_MONTH}{_S}+[0-9]+{_S}+[0-9:]+(?:{_S}+[0-9]{{4}})?"
_PATH = f"(?:/|[0-9A-Za-z_]+://){_N}*"
_DIGITS = f"{_N}*[0-9]{_N}*"
# Variables but values after `=`, in the order `templates._VARIABLE` tries them.
_TOKENS = f"{_ASIDE}|{_PATH}|{_DIGITS}"
_TOKENS_AND_DATES = f"{_ASIDE}|{_DATE}|{_PATH}|{_DIGITS}"
_VALUES = f"={_N}+"
_RUNS = rf"<\*>(?:[{_SPACE},]*<\*>)+"  # `templates._RUNS`
_NOT_HERE = (
    f"^{_S}*$",  # blank: no template
    r"[^\x00-\x7f]",
    f"[<>][0-9][0-9.:]*{_S}?{_UNIT}(?:{_D}|$)",  # durations wider than their digit run
    f"[0-9][0-9.:]*{_S}{_UNIT}(?:{_D}|$)",
    f"(?:^|{_D})[^/0-9{_DELIM}]+/[^0-9{_DELIM}]*(?:{_D}|$)",  # a slash inside a run, no digit
)
_UNDECIDED = "|".join((*_NOT_HERE, f"{_MONTH}{_S}+[0-9]"))  # ... or maybe a date
_UNDECIDED_WITH_DATES = "|".join(
    (
        *_NOT_HERE,
        f"{_MONTH}{_S}+[0-9]+{_S}+[0-9:]+(?:[^0-9:{_DELIM}]|{_S}+[0-9]{{4}}{_N})",  # ends in a run
        f"{_N}(?:{_DAY}|{_MONTH}){_S}",  # may start inside a run
    )
)


def masked_lines(types: Sequence[int], bodies: Sequence[str | None]) -> list[str | None]:
    """Each record's mined line masked, None for records that get no template."""
    try:
        return masked_column(types, bodies).to_pylist()
    except (pa.ArrowException, UnicodeError):  # lone surrogates: no UTF-8, so no RE2 either
        return _masked_one_by_one(types, bodies)


def masked_column(types: Sequence[int], bodies: Sequence[str | None]) -> pa.Array:
    """`masked_lines` as a string array; raises UnicodeError on a body that is not UTF-8."""
    return masked_texts(np.fromiter(types, np.int64, len(types)), pa.array(bodies, pa.string()))


def masked_texts(types: np.ndarray, bodies: pa.Array) -> pa.Array:
    """`masked_lines` for bodies already in a string array (as decoding makes them)."""
    if len(types) != len(bodies):
        raise ValueError(f"{len(types)} body types for {len(bodies)} bodies")
    texts = _first_lines(bodies)
    lengths = pc.binary_length(texts).fill_null(0).to_numpy(zero_copy_only=False)
    wanted = (types == ValueType.STRING) & (lengths > 0)
    masked, undecided = _mask(texts, _TOKENS, _UNDECIDED)
    undecided |= lengths > MINED_LINE_CHARS
    undecided &= wanted
    if undecided.any():
        rows = np.flatnonzero(undecided)
        retried = _masked_again([line or "" for line in texts.take(rows).to_pylist()])
        masked = pc.replace_with_mask(masked, pa.array(undecided), pa.array(retried, pa.string()))
    if wanted.all():
        return masked
    return pc.if_else(pa.array(wanted), masked, pa.scalar(None, pa.string()))


def _first_lines(bodies: pa.Array) -> pa.Array:
    """Each body up to its first newline (the line that is mined)."""
    several = pc.match_substring(bodies, "\n").fill_null(False).to_numpy(zero_copy_only=False)
    if not several.any():
        return bodies
    rows = np.flatnonzero(several)
    firsts = [body.partition("\n")[0] for body in bodies.take(rows).to_pylist()]
    return pc.replace_with_mask(bodies, pa.array(several), pa.array(firsts, pa.string()))


def _mask(texts: pa.Array, tokens: str, undecided: str) -> tuple[pa.Array, np.ndarray]:
    """Each text masked as a line, and which of them this may have masked differently."""
    masked = pc.replace_substring_regex(texts, tokens, "<*>")
    masked = pc.replace_substring_regex(masked, _VALUES, "=<*>")
    masked = pc.replace_substring_regex(masked, _RUNS, "<*>")
    passed_on = pc.match_substring_regex(texts, undecided).fill_null(False)
    return masked, passed_on.to_numpy(zero_copy_only=False)


def _masked_again(lines: list[str]) -> list[str | None]:
    """The lines the first try passed on: with dates, else by `templates.mask`."""
    mined = [mined_line(line, MINED_LINE_CHARS) for line in lines]
    masked, undecided = _mask(
        pa.array([line or "" for line in mined], pa.string()),
        _TOKENS_AND_DATES,
        _UNDECIDED_WITH_DATES,
    )
    out: list[str | None] = masked.to_pylist()
    for index, line in enumerate(mined):
        if line is None:
            out[index] = None
        elif undecided[index]:
            out[index] = mask(line)
    return out


def _masked_one_by_one(types: Sequence[int], bodies: Sequence[str | None]) -> list[str | None]:
    string = ValueType.STRING
    out: list[str | None] = [None] * len(bodies)
    for index, (body_type, body) in enumerate(zip(types, bodies, strict=True)):
        if body_type == string and body:
            line = mined_line(body, MINED_LINE_CHARS)
            if line is not None:
                out[index] = mask(line)
    return out
