"""The stateless first step of template mining, done where records are decoded.

Masking a line (`templates.mask`) needs no miner state, so the decode workers do it and the
writer, which owns the miners, only places the masked text. The masked text travels with the
records as the transient `MASKED_COLUMN` of the logs table: the writer drops it before the
store sees the records. A table without it (an older write-ahead log, a source that does not
mask) is masked by the writer itself, with the same result.
"""

from __future__ import annotations

from collections.abc import Sequence

from stethoscope.logs.templates import mask
from stethoscope.model.codes import ValueType

__all__ = ["MASKED_COLUMN", "MINED_LINE_CHARS", "masked_lines", "mined_line"]

MASKED_COLUMN = "masked_line"
# The default length of the mined part of a line; a writer configured otherwise masks again.
MINED_LINE_CHARS = 1_024


def mined_line(body: str, limit: int) -> str | None:
    """The part of a string body that is mined: its first line, at most `limit` characters.

    None when that part is blank (a blank line gets no template).
    """
    line = body.partition("\n")[0][:limit] if "\n" in body else body[:limit]
    if not line or line.isspace():
        return None
    return line


def masked_lines(types: Sequence[int], bodies: Sequence[str | None]) -> list[str | None]:
    """Each record's mined line masked, None for records that get no template."""
    string = ValueType.STRING
    out: list[str | None] = [None] * len(bodies)
    for index, (body_type, body) in enumerate(zip(types, bodies, strict=True)):
        if body_type == string and body:
            line = mined_line(body, MINED_LINE_CHARS)
            if line is not None:
                out[index] = mask(line)
    return out
