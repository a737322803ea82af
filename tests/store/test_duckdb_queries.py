"""The DuckDB store's read queries, over OTLP requests decoded and written to a real store file."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from stethoscope.errors import UsageError
from stethoscope.logs.masking import MASKED_COLUMN
from stethoscope.sources.otlp.decode import decode_logs, decode_metrics, decode_traces
from stethoscope.store.base import LogQuery, MetricQuery, TraceQuery, Window
from stethoscope.store.duckdb.queries import Where, restore_attributes, severity_name
from stethoscope.store.duckdb.store import DuckDBStore

T0 = 1_700_000_000_000_000_000
TM = T0 + 10_000 * 1_000_000  # metric points start here
MS = 1_000_000

TA = "0af7651916cd43dd8448eb211c80319c"  # frontend -> checkout -> payments
TB = "ffeeddccbbaa99887766554433221100"  # both halves above 2**63; status error
TC = "00000000000000000000000000000001"  # hi half zero; HTTP 500 as a string attribute
TD = "dddddddddddddddddddddddddddddddd"  # no span without a parent
TE = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"  # two roots, and a child starting before them

# -- building OTLP requests ------------------------------------------------------------------


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=kvs(value)))
    return AnyValue(string_value=value)


def kvs(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def resource(service: str, instance: str | None = None, **extra: Any) -> Resource:
    attributes: dict[str, Any] = {"service.name": service}
    if instance is not None:
        attributes["service.instance.id"] = instance
    return Resource(attributes=kvs(attributes | extra))


FRONTEND = resource("frontend")
CHECKOUT_1 = resource("checkout", "c-1", **{"host.name": "h1"})
CHECKOUT_2 = resource("checkout", "c-2")
PAYMENTS = resource("payments", "p-1")
SCOPE = InstrumentationScope(name="tests", version="1")


def span(
    trace_id: str,
    span_id: str,
    parent: str,
    name: str,
    start_ms: int,
    duration_ms: float,
    **fields: Any,
) -> Span:
    attributes = fields.pop("attributes", {})
    start = T0 + start_ms * MS
    return Span(
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent),
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(duration_ms * MS),
        attributes=kvs(attributes),
        **fields,
    )


def span_request(groups: list[tuple[Resource, list[Span]]]) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=res, scope_spans=[ScopeSpans(scope=SCOPE, spans=spans)])
            for res, spans in groups
        ]
    )


TYPED = {
    "payment.method": "card",
    "amount": 12.5,
    "retry": True,
    "attempts": 3,
    "tags": ["a", 1],
    "meta": {"k": "v"},
    "blob": b"\x00\x01",
    "ratio": float("nan"),
}

SPANS = span_request(
    [
        (
            FRONTEND,
            [
                span(
                    TA, "a1" * 8, "", "GET /checkout", 0, 100, kind=2,
                    attributes={"http.request.method": "GET", "http.response.status_code": 200},
                ),
                span(TE, "e1" * 8, "", "e-second", 4005, 5),
                span(TE, "e2" * 8, "", "e-first", 4000, 1),
                span(TE, "e3" * 8, "e2" * 8, "e-child", 3990, 30),
            ],
        ),
        (
            CHECKOUT_1,
            [
                span(
                    TA, "a2" * 8, "a1" * 8, "charge", 10, 50, kind=3,
                    attributes={"http.response.status_code": 503},
                ),
                span(TD, "d1" * 8, "99" * 8, "d-late", 3010, 10),
                span(TD, "d2" * 8, "98" * 8, "d-early", 3000, 50),
            ],
        ),
        (
            CHECKOUT_2,
            [
                span(
                    TB, "b1" * 8, "", "GET /cart", 1000, 5, kind=2,
                    status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
                    attributes={"cart.size": 3},
                ),
            ],
        ),
        (
            PAYMENTS,
            [
                span(
                    TA, "a3" * 8, "a2" * 8, "authorize", 20, 20, kind=1,
                    status=Status(code=Status.STATUS_CODE_OK), attributes=TYPED,
                    events=[
                        Span.Event(
                            time_unix_nano=T0 + 25 * MS, name="retry",
                            attributes=kvs({"attempt": 2}),
                        )
                    ],
                    links=[
                        Span.Link(
                            trace_id=bytes.fromhex(TB), span_id=bytes.fromhex("b1" * 8),
                            attributes=kvs({"link.kind": "follows"}),
                        )
                    ],
                ),
                span(
                    TC, "c1" * 8, "", "refund", 2000, 300, kind=2,
                    attributes={"http.status_code": "500"},
                ),
            ],
        ),
    ]
)  # fmt: skip


def log(ms: int, severity: Any, text: str, body: str, **fields: Any) -> LogRecord:
    trace_id = fields.pop("trace_id", "")
    span_id = fields.pop("span_id", "")
    return LogRecord(
        time_unix_nano=T0 + ms * MS,
        observed_time_unix_nano=T0 + ms * MS + 1,
        severity_number=severity,
        severity_text=text,
        body=AnyValue(string_value=body),
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
        attributes=kvs(fields.pop("attributes", {})),
        **fields,
    )


LOGS = ExportLogsServiceRequest(
    resource_logs=[
        ResourceLogs(resource=res, scope_logs=[ScopeLogs(scope=SCOPE, log_records=records)])
        for res, records in [
            (
                FRONTEND,
                [log(5, 9, "INFO", "request started user_id=42", trace_id=TA, span_id="a1" * 8)],
            ),
            (
                CHECKOUT_1,
                [
                    log(
                        50, 17, "", "Charge failed: 50% of retries used", trace_id=TA,
                        span_id="a2" * 8, attributes={"error.type": "Timeout", "code": 7},
                    )
                ],
            ),
            (CHECKOUT_2, [log(1002, 13, "warning", "Cart SLOW")]),
            (
                PAYMENTS,
                [
                    log(2100, 21, "", "refund 50 percent xzy", event_name="payment.refund"),
                    log(2200, 0, "", "debug x_y"),
                ],
            ),
        ]
    ]
)  # fmt: skip


def number_points(values: list[Any], attributes: dict[str, Any]) -> list[pb.NumberDataPoint]:
    points = []
    for second, value in enumerate(values):
        kind = "as_int" if isinstance(value, int) else "as_double"
        point = pb.NumberDataPoint(time_unix_nano=TM + second * 1000 * MS, **{kind: value})
        point.attributes.extend(kvs(attributes))
        points.append(point)
    return points


def metric_request(groups: list[tuple[Resource, list[pb.Metric]]]) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            pb.ResourceMetrics(resource=res, scope_metrics=[pb.ScopeMetrics(metrics=metrics)])
            for res, metrics in groups
        ]
    )


CUMULATIVE = pb.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = pb.AGGREGATION_TEMPORALITY_DELTA

METRICS = metric_request(
    [
        (
            CHECKOUT_1,
            [
                pb.Metric(
                    name="queue.depth", unit="1", description="items waiting",
                    gauge=pb.Gauge(
                        data_points=number_points([0, 1, 2, 3, 4], {"queue": "a"})
                        + number_points([1.5, float("nan")], {"queue": "b"})
                    ),
                ),
                pb.Metric(
                    name="gc.pause", unit="s",
                    summary=pb.Summary(
                        data_points=[
                            pb.SummaryDataPoint(
                                time_unix_nano=TM, count=10, sum=2.5,
                                quantile_values=[
                                    pb.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=0.2),
                                    pb.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=0.9),
                                ],
                            )
                        ]
                    ),
                ),
            ],
        ),
        (
            CHECKOUT_2,
            [
                pb.Metric(
                    name="http.server.requests", unit="{request}",
                    sum=pb.Sum(
                        aggregation_temporality=CUMULATIVE, is_monotonic=True,
                        data_points=number_points([7], {"route": "/cart"}),
                    ),
                )
            ],
        ),
        (
            PAYMENTS,
            [
                pb.Metric(
                    name="http.server.requests", unit="{request}",
                    sum=pb.Sum(
                        aggregation_temporality=CUMULATIVE, is_monotonic=True,
                        data_points=number_points([10, 12], {"route": "/refund"}),
                    ),
                ),
                pb.Metric(
                    name="rpc.latency", unit="ms",
                    exponential_histogram=pb.ExponentialHistogram(
                        aggregation_temporality=DELTA,
                        data_points=[
                            pb.ExponentialHistogramDataPoint(
                                time_unix_nano=TM, count=5, sum=7.0, scale=2, zero_count=1,
                                positive=pb.ExponentialHistogramDataPoint.Buckets(
                                    offset=3, bucket_counts=[1, 2]
                                ),
                                negative=pb.ExponentialHistogramDataPoint.Buckets(
                                    offset=-1, bucket_counts=[1]
                                ),
                            )
                        ],
                    ),
                ),
            ],
        ),
        (
            FRONTEND,
            [
                pb.Metric(
                    name="http.server.duration", unit="s",
                    histogram=pb.Histogram(
                        aggregation_temporality=DELTA,
                        data_points=[
                            pb.HistogramDataPoint(
                                time_unix_nano=TM, count=4, sum=10.5, min=0.5, max=6.0,
                                bucket_counts=[1, 2, 1], explicit_bounds=[1.0, 5.0],
                            )
                        ],
                    ),
                )
            ],
        ),
    ]
)  # fmt: skip


# Every query twice: over spans in DuckDB's table, and sealed in a Parquet segment at once.
@pytest.fixture(scope="module", params=[0, 1], ids=["table", "segments"])
def store(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[DuckDBStore]:
    opened = DuckDBStore(Path(tmp_path_factory.mktemp("store")), segment_rows=request.param)
    logs = decode_logs(LOGS)
    # Unmined, as written straight from the decoder: without the writer's transient column.
    logs.tables["logs"] = logs.tables["logs"].drop_columns([MASKED_COLUMN])
    batches = [decode_traces(SPANS), logs, decode_metrics(METRICS)]
    assert all(batch.rejected == 0 for batch in batches)
    opened.write(batches)
    yield opened
    opened.close()


def at(ms: int) -> int:
    return T0 + ms * MS


# -- shared pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        pytest.param({"key": "s", "type": 1, "value": "x"}, "x", id="string"),
        pytest.param({"key": "b", "type": 2, "value": "false"}, False, id="bool"),
        pytest.param({"key": "i", "type": 3, "value": "-12"}, -12, id="int"),
        pytest.param({"key": "d", "type": 4, "value": "0.25"}, 0.25, id="double"),
        pytest.param({"key": "d", "type": 4, "value": "nan"}, "nan", id="nan-stays-text"),
        pytest.param({"key": "d", "type": 4, "value": "-inf"}, "-inf", id="inf-stays-text"),
        pytest.param({"key": "y", "type": 5, "value": "AAE="}, "AAE=", id="bytes-base64"),
        pytest.param({"key": "a", "type": 6, "value": '["a",1]'}, ["a", 1], id="array"),
        pytest.param({"key": "k", "type": 7, "value": '{"k":"v"}'}, {"k": "v"}, id="kvlist"),
        pytest.param({"key": "e", "type": 0, "value": ""}, None, id="empty"),
        pytest.param({"key": "x", "type": 3, "value": "oops"}, "oops", id="bad-int-kept"),
    ],
)
def test_restore_attributes_types(stored: dict[str, Any], expected: Any) -> None:
    assert restore_attributes([stored]) == {stored["key"]: expected}


def test_where_builds_half_open_windows_with_parameters() -> None:
    where = Where().window("t", Window(since_ns=1, until_ns=2)).add("s = ?", "x'; --")
    assert where.sql() == "t >= ? AND t < ? AND s = ?"
    assert where.params == [1, 2, "x'; --"]
    assert Where().window("t", Window()).sql() == "TRUE"


@pytest.mark.parametrize(
    ("number", "name"), [(0, ""), (1, "TRACE"), (8, "DEBUG"), (9, "INFO"), (24, "FATAL"), (25, "")]
)
def test_severity_name(number: int, name: str) -> None:
    assert severity_name(number) == name


# -- services ---------------------------------------------------------------------------------


# Instances that sent no lifecycle events have no state (see tests/store/test_log_queries.py).
NO_STATE = dict.fromkeys(("state", "state_since_ns", "exit_code", "exit_signal", "restart_count"))


def test_services_unbounded(store: DuckDBStore) -> None:
    found = {entry["service"]: entry for entry in store.services(Window())}
    assert [entry["service"] for entry in store.services(Window())] == [
        "checkout",
        "frontend",
        "payments",
    ]
    checkout = found["checkout"]
    assert [i["instance"] for i in checkout["instances"]] == ["c-1", "c-2"]
    assert checkout["instances"][0] == {
        "instance": "c-1",
        "first_seen_ns": at(10),
        "last_seen_ns": TM + 4000 * MS,
        **NO_STATE,
    }
    assert {k: checkout[k] for k in ("spans", "logs", "metric_points")} == {
        "spans": 4,
        "logs": 2,
        "metric_points": 9,
    }
    # status error on GET /cart, and HTTP 503 (an int attribute) on charge
    assert (checkout["error_spans"], checkout["error_logs"]) == (2, 1)
    assert (checkout["first_seen_ns"], checkout["last_seen_ns"]) == (at(10), TM + 4000 * MS)
    frontend = found["frontend"]
    assert frontend["instances"][0]["instance"] == ""
    assert (frontend["spans"], frontend["error_spans"], frontend["metric_points"]) == (4, 0, 1)
    payments = found["payments"]
    # HTTP 500 as a string http.status_code counts; severity 21 is an error log
    assert (payments["spans"], payments["error_spans"]) == (2, 1)
    assert (payments["logs"], payments["error_logs"], payments["metric_points"]) == (2, 1, 3)


def test_services_window_is_half_open(store: DuckDBStore) -> None:
    found = store.services(Window(since_ns=at(1000), until_ns=at(2100)))
    assert [entry["service"] for entry in found] == ["checkout", "payments"]
    checkout, payments = found
    assert checkout["instances"] == [
        {"instance": "c-2", "first_seen_ns": at(1000), "last_seen_ns": at(1002), **NO_STATE}
    ]
    assert (checkout["spans"], checkout["logs"], checkout["error_spans"]) == (1, 1, 1)
    # the refund log at 2100 ms sits exactly on the until bound: excluded
    assert (payments["spans"], payments["logs"], payments["error_spans"]) == (1, 0, 1)


def test_services_empty_window(store: DuckDBStore) -> None:
    assert store.services(Window(since_ns=TM + 10**12)) == []


# -- traces -----------------------------------------------------------------------------------


def trace_ids(store: DuckDBStore, **filters: Any) -> list[str]:
    return [found["trace_id"] for found in store.traces(TraceQuery(**filters))]


def test_traces_newest_first_with_summary(store: DuckDBStore) -> None:
    found = store.traces(TraceQuery())
    assert [t["trace_id"] for t in found] == [TE, TD, TC, TB, TA]
    assert found[-1] == {
        "trace_id": TA,
        "root_service": "frontend",
        "root_operation": "GET /checkout",
        "start_ns": T0,
        "duration_ns": 100 * MS,
        "span_count": 3,
        "services": ["checkout", "frontend", "payments"],
        "error": False,  # HTTP 503 is not a span status error
    }
    assert found[3]["error"] is True


def test_traces_root_fallbacks(store: DuckDBStore) -> None:
    by_id = {t["trace_id"]: t for t in store.traces(TraceQuery())}
    # no parentless span: the earliest span is the root
    assert by_id[TD]["root_operation"] == "d-early"
    assert by_id[TD]["duration_ns"] == 50 * MS
    # two parentless spans: the earlier of them, even though a child started before both
    assert by_id[TE]["root_operation"] == "e-first"
    assert by_id[TE]["start_ns"] == at(3990)
    assert by_id[TE]["duration_ns"] == 30 * MS


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({"limit": 2}, [TE, TD], id="limit"),
        pytest.param({"limit": 0}, [], id="limit-zero"),
        pytest.param({"service": "payments"}, [TC, TA], id="service"),
        pytest.param({"operation": "charge"}, [TA], id="operation"),
        pytest.param({"operation": "Charge"}, [], id="operation-exact"),
        pytest.param({"errors_only": True}, [TB], id="errors-only"),
        pytest.param({"errors_only": True, "service": "payments"}, [], id="error-other-service"),
        pytest.param({"service": "payments", "min_duration_ns": 250 * MS}, [TC], id="duration"),
        pytest.param({"min_duration_ns": 100 * MS}, [TC, TA], id="duration-inclusive"),
        pytest.param(
            {"service": "checkout", "min_duration_ns": 100 * MS},
            [],
            id="same-span-service-duration",
        ),
        pytest.param(
            {"window": Window(since_ns=at(1000), until_ns=at(3000))}, [TC, TB], id="window"
        ),
        pytest.param({"window": Window(since_ns=at(3990))}, [TE], id="window-since-inclusive"),
        pytest.param(
            {"attributes": (("http.response.status_code", "503"),)}, [TA], id="attribute-int"
        ),
        pytest.param(
            {"attributes": (("payment.method", "card"), ("retry", "true"))},
            [TA],
            id="attributes-same-span",
        ),
        pytest.param(
            {"attributes": (("http.response.status_code", "503"), ("payment.method", "card"))},
            [],
            id="attributes-different-spans",
        ),
        pytest.param({"attributes": (("payment.method", "cash"),)}, [], id="attribute-value"),
        pytest.param({"attributes": (("x' OR 1=1 --", "y"),)}, [], id="attribute-quote-is-a-value"),
    ],
)
def test_traces_filters(store: DuckDBStore, filters: dict[str, Any], expected: list[str]) -> None:
    assert trace_ids(store, **filters) == expected


def test_traces_summary_covers_spans_outside_window(store: DuckDBStore) -> None:
    (found,) = store.traces(TraceQuery(window=Window(since_ns=at(15), until_ns=at(30))))
    assert (found["trace_id"], found["span_count"], found["start_ns"]) == (TA, 3, T0)


# -- trace ------------------------------------------------------------------------------------


def test_trace_spans_and_logs(store: DuckDBStore) -> None:
    found = store.trace(TA.upper())
    assert found is not None
    assert found["trace_id"] == TA
    assert [s["name"] for s in found["spans"]] == ["GET /checkout", "charge", "authorize"]
    root, charge, authorize = found["spans"]
    assert root["parent_span_id"] == ""
    assert root["resource"] == {"service.name": "frontend"}
    assert (root["instance"], root["kind"], root["status_code"]) == ("", "server", "unset")
    assert charge["parent_span_id"] == "a1" * 8
    assert charge["resource"] == {
        "service.name": "checkout",
        "service.instance.id": "c-1",
        "host.name": "h1",
    }
    assert authorize == {
        "span_id": "a3" * 8,
        "parent_span_id": "a2" * 8,
        "service": "payments",
        "instance": "p-1",
        "name": "authorize",
        "kind": "internal",
        "start_ns": at(20),
        "duration_ns": 20 * MS,
        "status_code": "ok",
        "status_message": "",
        "attributes": {
            "payment.method": "card",
            "amount": 12.5,
            "retry": True,
            "attempts": 3,
            "tags": ["a", 1],
            "meta": {"k": "v"},
            "blob": "AAE=",
            "ratio": "nan",
        },
        "events": [{"time_ns": at(25), "name": "retry", "attributes": {"attempt": 2}}],
        "links": [{"trace_id": TB, "span_id": "b1" * 8, "attributes": {"link.kind": "follows"}}],
        "resource": {"service.name": "payments", "service.instance.id": "p-1"},
        "scope": {"name": "tests", "version": "1"},
        "clock_offset_ns": 0,
    }
    assert found["clock_corrections"] == []
    assert [record["body"] for record in found["logs"]] == [
        "request started user_id=42",
        "Charge failed: 50% of retries used",
    ]


def test_trace_error_status(store: DuckDBStore) -> None:
    found = store.trace(TB)
    assert found is not None
    (only,) = found["spans"]
    assert (only["status_code"], only["status_message"], only["kind"]) == (
        "error",
        "boom",
        "server",
    )
    assert only["attributes"] == {"cart.size": 3}
    assert found["logs"] == []


def test_trace_unknown_is_none(store: DuckDBStore) -> None:
    assert store.trace("12" * 16) is None


@pytest.mark.parametrize("bad", ["", "abc", "zz" * 16, TA + "00"])
def test_trace_bad_id_is_usage_error(store: DuckDBStore, bad: str) -> None:
    with pytest.raises(UsageError):
        store.trace(bad)


# -- logs -------------------------------------------------------------------------------------


def bodies(store: DuckDBStore, **filters: Any) -> list[str]:
    return [record["body"] for record in store.logs(LogQuery(**filters))]


L1, L2, L3 = "request started user_id=42", "Charge failed: 50% of retries used", "Cart SLOW"
L4, L5 = "refund 50 percent xzy", "debug x_y"


def test_logs_shape(store: DuckDBStore) -> None:
    found = store.logs(LogQuery())
    assert [record["body"] for record in found] == [L1, L2, L3, L4, L5]
    assert found[1] == {
        "time_ns": at(50),
        "service": "checkout",
        "instance": "c-1",
        "severity_number": 17,
        "severity_text": "ERROR",  # derived: the record had none
        "body": L2,
        "attributes": {"error.type": "Timeout", "code": 7},
        "trace_id": TA,
        "span_id": "a2" * 8,
        "event_name": "",
        "template_id": None,  # written straight to the store, not through the miners
        "template_params": None,
    }
    assert (found[2]["severity_text"], found[2]["trace_id"], found[2]["span_id"]) == (
        "warning",
        "",
        "",
    )
    assert (found[3]["severity_text"], found[3]["event_name"]) == ("FATAL", "payment.refund")
    assert found[4]["severity_text"] == ""


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({"limit": 2}, [L1, L2], id="oldest-limit"),
        pytest.param({"limit": 2, "newest_first": True}, [L5, L4], id="newest-limit"),
        pytest.param({"text": "slow"}, [L3], id="text-case-insensitive"),
        pytest.param({"text": "50%"}, [L2], id="text-percent-literal"),
        pytest.param({"text": "x_y"}, [L5], id="text-underscore-literal"),
        pytest.param({"text": "\\"}, [], id="text-backslash"),
        pytest.param({"service": "checkout"}, [L2, L3], id="service"),
        pytest.param({"min_severity": 17}, [L2, L4], id="min-severity"),
        pytest.param({"trace_id": TA}, [L1, L2], id="trace-id"),
        pytest.param({"trace_id": TB}, [], id="trace-id-no-logs"),
        pytest.param({"window": Window(since_ns=at(50), until_ns=at(2100))}, [L2, L3], id="window"),
        pytest.param(
            {"service": "payments", "min_severity": 1, "text": "REFUND"}, [L4], id="combined"
        ),
    ],
)
def test_logs_filters(store: DuckDBStore, filters: dict[str, Any], expected: list[str]) -> None:
    assert bodies(store, **filters) == expected


def test_logs_bad_trace_id_is_usage_error(store: DuckDBStore) -> None:
    with pytest.raises(UsageError):
        store.logs(LogQuery(trace_id="not-a-trace"))


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_list(store: DuckDBStore) -> None:
    found = store.metrics(MetricQuery())["metrics"]
    assert [(m["name"], m["type"]) for m in found] == [
        ("gc.pause", "summary"),
        ("http.server.duration", "histogram"),
        ("http.server.requests", "sum"),
        ("queue.depth", "gauge"),
        ("rpc.latency", "exponential_histogram"),
    ]
    by_name = {m["name"]: m for m in found}
    assert by_name["queue.depth"] == {
        "name": "queue.depth",
        "type": "gauge",
        "unit": "1",
        "description": "items waiting",
        "services": ["checkout"],
        "series": 2,
        "points": 7,
        "last_ns": TM + 4000 * MS,
    }
    requests = by_name["http.server.requests"]
    assert (requests["services"], requests["series"], requests["points"]) == (
        ["checkout", "payments"],
        2,
        3,
    )


def test_metrics_list_filters(store: DuckDBStore) -> None:
    payments = store.metrics(MetricQuery(service="payments"))["metrics"]
    assert [m["name"] for m in payments] == ["http.server.requests", "rpc.latency"]
    assert payments[0]["points"] == 2
    late = store.metrics(MetricQuery(window=Window(since_ns=TM + 1000 * MS)))["metrics"]
    assert [(m["name"], m["points"]) for m in late] == [
        ("http.server.requests", 1),
        ("queue.depth", 5),  # a at 1..4 s, b at 1 s
    ]


def test_metrics_gauge_series(store: DuckDBStore) -> None:
    found = store.metrics(MetricQuery(name="queue.depth", points_per_series=3))
    assert {k: found[k] for k in ("name", "type", "unit", "description", "temporality")} == {
        "name": "queue.depth",
        "type": "gauge",
        "unit": "1",
        "description": "items waiting",
        "temporality": "unspecified",
    }
    a, b = found["series"]
    assert (a["service"], a["instance"], a["attributes"]) == ("checkout", "c-1", {"queue": "a"})
    assert a["points"] == [{"time_ns": TM + s * 1000 * MS, "value": s} for s in (2, 3, 4)]
    assert all(type(p["value"]) is int for p in a["points"])
    assert a["last"] == 4
    assert b["attributes"] == {"queue": "b"}
    assert [p["value"] for p in b["points"]] == [1.5, "nan"]
    assert b["last"] == "nan"


def test_metrics_sum_series_and_service_filter(store: DuckDBStore) -> None:
    found = store.metrics(MetricQuery(name="http.server.requests"))
    assert (found["type"], found["temporality"], found["unit"]) == (
        "sum",
        "cumulative",
        "{request}",
    )
    assert [(s["service"], s["instance"], s["last"]) for s in found["series"]] == [
        ("checkout", "c-2", 7),
        ("payments", "p-1", 12),
    ]
    only = store.metrics(MetricQuery(name="http.server.requests", service="checkout"))
    assert [s["attributes"] for s in only["series"]] == [{"route": "/cart"}]
    windowed = store.metrics(
        MetricQuery(name="http.server.requests", window=Window(until_ns=TM + 1000 * MS))
    )
    assert [s["points"] for s in windowed["series"]] == [
        [{"time_ns": TM, "value": 7}],
        [{"time_ns": TM, "value": 10}],
    ]


def test_metrics_histogram(store: DuckDBStore) -> None:
    found = store.metrics(MetricQuery(name="http.server.duration"))
    assert (found["type"], found["temporality"]) == ("histogram", "delta")
    (series,) = found["series"]
    assert series["points"] == [
        {
            "time_ns": TM,
            "count": 4,
            "sum": 10.5,
            "min": 0.5,
            "max": 6.0,
            "bucket_counts": [1, 2, 1],
            "explicit_bounds": [1.0, 5.0],
        }
    ]
    assert series["last"] == 4


def test_metrics_exponential_histogram(store: DuckDBStore) -> None:
    found = store.metrics(MetricQuery(name="rpc.latency"))
    assert found["type"] == "exponential_histogram"
    (series,) = found["series"]
    assert series["points"] == [
        {
            "time_ns": TM,
            "count": 5,
            "sum": 7.0,
            "min": None,
            "max": None,
            "scale": 2,
            "zero_count": 1,
            "positive_offset": 3,
            "positive_counts": [1, 2],
            "negative_offset": -1,
            "negative_counts": [1],
        }
    ]


def test_metrics_summary(store: DuckDBStore) -> None:
    found = store.metrics(MetricQuery(name="gc.pause"))
    assert (found["type"], found["temporality"], found["description"]) == (
        "summary",
        "unspecified",
        "",
    )
    (series,) = found["series"]
    (point,) = series["points"]
    assert point["count"] == 10
    assert math.isclose(point["sum"], 2.5)
    assert point["quantiles"] == [{"quantile": 0.5, "value": 0.2}, {"quantile": 0.99, "value": 0.9}]
    assert series["last"] == 10


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(MetricQuery(name="nope"), id="unknown"),
        pytest.param(MetricQuery(name="rpc.latency", service="checkout"), id="other-service"),
        pytest.param(MetricQuery(name="gc.pause", window=Window(since_ns=TM + 1)), id="window"),
    ],
)
def test_metrics_nothing_matches(store: DuckDBStore, query: MetricQuery) -> None:
    assert store.metrics(query) == {"name": query.name, "series": []}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        pytest.param(500, True, id="int-500"),
        pytest.param(499, False, id="int-499"),
        pytest.param("599", True, id="string-599"),
        pytest.param(503.0, True, id="double"),
        pytest.param("OK", False, id="not-a-number"),
        pytest.param("", False, id="empty-text"),
    ],
)
def test_services_http_status_values(tmp_path: Path, status: Any, error: bool) -> None:
    spans = [span("ab" * 16, "01" * 8, "", "op", 0, 1, attributes={"http.status_code": status})]
    fresh = DuckDBStore(tmp_path)
    try:
        fresh.write([decode_traces(span_request([(FRONTEND, spans)]))])
        (found,) = fresh.services(Window())
        assert found["error_spans"] == int(error)
    finally:
        fresh.close()


def test_traces_pick_looks_past_one_busy_trace(tmp_path: Path) -> None:
    # 40 spans of one new trace hide the older trace from the first look at the newest spans
    busy = [span("bb" * 16, f"{i + 1:016x}", "", "op", 100 + i, 1) for i in range(40)]
    older = [span("0c" * 16, "0c" * 8, "", "op", 0, 1)]
    fresh = DuckDBStore(tmp_path)
    try:
        fresh.write([decode_traces(span_request([(FRONTEND, busy + older)]))])
        found = fresh.traces(TraceQuery(limit=2))
        assert [(t["trace_id"], t["span_count"]) for t in found] == [
            ("bb" * 16, 40),
            ("0c" * 16, 1),
        ]
        assert [t["trace_id"] for t in fresh.traces(TraceQuery(limit=5))] == ["bb" * 16, "0c" * 16]
    finally:
        fresh.close()


def test_trace_ids_with_prefix_finds_the_trace_log_lines_point_to(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    ids = [bytes.fromhex("ab" * 4 + "00" * 12), bytes.fromhex("ab" * 4 + "11" * 12),
           bytes.fromhex("cd" * 16)]  # fmt: skip
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    for i, trace_id in enumerate(ids):
        span = scope_spans.spans.add()
        span.trace_id, span.span_id, span.name = trace_id, (i + 1).to_bytes(8, "big"), "op"
    store.write([decode_traces(request)])
    assert store.trace_ids("cdcdcdcd") == ["cd" * 16]
    assert store.trace_ids("abababab") == sorted(i.hex() for i in ids[:2])
    assert store.trace_ids("abababab" + "11" * 8) == [ids[1].hex()]  # past the high half
    assert store.trace_ids("ffffffff") == []
    for bad in ("abc", "zzzzzzzz", "a" * 33):
        with pytest.raises(UsageError):
            store.trace_ids(bad)
    store.close()
