"""Log templates on ingest, through the real pipeline and a real DuckDB file.

What a user notices: records carry a template id and their variable values, the ids survive a
restart (the miners are restored from the store), and the bounds hold and are counted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from stethoscope.logs.templates import TemplateMiner, TemplateMinerConfig
from stethoscope.model.batch import SignalBatch
from stethoscope.server.pipeline import IngestPipeline, PipelineConfig
from stethoscope.server.templating import LogTemplater, LogTemplaterConfig
from stethoscope.sources.otlp.decode import decode_logs
from stethoscope.sources.records import key_values, log_record
from stethoscope.store.base import LogQuery, TemplateQuery
from stethoscope.store.duckdb.store import DuckDBStore
from stethoscope.store.wal import WalConfig

T0 = 1_700_000_000_000_000_000


def logs_batch(
    service: str,
    bodies: Sequence[Any],
    *,
    start_ns: int = T0,
    attributes: Iterable[Mapping[str, Any] | None] | None = None,
) -> SignalBatch:
    """One decoded export request: a record per body, one ms apart."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(key_values({"service.name": service}))
    scope_logs = resource_logs.scope_logs.add()
    attrs = list(attributes) if attributes is not None else [None] * len(bodies)
    for index, (body, attributes_) in enumerate(zip(bodies, attrs, strict=True)):
        scope_logs.log_records.append(
            log_record(body=body, time_ns=start_ns + index * 1_000_000, attributes=attributes_)
        )
    return decode_logs(request)


def make_pipeline(data: Path, **templates: Any) -> IngestPipeline:
    config = PipelineConfig(
        flush_interval_s=0.05, retention_ns=None, templates=LogTemplaterConfig(**templates)
    )
    pipeline = IngestPipeline(DuckDBStore(data), WalConfig(directory=data / "wal"), config)
    pipeline.start()
    return pipeline


def written(pipeline: IngestPipeline, batch: SignalBatch) -> None:
    pipeline.submit(batch)
    deadline = time.monotonic() + 10
    while pipeline.stats.pending_bytes and time.monotonic() < deadline:
        time.sleep(0.02)


def by_body(store: DuckDBStore, service: str) -> dict[str, dict[str, Any]]:
    return {r["body"]: r for r in store.logs(LogQuery(service=service, limit=10_000))}


