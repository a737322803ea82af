"""Variables taken for a whole column (RE2) are exactly those `extract_variables` takes."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stethoscope.logs.templates import WILDCARD, Template, TemplateMiner, extract_variables
from stethoscope.logs.variables import variables_of

LOGHUB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "loghub"

# Characters that stress the translation: regex syntax, whitespace of every kind, non-ASCII.
TRICKY = list("\\.+*?()|[]{}^$-#&~=:/,<>\"' \t\x0b\x0c\r\x1c\x85\xa0\u2028") + ["é", "日", "\x00"]
pieces = st.text(alphabet=st.sampled_from([*TRICKY, *"abcXYZ019_"]), max_size=8)


def expected(text: str, lines: list[str | None]) -> list[list[str] | None]:
    template = Template("", text.split(" "))
    return [None if line is None else extract_variables(template, line) for line in lines]


@st.composite
def template_and_lines(draw: st.DrawFn) -> tuple[str, list[str | None]]:
    """A template text and lines, most made from it by filling its wildcards."""
    constants = draw(st.lists(pieces, min_size=1, max_size=5))
    text = f" {WILDCARD} ".join(constants) if draw(st.booleans()) else WILDCARD.join(constants)
    text = " ".join(text.split(" "))
    lines: list[str | None] = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            filled = text
            while WILDCARD in filled:
                filled = filled.replace(WILDCARD, draw(pieces), 1)
            lines.append(filled)
        else:
            lines.append(draw(st.one_of(st.none(), pieces)))
    return text, lines


@settings(max_examples=400, deadline=None)
@given(template_and_lines())
def test_same_variables_as_extract_variables(case: tuple[str, list[str | None]]) -> None:
    text, lines = case
    indices = [i for i, line in enumerate(lines) if line is not None]
    groups = {text: indices} if indices else {}
    assert variables_of(pa.array(lines, pa.string()), groups).to_pylist() == expected(text, lines)
    # A column that is a slice of a longer one (as a chunk of a mined table is) reads the same.
    sliced = pa.array([" x\t ", *lines, "  "], pa.string()).slice(1, len(lines))
    assert variables_of(sliced, groups).to_pylist() == expected(text, lines)


def test_lines_of_several_texts_keep_their_order() -> None:
    lines = ["took 5 ms", None, "user bob in", "took 17 ms", "static"]
    groups = {"took <*> ms": [0, 3], "user <*> in": [2], "static": [4]}
    got = variables_of(pa.array(lines, pa.string()), groups).to_pylist()
    assert got == [["5"], None, ["bob"], ["17"], []]


@pytest.mark.skipif(not LOGHUB.is_dir(), reason="loghub samples not present")
def test_every_loghub_line_gets_the_same_variables() -> None:
    for path in sorted(LOGHUB.glob("*/*_structured.csv")):
        with open(path, newline="") as handle:
            lines: list[str | None] = [row["Content"] for row in csv.DictReader(handle)]
        miner = TemplateMiner()
        placed = [miner.match(line) for line in lines if line is not None]
        groups: dict[str, list[int]] = defaultdict(list)
        for index, template in enumerate(placed):
            groups[template.text].append(index)
        got = variables_of(pa.array(lines, pa.string()), groups).to_pylist()
        want = [
            extract_variables(template, line) for template, line in zip(placed, lines, strict=True)
        ]
        assert got == want, path.name
