"""Log records' event names: the `event_name` field, else the `event.name` attribute."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from stethoscope.sources.otlp.decode import decode_logs
from stethoscope.sources.records import key_values


def record(event_name: str = "", attributes: dict[str, Any] | None = None) -> LogRecord:
    return LogRecord(event_name=event_name, attributes=key_values(attributes or {}))


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([record("process.start")], ["process.start"]),
        ([record("a", {"event.name": "b"})], ["a"]),
        ([record(attributes={"event.name": "probe.state"})], ["probe.state"]),
        ([record(attributes={"event.name": 3})], [""]),
        ([record(attributes={"other": "x"})], [""]),
        (
            [
                record(attributes={"a": "1"}),
                record(attributes={"b": "2", "event.name": "second"}),
                record(),
            ],
            ["", "second", ""],
        ),
    ],
    ids=[
        "field",
        "field wins over attribute",
        "attribute only",
        "attribute not a string",
        "neither",
        "attribute on the middle record",
    ],
)
def test_event_name(records: list[LogRecord], expected: list[str]) -> None:
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.extend(records)
    batch = decode_logs(request)
    assert batch.tables["logs"].column("event_name").to_pylist() == expected
    assert batch.tables["logs"].column("template_id").null_count == len(records)