def test_records_get_a_template_id_and_their_variables(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    lines = [
        "Connection to 10.0.0.5:5432 timed out after 30s",
        "Connection to 10.0.0.9:5432 timed out after 12s",
        "cache warmed",
    ]
    written(pipeline, logs_batch("db", lines))
    found = by_body(pipeline.store, "db")
    first, second, other = (found[line] for line in lines)
    assert first["template_id"] == second["template_id"] != other["template_id"]
    assert len(first["template_id"]) == 12
    assert second["template_params"] == ["10.0.0.9:5432", "12s"]
    assert other["template_params"] == []
    [template] = [
        t
        for t in pipeline.store.templates(TemplateQuery())
        if t["template_id"] == first["template_id"]
    ]
    assert template["template"] == "Connection to <*> timed out after <*>"
    assert (template["count"], template["example"]) == (2, lines[0])
    assert (template["first_seen_ns"], template["last_seen_ns"]) == (T0, T0 + 1_000_000)
    pipeline.close()


def test_template_ids_are_per_service(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    written(pipeline, logs_batch("a", ["worker 1 started"]))
    written(pipeline, logs_batch("b", ["worker 2 started"]))
    rows = pipeline.store.templates(TemplateQuery())
    assert sorted(row["service"] for row in rows) == ["a", "b"]
    assert pipeline.store.templates(TemplateQuery(service="b"))[0]["example"] == "worker 2 started"
    pipeline.close()


# Lines whose variable is a plain token (no digit, so not masked): the template is generalised
# by the second line, and a fresh miner would found a new one for the third.
GENERALISED = [
    f"Loaded plugin {name} from the local cache" for name in ("foo_bar", "baz_qux", "spam_eggs")
]


def test_ids_survive_a_restart(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    written(pipeline, logs_batch("svc", GENERALISED[:2]))
    before = by_body(pipeline.store, "svc")[GENERALISED[0]]["template_id"]
    pipeline.close()
    pipeline.store.close()

    restarted = make_pipeline(tmp_path)
    written(restarted, logs_batch("svc", GENERALISED[2:], start_ns=T0 + 10**9))
    after = by_body(restarted.store, "svc")[GENERALISED[2]]
    assert after["template_id"] == before
    assert after["template_params"] == ["spam_eggs"]
    [template] = restarted.store.templates(TemplateQuery(service="svc"))
    assert (template["count"], template["template"]) == (
        3,
        "Loaded plugin <*> from the local cache",
    )
    assert template["example"] == GENERALISED[0]  # the founding line stays the example
    restarted.close()


def test_without_restore_the_ids_would_differ() -> None:
    """Guards the test above: a fresh miner really gives the third line another id."""
    fresh = LogTemplater()
    batches, _ = fresh.annotate([logs_batch("svc", GENERALISED[2:])])
    continued = LogTemplater()
    batches_2, _ = continued.annotate([logs_batch("svc", GENERALISED)])
    ids = batches[-1].tables["logs"].column("template_id").to_pylist()
    ids_2 = batches_2[-1].tables["logs"].column("template_id").to_pylist()
    assert ids[0] != ids_2[2]


@pytest.mark.parametrize(
    ("body", "mined_as"),
    [
        ("Request 7 failed\nTraceback (most recent call last):\n  File x", "Request <*> failed"),
        ({"event": "login", "user": "u1"}, None),
        (["a", "b"], None),
        (42, None),
        ("", None),
        ("   ", None),
    ],
    ids=["multi-line: first line", "map", "array", "number", "empty", "blank"],
)
def test_what_gets_a_template(body: Any, mined_as: str | None) -> None:
    templater = LogTemplater()
    batches, touched = templater.annotate([logs_batch("svc", [body])])
    ids = batches[-1].tables["logs"].column("template_id").to_pylist()
    assert (ids[0] is not None) == (mined_as is not None)
    assert [row.template for row in touched] == ([mined_as] if mined_as else [])


def test_services_beyond_the_bound_are_counted_not_mined() -> None:
    templater = LogTemplater(LogTemplaterConfig(max_services=2))
    batches = [logs_batch(name, ["hello there"]) for name in ("a", "b", "c")]
    out, touched = templater.annotate(batches)
    assert out[-1].tables["logs"].column("template_id").null_count == 1
    assert sorted(row.service for row in touched) == ["a", "b"]
    assert templater.stats().unmined_records == 1
    assert templater.stats().services == 2


def test_a_batch_from_before_the_template_columns_is_mined() -> None:
    """A write-ahead log written by an older steth holds log tables without the new columns."""
    batch = logs_batch("svc", ["disk 91% full"])
    old = batch.tables["logs"].drop_columns(["template_id", "template_params"])
    out, touched = LogTemplater().annotate([SignalBatch("logs", tables={"logs": old})])
    table = out[-1].tables["logs"]
    assert table.column("template_id").null_count == 0
    assert table.column("template_params").to_pylist() == [None]  # worked out when read
    assert [row.template for row in touched] == ["disk <*> full"]


def test_a_record_reads_the_variables_of_its_template_as_it_is_now(tmp_path: Path) -> None:
    """A line placed before its template was generalised gets the variables the template's
    text shown beside it now has, not none."""
    pipeline = make_pipeline(tmp_path)
    lines = [f"job {name} done in the batch queue" for name in ("a_b", "c_d", "a_b")]
    written(pipeline, logs_batch("svc", lines))
    records = pipeline.store.logs(LogQuery(service="svc"))
    assert [r["template_params"] for r in records] == [["a_b"], ["c_d"], ["a_b"]]
    [template] = pipeline.store.templates(TemplateQuery(service="svc"))
    assert template["template"] == "job <*> done in the batch queue"
    pipeline.close()


def test_variables_an_older_steth_stored_are_read_as_stored(tmp_path: Path) -> None:
    """Stores written before variables were left to reads keep answering with theirs."""
    store = DuckDBStore(tmp_path)
    batches, touched = LogTemplater().annotate([logs_batch("svc", ["disk 91% full"])])
    tables = dict(batches[-1].tables)
    logs = tables["logs"]
    stored = pa.array([["as stored"]], logs.schema.field("template_params").type)
    tables["logs"] = logs.set_column(
        logs.schema.get_field_index("template_params"), "template_params", stored
    )
    store.write([SignalBatch("logs", tables=tables)], templates=touched)
    [record] = store.logs(LogQuery(service="svc"))
    assert (record["template_params"], record["template_id"]) == (
        ["as stored"],
        f"{touched[0].template_id:012x}",
    )
    store.close()


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_services", 0), ("max_line_chars", 0)],
    ids=["no services", "no line"],
)
def test_bad_settings_are_refused(setting: str, value: int) -> None:
    from stethoscope.errors import UsageError

    with pytest.raises(UsageError, match=setting):
        LogTemplaterConfig(**{setting: value}).validate()


def test_restore_keeps_the_bound(tmp_path: Path) -> None:
    """A store holding more templates than the miner may keep restores only the first ones."""
    store = DuckDBStore(tmp_path)
    batches, touched = LogTemplater().annotate([logs_batch("svc", ["alpha", "beta", "gamma"])])
    store.write(batches, templates=touched)
    small = LogTemplater(LogTemplaterConfig(miner=TemplateMinerConfig(max_templates=2)))
    small.restore(store.template_rows())
    assert small.stats().templates == 2
    out, _ = small.annotate([logs_batch("svc", ["alpha", "gamma"])])
    ids = [f"{i:012x}" for i in out[-1].tables["logs"].column("template_id").to_pylist()]
    stored = {r["body"]: r["template_id"] for r in store.logs(LogQuery())}
    assert ids[0] == stored["alpha"] and ids[1] != stored["gamma"]  # gamma: the overflow
    assert small.stats().overflowed_lines == 1


def test_templates_are_stored_in_founding_order(tmp_path: Path) -> None:
    """Restore replays this order; within one write it must be the order lines came in."""
    store = DuckDBStore(tmp_path)
    templater = LogTemplater()
    for lines in (["zeta is up", "alpha went down"], ["mid point reached", "zeta is up"]):
        batches, touched = templater.annotate([logs_batch("svc", lines)])
        store.write(batches, templates=touched)
    rows = store.template_rows()
    assert [row.template for row in rows] == ["zeta is up", "alpha went down", "mid point reached"]
    assert [row.ordinal for row in rows] == [0, 1, 2]


MIXED_LINES = [
    "Connection to 10.0.0.5:5432 timed out after 30s",
    "user 3043604 added 10 x sku-83981 to cart 84685b61-c796-6470-6709-ab4c5be04057",
    "Connection to 10.0.0.9:5432 timed out after 12s\n  at frame 1\n  at frame 2",
    "   ",
    "sent 10 bytes (1.2 KB) ok",
    "retries=three state=ok",
    "user 4595806 added 12 x sku-60665 to cart 8fe5feef-3d8d-780f-42d5-b04d233f91d5",
    "x" * 1_500 + " 42",
]


def mined(templater: LogTemplater, batches: list[SignalBatch]) -> tuple[list[Any], list[Any]]:
    out, touched = templater.annotate(batches)
    ids = out[-1].tables["logs"].column("template_id").to_pylist()
    return ids, [(r.template_id, r.template) for r in touched]


@pytest.mark.parametrize("max_line_chars", [1_024, 20], ids=["default", "shorter"])
def test_lines_masked_by_the_decoder_are_mined_as_if_masked_here(max_line_chars: int) -> None:
    """The decoder's masks change nothing: the same ids and templates as without."""
    batch = logs_batch("svc", [*MIXED_LINES, 7, {"k": "v"}])
    assert "masked_line" in batch.tables["logs"].column_names
    unmasked = batch.tables["logs"].drop_columns(["masked_line"])
    config = LogTemplaterConfig(max_line_chars=max_line_chars)
    with_masks = mined(LogTemplater(config), [batch])
    without = mined(LogTemplater(config), [SignalBatch("logs", tables={"logs": unmasked})])
    assert with_masks == without
    if max_line_chars == 1_024:
        assert (with_masks[0][0], "Connection to <*> timed out after <*>") in with_masks[1]


def test_the_decoders_column_never_reaches_the_store(tmp_path: Path) -> None:
    """Batches with and without the transient column (an older log) are written together."""
    batch = logs_batch("svc", ["disk 91% full"])
    old = batch.tables["logs"].drop_columns(["masked_line", "template_id", "template_params"])
    out, touched = LogTemplater().annotate([batch, SignalBatch("logs", tables={"logs": old})])
    assert "masked_line" not in out[-1].tables["logs"].column_names
    store = DuckDBStore(tmp_path)
    store.write(out, templates=touched)
    records = store.logs(LogQuery(service="svc"))
    assert [r["template_params"] for r in records] == [["91%"], ["91%"]]
    store.close()


def test_everything_submitted_is_mined_and_written_in_order_by_close(tmp_path: Path) -> None:
    """The miner runs ahead of the store writer; close still writes all, in log order."""
    pipeline = make_pipeline(tmp_path)
    lines = [f"worker {i} finished job {i * 7} in {i}ms" for i in range(40)]
    for index, line in enumerate(lines):
        pipeline.submit(logs_batch("svc", [line], start_ns=T0 + index * 1_000_000_000))
    pipeline.close()
    records = pipeline.store.logs(LogQuery(service="svc", limit=100))
    assert sorted(r["body"] for r in records) == sorted(lines)
    assert len({r["template_id"] for r in records}) == 1
    expected = [[str(i), str(i * 7), f"{i}ms"] for i in range(40)]
    by_time = sorted(records, key=lambda r: r["time_ns"])
    assert [r["template_params"] for r in by_time] == expected
    pipeline.store.close()


# Few words in long lines, so that templates are founded and then generalised mid-table.
WORDS = st.sampled_from(["alpha", "beta", "42", "x=1"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), WORDS, WORDS)))
def test_a_table_is_mined_as_if_line_by_line(records: list[tuple[str, str, str]]) -> None:
    """Placing each (service, masked line) once gives every record what placing it in turn would."""
    lines = [(service, f"user {one} done in the {two} queue") for service, one, two in records]
    miners: dict[str, TemplateMiner] = {}
    want: list[int] = []
    for service, line in lines:
        miner = miners.setdefault(service, TemplateMiner(LogTemplaterConfig().miner))
        want.append(int(miner.match(line).template_id, 16))
    out, _ = LogTemplater().annotate([logs_batch(service, [line]) for service, line in lines])
    assert len(out) == len(lines)  # each batch keeps its own records
    got = [row["template_id"] for batch in out for row in batch.tables["logs"].to_pylist()]
    assert got == want
