"""Spans and log records inserted in whole DuckDB row groups; the rest held back a while.

DuckDB writes the full row groups of an insert (122,880 rows) straight into the database file,
compressed. Rows that do not fill one go to DuckDB's own log first and are compressed again at
the next checkpoint: measured on the benchmark's requests through `DuckDBStore.write`, 100,000
rows a commit cost 2.83 us of CPU per log record and 6.25 per span; exactly 122,880 cost 1.82
and 4.13 (and a commit of 131,072 left a small row group per commit: 128 B per log record on
disk instead of 72). So the writer inserts whole row groups and holds the remainder for its
next write, for a couple of seconds at most (`PipelineConfig.max_hold_s`).

That is safe because every held row is in our write-ahead log. The store records the last
sequence number whose rows are all stored (`applied_seq`) and, per table, how many rows of the
batches after it are stored already (`ahead`: a metrics batch after a held log record is stored
at once); replay after a crash skips those rows, so each row is stored exactly once. Resources
and scopes are stored once per id whatever arrives, so replaying them is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from stethoscope.model.batch import SignalBatch

__all__ = ["HELD_TABLES", "ROW_GROUP_ROWS", "Plan", "RowGroups"]

ROW_GROUP_ROWS = 122_880  # DuckDB's row group size
HELD_TABLES = ("spans", "logs")  # the big tables; the others are small and written at once


@dataclass(frozen=True)
class _Piece:
    """Rows of one held table from the batch with log sequence number `seq`."""

    seq: int
    table: pa.Table


@dataclass(frozen=True)
class _State:
    applied_seq: int
    skip: dict[str, int]  # rows of the next batches of a table that are stored already
    held: dict[str, tuple[_Piece, ...]]
    # Batches after `applied_seq`, in log order, with their row count per table (keyed ones not).
    unapplied: tuple[tuple[int, dict[str, int]], ...] = ()


@dataclass(frozen=True)
class Plan:
    """One write: the tables to insert now and the positions to record with them."""

    tables: dict[str, list[pa.Table]]
    applied_seq: int
    ahead: dict[str, int]
    after: _State = field(repr=False)


class RowGroups:
    """Decides which rows a write inserts; `accept` a plan once its transaction committed."""

    def __init__(
        self,
        applied_seq: int,
        ahead: dict[str, int],
        *,
        keyed: set[str],
        group_rows: int = ROW_GROUP_ROWS,
    ) -> None:
        """`keyed`: tables that keep one row per key, whatever is inserted again."""
        self._keyed = keyed
        self._group_rows = group_rows
        self._state = _State(
            applied_seq=applied_seq,
            skip={name: rows for name, rows in ahead.items() if rows},
            held={name: () for name in HELD_TABLES},
        )

    @property
    def holding(self) -> bool:
        """Whether rows wait for a later write."""
        return any(self._state.held.values())

    def plan(self, batches: Sequence[SignalBatch], seqs: Sequence[int], *, whole: bool) -> Plan:
        """What to insert for these batches (in log order): whole row groups of the held
        tables if `whole`, else everything held and new."""
        state = self._state
        tables: dict[str, list[pa.Table]] = {}
        skip = dict(state.skip)
        held = {name: list(pieces) for name, pieces in state.held.items()}
        unapplied = list(state.unapplied)
        for seq, batch in zip(seqs, batches, strict=True):
            counts = {}
            for name, table in batch.tables.items():
                if name in self._keyed:
                    if table.num_rows:
                        tables.setdefault(name, []).append(table)
                    continue
                counts[name] = table.num_rows
                # A batch replayed after a crash may have rows stored before it.
                skipped = min(skip.get(name, 0), table.num_rows)
                if skipped:
                    skip[name] -= skipped
                    table = table.slice(skipped)
                if not table.num_rows:
                    continue
                if name in held:
                    held[name].append(_Piece(seq, table))
                else:
                    tables.setdefault(name, []).append(table)
            unapplied.append((seq, counts))
        for name, pieces in held.items():
            rows = sum(piece.table.num_rows for piece in pieces)
            whole_rows = rows // self._group_rows * self._group_rows
            taken, held[name] = _take(pieces, whole_rows if whole else rows)
            if taken:
                tables.setdefault(name, []).extend(taken)
        return _finish(state, tables, skip, held, unapplied)

    def accept(self, plan: Plan) -> None:
        """The plan's rows are committed: hold what it left."""
        self._state = plan.after


def _take(pieces: list[_Piece], rows: int) -> tuple[list[pa.Table], list[_Piece]]:
    """The first `rows` rows of the pieces, and the pieces left (the one cut in two sliced)."""
    taken: list[pa.Table] = []
    for index, piece in enumerate(pieces):
        if rows <= 0:
            return taken, pieces[index:]
        n = piece.table.num_rows
        if n > rows:
            taken.append(piece.table.slice(0, rows))
            rest = replace(piece, table=piece.table.slice(rows))
            return taken, [rest, *pieces[index + 1 :]]
        taken.append(piece.table)
        rows -= n
    return taken, []


def _finish(
    state: _State,
    tables: dict[str, list[pa.Table]],
    skip: dict[str, int],
    held: dict[str, list[_Piece]],
    unapplied: list[tuple[int, dict[str, int]]],
) -> Plan:
    """The plan with the new applied position: every batch before the first held row."""
    first_held = min((pieces[0].seq for pieces in held.values() if pieces), default=None)
    applied_seq = state.applied_seq
    cut = 0
    while cut < len(unapplied) and (first_held is None or unapplied[cut][0] < first_held):
        cut += 1
    if cut:
        applied_seq = unapplied[cut - 1][0]
        unapplied = unapplied[cut:]
    names = {name for _, counts in unapplied for name in counts} | set(skip)
    ahead = {
        name: sum(counts.get(name, 0) for _, counts in unapplied)
        - sum(piece.table.num_rows for piece in held.get(name, ()))
        + skip.get(name, 0)
        for name in names
    }
    after = _State(
        applied_seq=applied_seq,
        skip=skip,
        held={name: tuple(pieces) for name, pieces in held.items()},
        unapplied=tuple(unapplied),
    )
    return Plan(tables=tables, applied_seq=applied_seq, ahead=ahead, after=after)
