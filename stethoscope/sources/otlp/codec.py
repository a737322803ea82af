"""Request bodies into OTLP messages: protobuf or OTLP/JSON, with the limits a receiver needs.

OTLP/JSON differs from the proto3 JSON mapping in one way that matters: trace and span ids are
hex, not base64. We rewrite those fields and then let protobuf's own JSON parser do the rest
(camelCase and snake_case keys, enum names or numbers, unknown fields ignored as the spec says).
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from stethoscope.errors import Rejected
from stethoscope.model.batch import SignalBatch
from stethoscope.sources.otlp.columns import MAX_VALUE_DEPTH, BadRecord
from stethoscope.sources.otlp.decode import decode_logs, decode_metrics, decode_traces
from stethoscope.sources.otlp.rawattrs import raw_request_type

DEFAULT_MAX_BODY = 20 * 1024 * 1024
PROTOBUF = "application/x-protobuf"
SIGNALS = ("traces", "logs", "metrics")
REQUEST_TYPES: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}
RESPONSE_TYPES: dict[str, type[Message]] = {
    "traces": ExportTraceServiceResponse,
    "logs": ExportLogsServiceResponse,
    "metrics": ExportMetricsServiceResponse,
}
_DECODERS = {"traces": decode_traces, "logs": decode_logs, "metrics": decode_metrics}
_REJECTED_FIELD = {
    "traces": "rejected_spans",
    "logs": "rejected_log_records",
    "metrics": "rejected_data_points",
}
_ID_KEYS = {"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"}
# A one-byte id: not valid hex in, so the record is rejected alone for its bad id.
_INVALID_ID = base64.b64encode(b"\x00").decode()
# Deep enough that any value the decoders take, or reject as one record, reaches them: a value
# sits up to 14 levels down (an exemplar's attribute) and each kvlist level is 4 JSON levels.
_MAX_JSON_DEPTH = 16 + 4 * (MAX_VALUE_DEPTH + 2)


def decompress(
    body: bytes | bytearray, encoding: str, *, max_size: int = DEFAULT_MAX_BODY
) -> bytes | bytearray:
    """The body after Content-Encoding, refusing to inflate past `max_size` (gzip bombs)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > max_size:
            raise Rejected(f"body of {len(body)} bytes exceeds the {max_size} limit", status=413)
        return body
    if encoding not in ("gzip", "deflate"):
        raise Rejected(f"unsupported Content-Encoding {encoding!r} (use gzip)", status=415)
    wbits = 47 if encoding == "gzip" else 15  # 47: gzip or zlib header, auto-detected
    data = b""
    rest = body
    # A gzip body may hold several members back to back (RFC 1952 2.2); all of them are the body.
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            data += inflater.decompress(rest, max_size + 1 - len(data))
        except zlib.error as error:
            raise Rejected(f"body is not valid {encoding}: {error}") from None
        if len(data) > max_size or inflater.unconsumed_tail:
            raise Rejected(f"decompressed body exceeds the {max_size} byte limit", status=413)
        if not inflater.eof:
            raise Rejected(f"body is not valid {encoding}: the stream is truncated")
        rest = inflater.unused_data
        if not rest:
            return data
        if encoding != "gzip":
            raise Rejected(f"body is not valid {encoding}: data after the end of the stream")


def media_type(content_type: str) -> str:
    """The media type of a Content-Type header, without its parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def parse_request(signal: str, body: bytes | bytearray, content_type: str) -> Message:
    """An export request message from a protobuf or JSON body."""
    media = media_type(content_type)
    message_type = REQUEST_TYPES[signal]
    if media == PROTOBUF:
        try:
            return (raw_request_type(signal) or message_type).FromString(body)
        except (DecodeError, RecursionError) as error:
            raise Rejected(f"body is not a valid {message_type.__name__}: {error}") from None
    if media == "application/json":
        return parse_json_request(signal, body)
    raise Rejected(
        f"unsupported Content-Type {content_type!r} "
        "(use application/x-protobuf or application/json)",
        status=415,
    )


def parse_json_request(signal: str, body: bytes | bytearray | str) -> Message:
    """An export request from OTLP/JSON (hex ids, lowerCamelCase, unknown fields ignored)."""
    message_type = REQUEST_TYPES[signal]
    try:
        # UTF-8 only (RFC 8259 8.1): json.loads would also guess UTF-16 and UTF-32 from bytes.
        document = json.loads(body if isinstance(body, str) else str(body, "utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as error:
        raise Rejected(f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise Rejected("JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise Rejected(f"JSON body must be an object, got {type(document).__name__}")
    try:
        _hex_ids_to_base64(document, 0)
        return json_format.ParseDict(document, message_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, BadRecord) as error:
        raise Rejected(f"JSON is not a valid {message_type.__name__}: {error}") from None


def _hex_ids_to_base64(node: Any, depth: int) -> None:
    if depth > _MAX_JSON_DEPTH:
        raise BadRecord(f"JSON nested deeper than {_MAX_JSON_DEPTH} levels")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = _hex_to_base64(value)
            elif isinstance(value, dict | list):
                _hex_ids_to_base64(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _hex_ids_to_base64(item, depth + 1)


def _hex_to_base64(text: str) -> str:
    if not text:
        return ""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return _INVALID_ID
    # fromhex skips whitespace; an id with spaces in it is not the hex the spec asks for.
    return base64.b64encode(raw).decode() if len(raw) * 2 == len(text) else _INVALID_ID


def decode_request(
    signal: str, body: bytes, content_type: str, *, imported: bool = False
) -> SignalBatch:
    """A request body (already decompressed) into a SignalBatch; Rejected when malformed."""
    message = parse_request(signal, body, content_type)
    return decode_message(signal, message, imported=imported)


def decode_message(signal: str, message: Message, *, imported: bool = False) -> SignalBatch:
    """An export request message into a SignalBatch; Rejected when it cannot be kept at all."""
    try:
        return _DECODERS[signal](message, imported=imported)  # type: ignore[operator]
    except BadRecord as error:
        # Only a resource or scope can fail the whole request this way.
        raise Rejected(f"request rejected: {error}") from None


def export_response(batch: SignalBatch) -> Message:
    """The Export*ServiceResponse, with partial_success when anything was rejected."""
    response = RESPONSE_TYPES[batch.signal]()
    if batch.rejected:
        partial = response.partial_success  # type: ignore[attr-defined]
        setattr(partial, _REJECTED_FIELD[batch.signal], batch.rejected)
        partial.error_message = "; ".join(batch.reasons)
    return response


def encode_response(message: Message, content_type: str) -> tuple[bytes, str]:
    """A response body in the same encoding as the request."""
    if media_type(content_type) == "application/json":
        text = json_format.MessageToJson(message, indent=None)
        return text.encode(), "application/json"
    return message.SerializeToString(), PROTOBUF
