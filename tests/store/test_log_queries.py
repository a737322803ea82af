"""Templates, events and instance states read from a real DuckDB store, and schema migration.

Records go in as the server writes them: decoded from OTLP, mined by `LogTemplater`, committed
with the templates they touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from stethoscope.errors import DataError
from stethoscope.server.templating import LogTemplater
from stethoscope.sources.otlp.decode import decode_logs
from stethoscope.sources.records import key_values, log_record
from stethoscope.store.base import EventQuery, LogQuery, TemplateQuery, Window
from stethoscope.store.duckdb.schema import SCHEMA_VERSION
from stethoscope.store.duckdb.store import DuckDBStore

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def at(seconds: float) -> int:
    return T0 + int(seconds * S)


Record = tuple[float, Any, Mapping[str, Any] | None, str | None]  # (s, body, attributes, event)


def write(
    store: DuckDBStore, service: str, records: Sequence[Record], *, instance: str = "i-1"
) -> None:
    """Decode, mine and commit records of one service instance."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource = {"service.name": service, "service.instance.id": instance}
    resource_logs.resource.attributes.extend(key_values(resource))
    scope_logs = resource_logs.scope_logs.add()
    for seconds, body, attributes, event in records:
        scope_logs.log_records.append(
            log_record(body=body, time_ns=at(seconds), attributes=attributes, event_name=event)
        )
    batches, templates = LogTemplater().annotate([decode_logs(request)])
    store.write(batches, templates=templates)


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    store = DuckDBStore(tmp_path)
    lines = [(i, f"GET /items/{i} took {i * 3}ms", None, None) for i in range(5)]
    lines += [
        (10, "cache miss for key users", None, None),
        (20, "cache miss for key carts", None, None),
    ]
    write(store, "api", lines)
    write(store, "worker", [(30, "GET /jobs/1 took 4ms", None, None)])
    return store


# -- templates --------------------------------------------------------------------------------


def test_templates_most_frequent_first_with_counts_in_the_window(store: DuckDBStore) -> None:
    found = store.templates(TemplateQuery())
    # equal counts: the template seen last comes first
    assert [(t["service"], t["template"], t["count"]) for t in found] == [
        ("api", "GET <*> took <*>", 5),
        ("worker", "GET <*> took <*>", 1),
        ("api", "cache miss for key carts", 1),
        ("api", "cache miss for key users", 1),
    ]
    assert found[0]["count"] == 5 and found[0]["example"] == "GET /items/0 took 0ms"
    windowed = store.templates(TemplateQuery(window=Window(since_ns=at(3), until_ns=at(25))))
    assert sorted((t["template"], t["count"]) for t in windowed) == [
        ("GET <*> took <*>", 2),
        ("cache miss for key carts", 1),
        ("cache miss for key users", 1),
    ]
    # first and last seen cover the template's whole history, not only the window
    assert windowed[0]["first_seen_ns"] == at(0) and windowed[0]["last_seen_ns"] == at(4)


def test_templates_by_service_and_limit(store: DuckDBStore) -> None:
    assert [t["service"] for t in store.templates(TemplateQuery(service="worker"))] == ["worker"]
    assert len(store.templates(TemplateQuery(limit=2))) == 2


def test_equal_counts_newest_first(store: DuckDBStore) -> None:
    ones = [t for t in store.templates(TemplateQuery(service="api")) if t["count"] == 1]
    assert [t["template"] for t in ones] == ["cache miss for key carts", "cache miss for key users"]


def test_log_records_show_their_template(store: DuckDBStore) -> None:
    [record] = store.logs(LogQuery(service="worker"))
    [template] = store.templates(TemplateQuery(service="worker"))
    assert record["template_id"] == template["template_id"]
    assert record["template_params"] == ["/jobs/1", "4ms"]


# -- events -----------------------------------------------------------------------------------


@pytest.fixture
def events_store(tmp_path: Path) -> DuckDBStore:
    store = DuckDBStore(tmp_path)
    write(
        store,
        "api",
        [
            (1, "started", {"process.pid": 10}, "process.start"),
            (2, "plain line", None, None),
            (3, "probe down", {"probe.state": "down"}, "probe.state"),
            (4, "exited", {"process.exit.code": 1}, "process.exit"),
        ],
    )
    write(store, "db", [(5, "started", None, "process.start")])
    return store


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (EventQuery(), ["process.start", "probe.state", "process.exit", "process.start"]),
        (EventQuery(service="db"), ["process.start"]),
        (EventQuery(name="process.start"), ["process.start", "process.start"]),
        (
            EventQuery(window=Window(since_ns=at(3), until_ns=at(5))),
            ["probe.state", "process.exit"],
        ),
        (EventQuery(limit=2), ["process.exit", "process.start"]),
        (EventQuery(name="nothing"), []),
    ],
    ids=["all", "service", "name", "window", "newest two", "unknown name"],
)
def test_events(events_store: DuckDBStore, query: EventQuery, expected: list[str]) -> None:
    assert [e["event_name"] for e in events_store.events(query)] == expected


def test_event_shape(events_store: DuckDBStore) -> None:
    event = events_store.events(EventQuery(name="process.exit"))[0]
    assert (event["service"], event["instance"], event["time_ns"]) == ("api", "i-1", at(4))
    assert event["attributes"] == {"process.exit.code": 1, "event.name": "process.exit"}


# -- instance state ---------------------------------------------------------------------------

