"""Log templates on ingest: one miner per service, owned by one mining process.

The pipeline mines each group of batches just before its store thread commits it, in one
place (`miningprocess.py`), so one owner holds the miners, the records are mined in log order
(the order the write-ahead log gave them), and the templates a group touched are committed in
the same transaction as its records. At start-up the miners are restored from the store's
`templates` table in founding order, so that a restarted server gives a line the id it gave
before.

What is mined: the first line of a string body, at most `max_line_chars` of it. A multi-line
body is a message followed by a stack trace whose frames vary with depth; its first line names
the event. Bodies that are not strings (maps, arrays, numbers) or are blank get no template:
their text form is JSON, whose one long token per record would found a template each.

Cost: placing a line is pure Python, one dictionary lookup for a line whose masked text was
seen before. Its stateless first step, masking, is done by the decode workers
(`stethoscope.logs.masking`): the masked text arrives as a transient column that is dropped
here, before the store sees the records; records without it are masked here.

A record's variables (`template_params`) are not mined: the store works them out when it is
read, from its template as it is then (`store.duckdb.queries`). Taking them here was 59%
of mining's CPU (2.18 -> 0.52 us a record), and inserting them 0.73 us of the writer's 2.7;
without them log records/s through `steth up` rose 1.11-1.29x (server CPU a record 0.77-0.90x;
four paired runs of 4M records, one pair of full runs 0.97x) and a stored record shrank from
101 to 76 bytes (issue 2, 2026-11-26). They also agree with the template text shown beside
them, which a later line may have generalised.

Memory: each miner is bounded by `TemplateMinerConfig`, the number of miners by
`max_services` (records of further services get no template and are counted in
`unmined_records`, `/api/stats`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stethoscope.errors import UsageError
from stethoscope.logs.masking import MASKED_COLUMN
from stethoscope.logs.templates import (
    MINED_LINE_CHARS,
    Template,
    TemplateMiner,
    TemplateMinerConfig,
    mask,
    mined_line,
)
from stethoscope.model.batch import SignalBatch
from stethoscope.model.codes import ValueType
from stethoscope.model.schema import LOGS
from stethoscope.store.base import TemplateRow

__all__ = [
    "LogTemplater",
    "LogTemplaterConfig",
    "MinedColumns",
    "TemplaterStats",
    "bodies_to_mask",
    "example_of",
    "logs_table",
    "with_examples",
    "with_templates",
]

EXAMPLE_CHARS = 500
_IDS = pa.uint64()
_PARAMS = LOGS.field("template_params").type  # null on ingest: read-time variables


def _default_miner() -> TemplateMinerConfig:
    # Smaller than a standalone miner's defaults: there is one per service.
    return TemplateMinerConfig(max_templates=2_000, max_cache=4_096)


@dataclass(frozen=True, kw_only=True)
class LogTemplaterConfig:
    """Bounds of the ingest miners: per service (`miner`) and how many services."""

    max_services: int = 64
    max_line_chars: int = MINED_LINE_CHARS
    miner: TemplateMinerConfig = field(default_factory=_default_miner)

    def validate(self) -> None:
        """UsageError naming the bad setting."""
        if self.max_services < 1:
            raise UsageError(f"max_services must be at least 1, got {self.max_services}")
        if self.max_line_chars < 1:
            raise UsageError(f"max_line_chars must be at least 1, got {self.max_line_chars}")
        try:
            self.miner.validate()
        except ValueError as error:
            raise UsageError(str(error)) from None


@dataclass
class TemplaterStats:
    """What the miners did and refused, for /api/stats."""

    services: int = 0
    templates: int = 0
    unmined_records: int = 0  # records of services beyond max_services
    overflowed_lines: int = 0  # lines that went to a catch-all because a miner was full


@dataclass
class _ServiceMiner:
    """One service's miner, the founding order of its templates, and them by id."""

    miner: TemplateMiner
    ordinals: dict[str, int] = field(default_factory=dict)
    next_ordinal: int = 0
    templates: dict[str, Template] = field(default_factory=dict)
    stored_ids: dict[str, int] = field(default_factory=dict)

    def stored_id(self, template_id: str) -> int:
        """The template's id as the store keeps it (an integer); numbers it first if new."""
        found = self.stored_ids.get(template_id)
        if found is None:
            if template_id not in self.templates:
                self.number_new()
            found = self.stored_ids[template_id] = int(template_id, 16)
        return found

    def number_new(self) -> None:
        """Index the miner's templates and number new ones in the order they were founded.

        That order is what `restore` replays: the first template a line fits wins.
        """
        self.templates = {t.template_id: t for t in self.miner.templates()}
        for template_id in self.templates:
            if template_id not in self.ordinals:
                self.ordinals[template_id] = self.next_ordinal
                self.next_ordinal += 1


