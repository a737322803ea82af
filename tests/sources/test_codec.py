"""Bad input against the real OTLP/HTTP receiver, one named case per row, plus the codec limits.

Every case checks what a client sees (status, a google.rpc.Status or partial_success message in
the request's own encoding), that the server stays healthy, and that what it accepted before is
still there. The fuzz tests feed the decoder random bodies in-process: it may only ever answer
with a batch or `Rejected`.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import (
    JSON,
    PROTOBUF,
    RunningServer,
    ServerFactory,
    good_spans,
    json_traces,
    nested_array_value,
    pb_field,
    span_dict,
    stored_log_bodies,
    stored_span_names,
    trace_id_for,
    traces_request,
)
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from stethoscope.errors import Rejected
from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp.codec import decode_request, decompress

MIB = 1024 * 1024
BASELINE = "codec-baseline"
GRPC_INVALID_ARGUMENT = 3
GRPC_RESOURCE_EXHAUSTED = 8


@dataclass(frozen=True)
class Case:
    """One request and what the receiver must answer."""

    id: str
    body: bytes
    content_type: str = PROTOBUF
    encoding: str = ""
    status: int = 400
    message: str = ""  # in the error Status, or in partial_success.error_message
    rejected: int = 0  # partial_success count (status 200)
    kept: tuple[str, ...] = ()  # span names stored for the case's own trace
    kept_logs: tuple[str, ...] = ()  # log bodies stored for the case's own service
    signal: str = "traces"
    small_server: bool = False  # run against the server started with --max-body 1

    @property
    def trace_id(self) -> bytes:
        return trace_id_for(self.id)


def _spans(case_id: str, *bad: dict[str, Any], good: int = 2) -> list[dict[str, Any]]:
    return [*good_spans(case_id, good), *bad]


def _json(case_id: str, *bad: dict[str, Any], good: int = 2) -> bytes:
    return json.dumps(json_traces(case_id, _spans(case_id, *bad, good=good))).encode()


def _protobuf(case_id: str, *bad: dict[str, Any], good: int = 2) -> bytes:
    return traces_request(case_id, _spans(case_id, *bad, good=good)).SerializeToString()


def _bad_span(case_id: str, name: str, **ids: str) -> dict[str, Any]:
    span = span_dict(trace_id_for(case_id), b"\x09" * 8, name)
    span.update(ids)
    return span


def _with_raw_span_field(case_id: str, field: bytes) -> bytes:
    """A request whose first good span also carries `field` (raw protobuf bytes)."""
    request = traces_request(case_id, good_spans(case_id, 1))
    resource_spans = request.resource_spans[0]
    scope_spans = resource_spans.scope_spans[0]
    span = scope_spans.spans[0].SerializeToString() + field
    scope = pb_field(1, scope_spans.scope.SerializeToString()) + pb_field(2, span)
    resource = pb_field(1, resource_spans.resource.SerializeToString())
    return pb_field(1, resource + pb_field(2, scope))


def _deep_attribute(case_id: str, depth: int) -> bytes:
    """One span with an attribute nested `depth` levels deep, next to a normal one."""
    attribute = pb_field(1, b"deep") + pb_field(2, nested_array_value(depth))
    deep = _with_raw_span_field(case_id, pb_field(9, attribute))  # Span.attributes
    return deep + _second_span(case_id)


def _second_span(case_id: str) -> bytes:
    """Another request holding span good-1 only (protobuf requests concatenate)."""
    spans = good_spans(case_id, 2)[1:]
    return traces_request(case_id, spans).SerializeToString()


def _json_deep_attribute(case_id: str, depth: int) -> bytes:
    """Spans good-0, good-1, and "deep" with an attribute nested `depth` levels deep."""
    deep = span_dict(trace_id_for(case_id), b"\x09" * 8, "deep")
    deep["attributes"] = [{"key": "deep", "value": "VALUE"}]
    # Written as text: json.dumps itself gives up on deep nesting.
    value = '{"arrayValue":{"values":[' * depth + '{"stringValue":"bottom"}' + "]}}" * depth
    return _json(case_id, deep).replace(b'"VALUE"', value.encode())


def _log_request(case_id: str, trace_ids: list[bytes]) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    service = resource_logs.resource.attributes.add(key="service.name")
    service.value.string_value = case_id
    scope_logs = resource_logs.scope_logs.add()
    for i, trace_id in enumerate(trace_ids):
        record = scope_logs.log_records.add()
        record.time_unix_nano = time.time_ns()
        record.body.string_value = f"record-{i}"
        record.trace_id = trace_id
    return request.SerializeToString()


def _unknown_fields(case_id: str) -> bytes:
    document = json_traces(case_id, good_spans(case_id, 2))
    document["someFutureField"] = {"nested": [1, 2, {"x": None}]}
    resource_spans = document["resourceSpans"][0]
    resource_spans["newResourceField"] = "x"
    resource_spans["resource"]["entityRefs"] = [{"type": "service"}]
    resource_spans["scopeSpans"][0]["spans"][0]["notYetInTheSpec"] = 42
    resource_spans["scopeSpans"][0]["spans"][1]["status"] = {"code": 1, "newStatusField": True}
    return json.dumps(document).encode()


def _int64_as_numbers(case_id: str) -> bytes:
    document = json_traces(case_id, good_spans(case_id, 2))
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["startTimeUnixNano"] = int(span["startTimeUnixNano"])
        span["endTimeUnixNano"] = int(span["endTimeUnixNano"])
        span["attributes"] = [{"key": "n", "value": {"intValue": 7}}]
    return json.dumps(document).encode()


def gzip_zeros(mib: int) -> bytes:
    """A gzip body of `mib` MiB of zeros (a bomb: about 1000 times smaller on the wire)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(MIB)
    return b"".join(deflater.compress(chunk) for _ in range(mib)) + deflater.flush()