START = (1, "start", {"process.pid": 4, "steth.restart_count": 0}, "process.start")
EXIT_1 = (2, "exit", {"process.exit.code": 1}, "process.exit")
EXIT_SIG = (2, "exit", {"process.exit.signal": "SIGKILL"}, "process.exit")
RESTART = (
    3,
    "restart",
    {"steth.restart_count": 2, "steth.restart_delay_s": 1.0},
    "process.restart",
)
LOOP = (4, "loop", {"steth.restart_count": 5, "steth.window_seconds": 60}, "process.crash_loop")
PLAIN = (9, "just a line", None, None)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([START, PLAIN], {"state": "running", "state_since_ns": at(1), "restart_count": 0}),
        ([START, EXIT_1], {"state": "exited", "exit_code": 1, "exit_signal": None}),
        ([START, EXIT_SIG], {"state": "exited", "exit_code": None, "exit_signal": "SIGKILL"}),
        ([START, EXIT_1, RESTART], {"state": "restarting", "restart_count": 2}),
        ([START, EXIT_1, RESTART, LOOP], {"state": "crash_loop", "restart_count": 5}),
        ([PLAIN], {"state": None, "state_since_ns": None, "exit_code": None}),
    ],
    ids=["start", "exit with code", "exit by signal", "restart", "crash loop", "no lifecycle"],
)
def test_instance_state(tmp_path: Path, records: list[Record], expected: dict[str, Any]) -> None:
    store = DuckDBStore(tmp_path)
    write(store, "svc", records)
    [service] = store.services(Window())
    [instance] = service["instances"]
    assert {key: instance[key] for key in expected} == expected
    assert service["logs"] == len(records)  # the existing fields are all still there


def test_state_is_as_of_the_end_of_the_window(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    write(store, "svc", [START, EXIT_1, PLAIN])
    [service] = store.services(Window(until_ns=at(1.5)))
    assert service["instances"][0]["state"] == "running"


def test_each_instance_has_its_own_state(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    write(store, "svc", [START], instance="a")
    write(store, "svc", [START, EXIT_1], instance="b")
    [service] = store.services(Window())
    assert {i["instance"]: i["state"] for i in service["instances"]} == {
        "a": "running",
        "b": "exited",
    }


# -- schema migration -------------------------------------------------------------------------

# The logs table as schema version 1 created it (before the template columns).
V1_LOGS = """
    CREATE TABLE logs (
        resource_id UBIGINT, scope_id UBIGINT, service VARCHAR, time_ns BIGINT,
        observed_ns BIGINT, severity_number UTINYINT, severity_text VARCHAR, body_type UTINYINT,
        body VARCHAR, attributes STRUCT("key" VARCHAR, "type" UTINYINT, "value" VARCHAR)[],
        dropped_attributes_count UINTEGER, flags UINTEGER, trace_hi UBIGINT, trace_lo UBIGINT,
        span_id UBIGINT, event_name VARCHAR, imported BOOLEAN
    )
"""
V1_ROWS = """
    INSERT INTO resources VALUES (7, 'old', 'o-1', '', [], 0);
    INSERT INTO logs VALUES
        (7, 0, 'old', 1000, 1000, 9, 'INFO', 1, 'written by v1', [], 0, 0, 0, 0, 0, '', false),
        (7, 0, 'old', 2000, 2000, 17, 'ERROR', 1, 'exited', [{'key': 'process.exit.code',
         'type': 3, 'value': '3'}], 0, 0, 0, 0, 0, 'process.exit', false);
"""


def make_store_of_version(data: Path, version: int) -> None:
    """A store file as steth with schema version 1 left it (stamped `version`)."""
    import pyarrow as pa

    from stethoscope.model.schema import TABLES

    data.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(data / "steth.duckdb"))
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [version])
    for name, schema in TABLES.items():
        if name != "logs":
            empty = pa.Table.from_pylist([], schema=schema)  # noqa: F841 - read by DuckDB
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM empty")
    con.execute(V1_LOGS)
    con.execute(V1_ROWS)
    con.close()


def stored_version(data: Path) -> int:
    con = duckdb.connect(str(data / "steth.duckdb"), read_only=True)
    try:
        return int(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        con.close()


def test_a_version_1_store_reads_without_migrating(tmp_path: Path) -> None:
    make_store_of_version(tmp_path, 1)
    store = DuckDBStore(tmp_path, read_only=True)
    records = store.logs(LogQuery())
    assert [r["body"] for r in records] == ["written by v1", "exited"]
    assert records[0]["template_id"] is None and records[0]["template_params"] is None
    assert store.templates(TemplateQuery()) == []
    assert [e["event_name"] for e in store.events(EventQuery())] == ["process.exit"]
    [service] = store.services(Window())
    assert (service["instances"][0]["state"], service["instances"][0]["exit_code"]) == ("exited", 3)
    store.close()
    assert stored_version(tmp_path) == 1


def test_a_writer_migrates_a_version_1_store(tmp_path: Path) -> None:
    make_store_of_version(tmp_path, 1)
    store = DuckDBStore(tmp_path)
    assert store.schema_version == SCHEMA_VERSION
    write(store, "old", [(0, "migrated store took 5s", None, None)])
    records = store.logs(LogQuery(service="old"))
    assert [r["template_id"] is None for r in records] == [True, True, False]
    assert [t["template"] for t in store.templates(TemplateQuery())] == ["migrated store took <*>"]
    store.close()
    assert stored_version(tmp_path) == SCHEMA_VERSION
    reopened = DuckDBStore(tmp_path, read_only=True)
    assert len(reopened.logs(LogQuery())) == 3
    reopened.close()


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "writer"])
def test_a_store_from_a_newer_steth_is_refused(tmp_path: Path, read_only: bool) -> None:
    make_store_of_version(tmp_path, 99)
    with pytest.raises(DataError, match="schema version 99 is newer"):
        DuckDBStore(tmp_path, read_only=read_only)
    assert stored_version(tmp_path) == 99