class _Placed:
    """What placing the (service, masked line) pairs of a table gave, pair by pair."""

    def __init__(self, pairs: int) -> None:
        self.ids = np.zeros(pairs, np.uint64)
        self.mined = np.zeros(pairs, bool)
        self.states: dict[str, _ServiceMiner | None] = {}
        self.unmined: list[int] = []

    def add(self, pair: int, stored_id: int) -> None:
        self.ids[pair], self.mined[pair] = stored_id, True


class LogTemplater:
    """Adds `template_id` to log records, one miner per service."""

    def __init__(self, config: LogTemplaterConfig | None = None) -> None:
        self.config = config or LogTemplaterConfig()
        self.config.validate()
        self._services: dict[str, _ServiceMiner] = {}
        self._unmined = 0

    def restore(self, rows: Iterable[TemplateRow]) -> None:
        """Take back persisted templates; `rows` in (service, ordinal) order."""
        for row in rows:
            state = self._miner_for(row.service)
            if state is None:
                continue
            hex_id = f"{row.template_id:012x}"
            state.next_ordinal = max(state.next_ordinal, row.ordinal + 1)
            if row.overflow or state.miner.restore(hex_id, row.template):
                state.ordinals[hex_id] = row.ordinal

    def stats(self) -> TemplaterStats:
        """Counts across every service's miner."""
        # list() copies in one step: the API thread asks while the writer may add a miner.
        miners = [state.miner for state in list(self._services.values())]
        return TemplaterStats(
            services=len(miners),
            templates=sum(miner.template_count for miner in miners),
            unmined_records=self._unmined,
            overflowed_lines=sum(miner.overflowed for miner in miners),
        )

    def annotate(
        self, batches: Sequence[SignalBatch]
    ) -> tuple[list[SignalBatch], list[TemplateRow]]:
        """The batches with their log records mined, and every template they touched.

        The log records of all batches are mined as one table (in order), so the per-batch
        costs (grouping, building columns) are paid once per write.
        """
        combined = logs_table(batches)
        if combined is None:
            return list(batches), []
        mined = self.mine(combined)
        touched = with_examples(mined, combined.column("body"))
        return with_templates(batches, combined, mined.template_ids), touched

    def mine(self, table: pa.Table) -> MinedColumns:
        """Template ids of a logs table's records, in order, and the templates they touched
        (their examples still to be taken: `with_examples`).

        The table needs `service`, `time_ns`, `body_type`, the masked column when the
        decoder masked the lines, and `body`, of which only `bodies_to_mask` are read.
        Records with the same service and masked line join the same template, so each such
        pair is placed once, in the order it first appears, as if every record had been
        placed in turn.
        """
        masked = self._masked(table)
        services = pc.dictionary_encode(table.column("service").combine_chunks())
        texts = pc.dictionary_encode(masked)
        rows = np.flatnonzero(np.asarray(masked.is_valid()))
        service_codes = np.asarray(services.indices)[rows].astype(np.int64)
        text_codes = np.asarray(texts.indices.fill_null(0))[rows].astype(np.int64)
        keys = service_codes * max(len(texts.dictionary), 1) + text_codes
        _, first, pair_of_row = np.unique(keys, return_index=True, return_inverse=True)
        placed = self._place_pairs(
            rows[first],
            services.dictionary.to_pylist(),
            texts.dictionary.to_pylist(),
            service_codes[first],
            text_codes[first],
        )
        self._unmined += int(np.isin(pair_of_row, placed.unmined).sum())
        ids = np.zeros(len(masked), np.uint64)
        valid = np.zeros(len(masked), bool)
        ids[rows] = placed.ids[pair_of_row]
        valid[rows] = placed.mined[pair_of_row]
        template_ids = pa.array(ids, _IDS, mask=~valid)
        touched, example_rows = self._touched(
            table.select(["service", "time_ns"]).append_column("template_id", template_ids),
            placed.states,
        )
        return MinedColumns(template_ids, touched, example_rows)

    def _place_pairs(
        self,
        first_rows: np.ndarray,
        services: list[str],
        masks: list[str],
        service_codes: np.ndarray,
        mask_codes: np.ndarray,
    ) -> _Placed:
        """Place each (service, masked line) pair, in the order of its first record."""
        placed = _Placed(len(first_rows))
        for pair in np.argsort(first_rows, kind="stable"):
            service = services[service_codes[pair]]
            state = placed.states.get(service)
            if state is None and service not in placed.states:
                state = placed.states[service] = self._miner_for(service)
            if state is None:
                placed.unmined.append(pair)
                continue
            masked = masks[mask_codes[pair]]
            template = state.miner.match(masked, masked=masked)
            placed.add(pair, state.stored_id(template.template_id))
        return placed

    def _masked(self, table: pa.Table) -> pa.Array:
        """Each record's mined line masked; null for records that get no template.

        The decoder's mask is used when it masked with this miner's line limit; records it did
        not mask (an older write-ahead log, another limit) are masked here.
        """
        limit = self.config.max_line_chars
        if _masked_by_decoder(table, limit):
            masked = table.column(MASKED_COLUMN).combine_chunks()
        else:
            masked = pa.nulls(table.num_rows, pa.string())
        unmasked = _unmasked(table.column("body_type"), masked)
        if pc.any(unmasked).as_py():
            left = table.column("body").combine_chunks().filter(unmasked).to_pylist()
            cut = [mined_line(body, limit) if body else None for body in left]
            fill = pa.array([None if line is None else mask(line) for line in cut], pa.string())
            masked = pc.replace_with_mask(masked, unmasked, fill)
        return masked

    def _miner_for(self, service: str) -> _ServiceMiner | None:
        state = self._services.get(service)
        if state is None and len(self._services) < self.config.max_services:
            state = self._services[service] = _ServiceMiner(TemplateMiner(self.config.miner))
        return state

    def _touched(
        self, table: pa.Table, states: dict[str, _ServiceMiner | None]
    ) -> tuple[list[TemplateRow], list[int]]:
        """One row per (service, template) in the table: its current text and times, and the
        row of its first record (its example)."""
        mined = table.append_column("row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        mined = mined.filter(pc.is_valid(table.column("template_id")))
        if not mined.num_rows:
            return [], []
        groups = mined.group_by(["service", "template_id"]).aggregate(
            [("time_ns", "min"), ("time_ns", "max"), ("row", "min")]
        )
        return self._rows(groups, states), groups.column("row_min").to_pylist()

    def _rows(self, groups: pa.Table, states: dict[str, _ServiceMiner | None]) -> list[TemplateRow]:
        found: list[TemplateRow] = []
        columns = {name: groups.column(name).to_pylist() for name in groups.column_names}
        for miner in states.values():
            if miner is not None:
                miner.number_new()
        for service, template_id, first, last in zip(
            columns["service"],
            columns["template_id"],
            columns["time_ns_min"],
            columns["time_ns_max"],
            strict=True,
        ):
            state = states[service]
            assert state is not None  # only services with a miner have template ids
            hex_id = f"{template_id:012x}"
            template, ordinal = state.templates[hex_id], state.ordinals[hex_id]
            found.append(
                TemplateRow(
                    service=service,
                    template_id=template_id,
                    ordinal=ordinal,
                    template=template.text,
                    overflow=template.overflow,
                    first_seen_ns=first,
                    last_seen_ns=last,
                    example="",
                )
            )
        return found


def bodies_to_mask(table: pa.Table, max_line_chars: int) -> pa.Array:
    """The table's `body` column with only the bodies `LogTemplater.mine` reads (null
    elsewhere): those of string records the decoder did not mask as a miner with
    `max_line_chars` would."""
    bodies = table.column("body")
    if not _masked_by_decoder(table, max_line_chars):
        return bodies.combine_chunks()
    unmasked = _unmasked(table.column("body_type"), table.column(MASKED_COLUMN))
    if not pc.any(unmasked).as_py():
        return pa.nulls(len(bodies), pa.string())
    return pc.if_else(unmasked, bodies.combine_chunks(), pa.scalar(None, pa.string()))


def _masked_by_decoder(table: pa.Table, max_line_chars: int) -> bool:
    """Whether the table's lines were masked by the decoder as a miner with `max_line_chars`
    masks them."""
    return MASKED_COLUMN in table.column_names and max_line_chars == MINED_LINE_CHARS


def _unmasked(
    body_types: pa.ChunkedArray | pa.Array, masked: pa.ChunkedArray | pa.Array
) -> pa.Array:
    """Which records have a string body but no masked line (blank, or not masked yet)."""
    strings = pc.equal(body_types, ValueType.STRING)
    found = pc.fill_null(pc.and_(pc.is_null(masked), strings), False)
    return found.combine_chunks() if isinstance(found, pa.ChunkedArray) else found


@dataclass(frozen=True)
class MinedColumns:
    """What mining a logs table adds: a column in the table's order, and the templates."""

    template_ids: pa.Array
    touched: list[TemplateRow]  # examples empty: `with_examples` takes them from the bodies
    example_rows: list[int]  # the row in the mined table of each touched template's example


def with_examples(mined: MinedColumns, bodies: pa.ChunkedArray | pa.Array) -> list[TemplateRow]:
    """The touched templates with their examples, from `bodies` (the mined table's)."""
    return [
        dataclasses.replace(row, example=example_of(bodies, at))
        for row, at in zip(mined.touched, mined.example_rows, strict=True)
    ]


def example_of(bodies: pa.ChunkedArray | pa.Array, row: int) -> str:
    """A template's example: the first line of the body at `row`.

    Examples are taken where the bodies are rather than where mining runs: the mining
    process then receives only what it mines (see miningprocess.py).
    """
    return str(bodies[row].as_py()).partition("\n")[0][:EXAMPLE_CHARS]


def logs_table(batches: Sequence[SignalBatch]) -> pa.Table | None:
    """The log records of all batches as one table, in order; None when there are none."""
    logs = [b.tables["logs"] for b in batches if "logs" in b.tables]
    logs = [table for table in logs if table.num_rows]
    if not logs:
        return None
    # A batch from an older write-ahead log may lack the template columns: promote adds them.
    return pa.concat_tables(logs, promote_options="default")


def with_templates(
    batches: Sequence[SignalBatch], combined: pa.Table, template_ids: pa.Array
) -> list[SignalBatch]:
    """The batches, each with its own log records mined (a slice of `combined`, which holds
    them in batch order, as `template_ids` does): the store keeps each row's write-ahead log
    position."""
    table = _set_column(combined, "template_id", template_ids)
    if table.schema.get_field_index("template_params") < 0:  # a batch from an older log
        table = table.append_column("template_params", pa.nulls(table.num_rows, _PARAMS))
    if MASKED_COLUMN in table.column_names:  # transient: never stored
        table = table.drop_columns([MASKED_COLUMN])
    out = []
    start = 0
    for batch in batches:
        tables = dict(batch.tables)
        logs = tables.get("logs")
        if logs is not None and logs.num_rows:
            tables["logs"] = table.slice(start, logs.num_rows)
            start += logs.num_rows
        out.append(dataclasses.replace(batch, tables=tables, encoded=None))
    return out


def _set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """The table with `name` replaced, or appended when the batch predates the column."""
    index = table.schema.get_field_index(name)
    if index < 0:
        return table.append_column(name, values)
    return table.set_column(index, name, values)