def _truncated_gzip(body: bytes) -> bytes:
    compressed = gzip.compress(body)
    return compressed[: len(compressed) - 12]


def _big_protobuf(case_id: str, size: int) -> bytes:
    spans = good_spans(case_id, 2)
    spans[0]["attributes"] = [{"key": "blob", "value": {"stringValue": "x" * size}}]
    return traces_request(case_id, spans).SerializeToString()


CASES = [
    Case(
        "malformed-protobuf",
        b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        message="not a valid",
    ),
    Case("truncated-protobuf", _protobuf("truncated-protobuf")[:-5], message="not a valid"),
    Case("malformed-json", b'{"resourceSpans": [{"scopeSpans": [', JSON, message="not valid JSON"),
    Case("json-not-an-object", b'[{"resourceSpans": []}]', JSON, message="object"),
    Case("json-wrong-shape", b'{"resourceSpans": "spans"}', JSON, message="resourceSpans"),
    Case(
        "wrong-content-type",
        _protobuf("wrong-content-type"),
        "text/plain",
        status=415,
        message="Content-Type",
    ),
    Case("no-content-type", _protobuf("no-content-type"), "", status=415, message="Content-Type"),
    Case(
        "invalid-utf8-in-json",
        _json("invalid-utf8-in-json").replace(b'"good-0"', b'"good-\xff\xfe"'),
        JSON,
        message="utf-8",
    ),
    Case(
        "utf16-json",
        json.dumps(json_traces("utf16-json", [])).encode("utf-16"),
        JSON,
        message="utf-8",
    ),
    Case(
        "invalid-utf8-in-protobuf-string",
        _protobuf("invalid-utf8-in-protobuf-string").replace(b"good-0", b"go\xff\xfe-0"),
        message="UTF-8",
    ),
    Case(
        "json-bad-hex-ids",
        _json(
            "json-bad-hex-ids",
            _bad_span("json-bad-hex-ids", "bad-trace", traceId="zz" * 16),
            _bad_span("json-bad-hex-ids", "odd-trace", traceId="abc"),
            _bad_span("json-bad-hex-ids", "bad-span", spanId="not-hex!"),
        ),
        JSON,
        status=200,
        rejected=3,
        message="id",
        kept=("good-0", "good-1"),
    ),
    Case(
        "protobuf-wrong-length-ids",
        _protobuf(
            "protobuf-wrong-length-ids",
            _bad_span("protobuf-wrong-length-ids", "short-trace", traceId="ab" * 15),
            _bad_span("protobuf-wrong-length-ids", "long-span", spanId="cd" * 9),
            _bad_span("protobuf-wrong-length-ids", "short-parent", parentSpanId="ef" * 7),
            _bad_span("protobuf-wrong-length-ids", "zero-trace", traceId="00" * 16),
            _bad_span("protobuf-wrong-length-ids", "zero-span", spanId="00" * 8),
        ),
        status=200,
        rejected=5,
        message="id",
        kept=("good-0", "good-1"),
    ),
    Case(
        "log-wrong-length-trace-id",
        _log_request("log-wrong-length-trace-id", [b"\x01" * 16, b"\x02" * 3, b"", b"\x03" * 17]),
        status=200,
        rejected=2,
        message="trace id",
        kept_logs=("record-0", "record-2"),
        signal="logs",
    ),
    Case(
        "json-unknown-fields",
        _unknown_fields("json-unknown-fields"),
        JSON,
        status=200,
        kept=("good-0", "good-1"),
    ),
    Case(
        "json-int64-as-numbers",
        _int64_as_numbers("json-int64-as-numbers"),
        JSON,
        status=200,
        kept=("good-0", "good-1"),
    ),
    Case("empty-protobuf-is-an-empty-request", b"", status=200),
    Case("empty-json", b"", JSON, message="JSON"),
    Case(
        "gzip",
        gzip.compress(_protobuf("gzip")),
        encoding="gzip",
        status=200,
        kept=("good-0", "good-1"),
    ),
    Case(
        "gzip-json",
        gzip.compress(_json("gzip-json")),
        JSON,
        "gzip",
        status=200,
        kept=("good-0", "good-1"),
    ),
    Case(
        "deflate",
        zlib.compress(_protobuf("deflate")),
        encoding="deflate",
        status=200,
        kept=("good-0", "good-1"),
    ),
    Case(
        "gzip-two-members",
        gzip.compress(
            traces_request(
                "gzip-two-members", good_spans("gzip-two-members", 2)[:1]
            ).SerializeToString()
        )
        + gzip.compress(_second_span("gzip-two-members")),
        encoding="gzip",
        status=200,
        kept=("good-0", "good-1"),
    ),
    Case(
        "corrupt-gzip", b"\x1f\x8b\x08\x00" + b"\x00garbage" * 20, encoding="gzip", message="gzip"
    ),
    Case(
        "truncated-gzip",
        _truncated_gzip(_protobuf("truncated-gzip")),
        encoding="gzip",
        message="gzip",
    ),
    Case("not-gzip-at-all", _protobuf("not-gzip-at-all"), encoding="gzip", message="gzip"),
    Case(
        "unsupported-encoding",
        _protobuf("unsupported-encoding"),
        encoding="br",
        status=415,
        message="br",
    ),
    Case(
        "gzip-bomb",
        gzip_zeros(64),
        encoding="gzip",
        status=413,
        message="exceeds",
    ),
    Case(
        "over-max-body",
        _big_protobuf("over-max-body", 2 * MIB),
        status=413,
        message="exceeds",
        small_server=True,
    ),
    Case(
        "over-max-body-decompressed",
        gzip.compress(_big_protobuf("over-max-body-decompressed", 2 * MIB)),
        encoding="gzip",
        status=413,
        message="exceeds",
        small_server=True,
    ),
    Case(
        "just-under-max-body",
        _big_protobuf("just-under-max-body", MIB - 4096),
        status=200,
        kept=("good-0", "good-1"),
        small_server=True,
    ),
    Case(
        "protobuf-anyvalue-40-deep",
        _deep_attribute("protobuf-anyvalue-40-deep", 40),
        status=200,
        rejected=1,
        message="nested",
        kept=("good-1",),
    ),
    Case(
        # Past protobuf's own recursion limit: that span cannot be parsed, the other one can.
        "protobuf-anyvalue-5000-deep",
        _deep_attribute("protobuf-anyvalue-5000-deep", 5000),
        status=200,
        rejected=1,
        message="cannot be parsed",
        kept=("good-1",),
    ),
    Case(
        "protobuf-attribute-not-utf8",
        _with_raw_span_field(
            "protobuf-attribute-not-utf8",
            pb_field(9, pb_field(1, b"user") + pb_field(2, pb_field(1, b"\xff\xfe"))),
        )
        + _second_span("protobuf-attribute-not-utf8"),
        status=200,
        rejected=1,
        message="not UTF-8",
        kept=("good-1",),
    ),
    Case(
        "protobuf-100000-nested-groups",
        b"\x7b" * 100_000 + b"\x7c" * 100_000,  # unknown field 15, start-group / end-group
        message="not a valid",
    ),
    Case(
        "json-anyvalue-20-deep",
        _json_deep_attribute("json-anyvalue-20-deep", 20),
        JSON,
        status=200,
        kept=("deep", "good-0", "good-1"),
    ),
    Case(
        "json-anyvalue-40-deep",
        _json_deep_attribute("json-anyvalue-40-deep", 40),
        JSON,
        status=200,
        rejected=1,
        message="nested",
        kept=("good-0", "good-1"),
    ),
    Case(
        "json-anyvalue-500-deep",
        _json_deep_attribute("json-anyvalue-500-deep", 500),
        JSON,
        message="nested",
    ),
    Case("json-100000-brackets", b"[" * 100_000 + b"]" * 100_000, JSON, message="nested"),
    Case("json-100000-objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, JSON, message="nested"),
]


def _post(server: RunningServer, case: Case) -> httpx.Response:
    headers = {**server.headers}
    if case.content_type:
        headers["Content-Type"] = case.content_type
    if case.encoding:
        headers["Content-Encoding"] = case.encoding
    return httpx.post(
        f"{server.otlp_url}/v1/{case.signal}", content=case.body, headers=headers, timeout=60
    )


def _send_good(server: RunningServer, service: str) -> None:
    body = traces_request(service, good_spans(service, 2)).SerializeToString()
    response = httpx.post(
        f"{server.otlp_url}/v1/traces", content=body, headers={"Content-Type": PROTOBUF}
    )
    assert response.status_code == 200, response.content


def _assert_still_serving(server: RunningServer, after: str) -> None:
    """Healthy, the baseline is still stored, and a new good request is taken and stored."""
    assert server.healthy(), server.log()
    assert stored_span_names(server, trace_id_for(BASELINE), expect=2) == ["good-0", "good-1"]
    assert stored_span_names(server, trace_id_for(after), expect=2) == ["good-0", "good-1"]


@pytest.fixture(scope="module")
def servers(start_module_server: ServerFactory) -> dict[bool, RunningServer]:
    """The default server and one with `--max-body 1`, each with a baseline trace accepted."""
    found = {
        False: start_module_server(),
        True: start_module_server(extra_args=["--max-body", "1"]),
    }
    for server in found.values():
        _send_good(server, BASELINE)
    return found


def _error_message(response: httpx.Response, json_body: bool) -> tuple[int, str]:
    if json_body:
        status = response.json()
        return int(status.get("code", 0)), status["message"]
    status = status_pb2.Status.FromString(response.content)
    return status.code, status.message


def _partial_success(response: httpx.Response, case: Case) -> tuple[int, str]:
    if case.content_type == JSON:
        partial = response.json().get("partialSuccess", {})
        key = "rejectedSpans" if case.signal == "traces" else "rejectedLogRecords"
        return int(partial.get(key, 0)), partial.get("errorMessage", "")
    if case.signal == "logs":
        logs = ExportLogsServiceResponse.FromString(response.content).partial_success
        return logs.rejected_log_records, logs.error_message
    spans = ExportTraceServiceResponse.FromString(response.content).partial_success
    return spans.rejected_spans, spans.error_message


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(servers: dict[bool, RunningServer], case: Case) -> None:
    server = servers[case.small_server]
    response = _post(server, case)
    _send_good(server, f"after-{case.id}")  # checked at the end, with what the case kept

    assert response.status_code == case.status, response.content[:500]
    json_body = case.content_type == JSON
    expected_type = JSON if json_body else PROTOBUF
    assert response.headers["content-type"].startswith(expected_type)
    if case.status == 200:
        rejected, message = _partial_success(response, case)
        assert rejected == case.rejected, message
    else:
        code, message = _error_message(response, json_body)
        expected = GRPC_RESOURCE_EXHAUSTED if case.status == 413 else GRPC_INVALID_ARGUMENT
        assert code == expected
        assert len(message) < 2000, "the message should be short enough to read"
    assert case.message.lower() in message.lower(), message
    if case.kept:
        assert stored_span_names(server, case.trace_id, expect=len(case.kept)) == list(case.kept)
    if case.kept_logs:
        assert stored_log_bodies(server, case.id, expect=len(case.kept_logs)) == list(
            case.kept_logs
        )
    _assert_still_serving(server, f"after-{case.id}")


# -- decompress, in-process ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "encoding", "limit", "expected"),
    [
        (b"abc", "", 1024, b"abc"),
        (b"abc", "identity", 1024, b"abc"),
        (gzip.compress(b"a" * 1024), "gzip", 1024, b"a" * 1024),
        (
            gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 24),
            "gzip",
            1024,
            b"a" * 1000 + b"b" * 24,
        ),
        (zlib.compress(b"a" * 1024), "deflate", 1024, b"a" * 1024),
        (zlib.compress(b"abc"), "gzip", 1024, b"abc"),  # a zlib header is recognised too
        (gzip.compress(b"abc"), " GZIP ", 1024, b"abc"),
    ],
    ids=[
        "identity-empty-header",
        "identity",
        "gzip-at-limit",
        "gzip-members-at-limit",
        "deflate-at-limit",
        "zlib-as-gzip",
        "encoding-case-and-space",
    ],
)
def test_decompress_accepts(body: bytes, encoding: str, limit: int, expected: bytes) -> None:
    assert decompress(body, encoding, max_size=limit) == expected


@pytest.mark.parametrize(
    ("body", "encoding", "limit", "status", "message"),
    [
        (b"a" * 1025, "", 1024, 413, "exceeds"),
        (gzip.compress(b"a" * 1025), "gzip", 1024, 413, "exceeds"),
        (gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 25), "gzip", 1024, 413, "exceeds"),
        (gzip_zeros(64), "gzip", 20 * MIB, 413, "exceeds"),
        (zlib.compress(b"a" * 1025), "deflate", 1024, 413, "exceeds"),
        (gzip.compress(b"abc")[:-4], "gzip", 1024, 400, "truncated"),
        (zlib.compress(b"abc")[:-2], "deflate", 1024, 400, "truncated"),
        (b"", "gzip", 1024, 400, "truncated"),
        (gzip.compress(b"abc") + b"junk", "gzip", 1024, 400, "gzip"),
        (zlib.compress(b"abc") + b"junk", "deflate", 1024, 400, "after the end"),
        (b"plain text", "gzip", 1024, 400, "gzip"),
        (b"abc", "br", 1024, 415, "br"),
        (b"abc", "gzip, br", 1024, 415, "gzip, br"),
    ],
    ids=[
        "identity-over",
        "gzip-over",
        "gzip-members-over",
        "gzip-bomb-64MiB",
        "deflate-over",
        "gzip-truncated",
        "deflate-truncated",
        "gzip-empty",
        "gzip-trailing-junk",
        "deflate-trailing-junk",
        "not-gzip",
        "unsupported",
        "stacked-encodings",
    ],
)
def test_decompress_refuses(
    body: bytes, encoding: str, limit: int, status: int, message: str
) -> None:
    with pytest.raises(Rejected) as refused:
        decompress(body, encoding, max_size=limit)
    assert refused.value.status == status
    assert message in str(refused.value)


def test_decompress_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip_zeros(64)
    started = time.perf_counter()
    with pytest.raises(Rejected):
        decompress(bomb, "gzip", max_size=MIB)
    assert time.perf_counter() - started < 1.0


# -- fuzz ------------------------------------------------------------------------------------

_SEED_PROTOBUF = traces_request("fuzz", good_spans("fuzz", 3)).SerializeToString()
_SEED_JSON = _json("fuzz")
_OTLP_KEYS = [
    "resourceSpans", "resourceLogs", "resourceMetrics", "resource", "scopeSpans", "scopeLogs",
    "scopeMetrics", "spans", "logRecords", "metrics", "attributes", "key", "value", "stringValue",
    "intValue", "doubleValue", "boolValue", "bytesValue", "arrayValue", "kvlistValue", "values",
    "traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano", "timeUnixNano",
    "events", "links", "status", "code", "message", "body", "severityNumber", "gauge", "sum",
    "histogram", "dataPoints", "asInt", "asDouble", "bucketCounts", "exemplars", "flags",
]  # fmt: skip
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["01" * 16, "02" * 8, "zz", "", "SPAN_KIND_SERVER", "NaN", "-1"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_OTLP_KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)
_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_reject(signal: str, body: bytes, content_type: str) -> None:
    try:
        batch = decode_request(signal, body, content_type)
    except Rejected as error:
        assert error.status in (400, 413, 415)
        return
    assert isinstance(batch, SignalBatch)
    assert batch.accepted >= 0 and batch.rejected >= 0


@_FUZZ
@given(signal=st.sampled_from(["traces", "logs", "metrics"]), body=st.binary(max_size=512))
def test_fuzz_random_bytes(signal: str, body: bytes) -> None:
    _decode_or_reject(signal, body, PROTOBUF)
    _decode_or_reject(signal, body, JSON)


@_FUZZ
@given(data=st.data())
def test_fuzz_mutated_protobuf(data: st.DataObject) -> None:
    body = bytearray(_SEED_PROTOBUF)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    _decode_or_reject("traces", bytes(body), PROTOBUF)
    _decode_or_reject("traces", bytes(body[:cut]), PROTOBUF)  # truncated as well
    _decode_or_reject("logs", bytes(body), PROTOBUF)
    _decode_or_reject("metrics", bytes(body), PROTOBUF)


@_FUZZ
@given(data=st.data())
def test_fuzz_mutated_json(data: st.DataObject) -> None:
    body = bytearray(_SEED_JSON)
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(body) - 1))
        body[position] = data.draw(st.sampled_from(b'{}[]",:0123456789abcdefz \\\xff'))
    _decode_or_reject("traces", bytes(body), JSON)


@_FUZZ
@given(
    signal=st.sampled_from(["traces", "logs", "metrics"]),
    document=st.dictionaries(st.sampled_from(_OTLP_KEYS), _JSON_VALUES, max_size=4),
)
def test_fuzz_random_json(signal: str, document: dict[str, Any]) -> None:
    _decode_or_reject(signal, json.dumps(document).encode(), JSON)


@_FUZZ
@given(spans=st.lists(_JSON_VALUES, max_size=4), resource=_JSON_VALUES)
def test_fuzz_json_shaped_like_otlp(spans: list[Any], resource: Any) -> None:
    document = {
        "resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}],
        "resourceLogs": [{"scopeLogs": [{"logRecords": spans}]}],
        "resourceMetrics": [{"scopeMetrics": [{"metrics": spans}]}],
    }
    body = json.dumps(document).encode()
    for signal in ("traces", "logs", "metrics"):
        _decode_or_reject(signal, body, JSON)
