"""Ingest benchmark: realistic OTLP/HTTP protobuf traffic through `steth up`, end to end.

Everything in the printed table is measured in the same run on this machine:

1. the bare protobuf parse rate (`FromString`, one core): the ceiling no decoder can pass, and
   the server's own decode to columns in this process, for comparison;
2. acknowledged spans/s and log records/s, sent from separate processes to a `steth up` child
   (the server acknowledges only once its write-ahead log is fsynced, so acknowledged = durable),
   with the server's peak memory (children included) and the bytes each row takes on disk;
3. query latency on a big store built through the same path: `steth trace` / `steth traces` as
   subprocesses (CLI start-up included) and the same queries in-process on a read-only store.

Run from the repository root:

    .venv/bin/python benchmarks/ingest.py --quick
    .venv/bin/python benchmarks/ingest.py --out results.json
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import http.client
import json
import multiprocessing as mp
import os
import queue
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

STETH = Path(sys.executable).with_name("steth")
PROTOBUF = "application/x-protobuf"
SPANS_PER_REQUEST = 512
LOGS_PER_REQUEST = 1024
GIB = 1024**3
MS = 1_000_000  # ns
REQUEST_ID = "app.request_id"  # a random hex id on every span, made new on every send
# Distinct rows each signal's pool holds: more than a row group (122,880 rows, in DuckDB's
# tables and in its Parquet files), so that no row group holds a pooled request twice. Within
# one, a request sent again repeats its durations, names and attribute values in the same
# order, which a store compresses as no real traffic lets it: a pool of 51,200 spans had made
# a compact segment 52.4 B/span where fresh durations and URL paths made it 57.6.
POOL_ROWS = 131_072

# -- traffic: a small shop of ~12 services ----------------------------------------------------

# service -> (SDK language, routes it serves)
SERVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "frontend": (
        "nodejs",
        (
            "GET /api/products",
            "GET /api/products/{id}",
            "GET /api/cart/{id}",
            "POST /api/cart/{id}/items",
            "POST /api/checkout/{id}",
            "GET /api/recommendations/{id}",
        ),
    ),
    "cart": ("go", ("GET /cart/{id}", "POST /cart/{id}/items", "DELETE /cart/{id}")),
    "product-catalog": ("go", ("GET /products", "GET /products/{id}")),
    "checkout": ("java", ("POST /checkout/{id}",)),
    "payment": ("python", ("POST /charge", "POST /refunds/{id}")),
    "shipping": ("rust", ("POST /quote", "POST /shipments/{id}")),
    "currency": ("cpp", ("GET /convert", "GET /currencies")),
    "email": ("ruby", ("POST /send/confirmation/{id}",)),
    "recommendation": ("python", ("GET /recommendations/{id}",)),
    "ad": ("java", ("GET /ads",)),
    "inventory": ("java", ("GET /stock/{id}", "POST /reservations/{id}")),
    "auth": ("go", ("POST /token/verify",)),
}
BACKENDS = [name for name in SERVICES if name != "frontend"]
INSTANCES_PER_SERVICE = 2
QUERY_SERVICE = "checkout"
DB_QUERIES = (
    ("postgresql", "SELECT", "SELECT id, qty, price FROM cart_items WHERE cart_id = $1"),
    ("postgresql", "UPDATE", "UPDATE stock SET reserved = reserved + $1 WHERE sku = $2"),
    ("redis", "GET", "GET product:{id}"),
    ("mongodb", "find", "db.orders.find({customer_id: ?})"),
)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
)
LOG_TEMPLATES = (
    (9, "{method} {path} -> {status} in {ms:.1f}ms"),
    (9, "user {user} added {qty} x sku-{sku} to cart {cart}"),
    (9, "charged order ord-{order} amount={amount:.2f} USD card=****{last4}"),
    (13, "payment declined for order ord-{order}: insufficient_funds (attempt {attempt}/3)"),
    (5, "cache miss for key product:{sku}, loading from database"),
    (13, "slow query took {ms:.0f}ms: SELECT * FROM products WHERE id = {sku}"),
    (13, "connection pool near capacity: active={active} idle={idle} waiting={waiting}"),
    (13, "retrying call to {peer} after timeout (attempt {attempt}/3, backoff {backoff}ms)"),
    (9, "quoted shipment {cart} at {amount:.2f} USD for {qty} items to zip {zip}"),
    (9, "sent order confirmation for ord-{order} to customer {user}"),
    (5, "recommendations for user {user}: {qty} products in {ms:.1f}ms"),
    (13, "rate limit exceeded for client 10.{a}.{b}.{c}, rejecting request {request}"),
    (
        17,
        "unhandled error processing ord-{order}: TimeoutError: deadline exceeded after {ms:.0f}ms"
        "\n  at Checkout.placeOrder (checkout.js:{line})\n  at async Router.handle (router.js:88)",
    ),
)
SEVERITY_TEXT = {5: "DEBUG", 9: "INFO", 13: "WARN", 17: "ERROR"}
LOG_TEMPLATE_WEIGHTS = (30, 8, 6, 2, 8, 2, 2, 2, 4, 4, 6, 1, 1)


def _kv(key: str, value: str | bool | int | float) -> KeyValue:
    """One OTLP attribute with the AnyValue variant its Python type calls for."""
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


@dataclass(frozen=True)
class Origin:
    """One service instance: its Resource and instrumentation scope."""

    service: str
    resource: Resource
    scope: InstrumentationScope


def make_origins(rng: random.Random) -> dict[tuple[str, int], Origin]:
    """Every (service, instance number) with 8 realistic resource attributes."""
    origins = {}
    for service, (language, _) in SERVICES.items():
        version = f"1.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
        for number in range(INSTANCES_PER_SERVICE):
            pod = f"{service}-{rng.getrandbits(36):09x}-{rng.getrandbits(20):05x}"
            attributes = {
                "service.name": service,
                "service.instance.id": str(uuid.UUID(int=rng.getrandbits(128))),
                "host.name": f"gke-prod-pool-{rng.randint(1, 40)}.c.shop-prod.internal",
                "k8s.pod.name": pod,
                "k8s.namespace.name": "shop",
                "deployment.environment": "production",
                "service.version": version,
                "telemetry.sdk.language": language,
            }
            resource = Resource(attributes=[_kv(k, v) for k, v in attributes.items()])
            scope = InstrumentationScope(name=f"io.opentelemetry.{language}.http", version="2.6.0")
            origins[(service, number)] = Origin(service, resource, scope)
    return origins


def _fill_route(route: str, rng: random.Random) -> str:
    return route.replace("{id}", str(rng.randint(1, 999_999)))


class TraceBuilder:
    """Builds one trace: a frontend request fanning out to backends, with DB calls."""

    def __init__(self, rng: random.Random, now_ns: int, max_spans: int) -> None:
        self.rng = rng
        self.trace_id = rng.randbytes(16)
        self.max_spans = max_spans
        self.now_ns = now_ns
        self.instance: dict[str, int] = {}
        self.spans: list[tuple[tuple[str, int], Span]] = []

    def build(self) -> list[tuple[tuple[str, int], Span]]:
        """The trace's spans, each with the (service, instance) that emitted it."""
        rng = self.rng
        start = self.now_ns - rng.randint(0, 120_000) * MS
        duration = int(rng.lognormvariate(3.4, 1.1) * MS)  # median 30 ms, ~14% over 100 ms
        route = rng.choice(SERVICES["frontend"][1])
        self._handle("frontend", route, b"", start, duration, depth=0)
        return self.spans

    def _handle(
        self, service: str, route: str, parent: bytes, start: int, duration: int, depth: int
    ) -> None:
        span_id = self._add(service, route, Span.SPAN_KIND_SERVER, parent, start, duration)
        rng = self.rng
        if rng.random() < 0.5:
            self._db_call(service, span_id, *self._child_time(start, duration))
        calls = rng.randint(1, 4) if depth == 0 else (rng.random() < 0.3) * rng.randint(1, 2)
        for _ in range(calls):
            if len(self.spans) + 2 > self.max_spans:
                return
            callee = rng.choice(BACKENDS)
            callee_route = rng.choice(SERVICES[callee][1])
            call_start, call_duration = self._child_time(start, duration)
            client_id = self._add(
                service, callee_route, Span.SPAN_KIND_CLIENT, span_id, call_start, call_duration
            )
            inner_start = call_start + call_duration // 20
            self._handle(
                callee, callee_route, client_id, inner_start, call_duration * 9 // 10, depth + 1
            )

    def _child_time(self, start: int, duration: int) -> tuple[int, int]:
        child = int(duration * self.rng.uniform(0.1, 0.7))
        return start + self.rng.randint(0, max(0, duration - child)), max(child, 1000)

    def _origin(self, service: str) -> tuple[str, int]:
        number = self.instance.setdefault(service, self.rng.randrange(INSTANCES_PER_SERVICE))
        return service, number

    def _add(
        self, service: str, route: str, kind: int, parent: bytes, start: int, duration: int
    ) -> bytes:
        rng = self.rng
        span_id = rng.randbytes(8)
        error = rng.random() < 0.02
        method, template = route.split(" ", 1)
        status = rng.choice((500, 503)) if error else (404 if rng.random() < 0.01 else 200)
        attributes = [
            _kv("http.request.method", method),
            _kv("http.route", template),
            _kv("url.path", _fill_route(template, rng)),
            _kv("http.response.status_code", status),
            _kv("server.address", f"{service}.shop.svc.cluster.local"),
            _kv("net.peer.port", rng.randint(32768, 60999)),
            _kv("user_agent.original", rng.choice(USER_AGENTS)),
            _kv(REQUEST_ID, rng.randbytes(16).hex()),
            _kv("app.cache_hit", rng.random() < 0.3),
            _kv("app.queue_wait_ms", round(rng.expovariate(0.5), 3)),
        ]
        self._append(service, route, kind, parent, span_id, start, duration, attributes, error)
        return span_id

    def _db_call(self, service: str, parent: bytes, start: int, duration: int) -> None:
        if len(self.spans) >= self.max_spans:
            return
        rng = self.rng
        system, operation, query = rng.choice(DB_QUERIES)
        attributes = [
            _kv("db.system.name", system),
            _kv("db.namespace", service.replace("-", "_")),
            _kv("db.operation.name", operation),
            _kv("db.query.text", query),
            _kv("server.address", f"{system}.shop.svc.cluster.local"),
            _kv("server.port", 5432 if system == "postgresql" else 6379),
            _kv("db.response.returned_rows", rng.randint(0, 50)),
            _kv(REQUEST_ID, rng.randbytes(16).hex()),
            _kv("app.cache_hit", rng.random() < 0.5),
            _kv("app.pool_wait_ms", round(rng.expovariate(2.0), 3)),
        ]
        name = f"{operation} {service.replace('-', '_')}"
        span_id = rng.randbytes(8)
        error = rng.random() < 0.02
        self._append(
            service,
            name,
            Span.SPAN_KIND_INTERNAL,
            parent,
            span_id,
            start,
            duration,
            attributes,
            error,
        )

    def _append(
        self,
        service: str,
        name: str,
        kind: int,
        parent: bytes,
        span_id: bytes,
        start: int,
        duration: int,
        attributes: list[KeyValue],
        error: bool,
    ) -> None:
        status = Status(code=Status.STATUS_CODE_ERROR, message="upstream failed") if error else None
        span = Span(
            trace_id=self.trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=name,
            kind=kind,  # type: ignore[arg-type]
            start_time_unix_nano=start,
            end_time_unix_nano=start + duration,
            attributes=attributes,
            status=status,
        )
        self.spans.append((self._origin(service), span))


@dataclass(frozen=True)
class Varied:
    """Where a pooled body's ids, hex tokens and timestamps sit, so each send makes them new.

    Real traffic never repeats a span id, a request id or a timestamp, and a store compresses
    repeats (a Parquet dictionary, a ZSTD window): a body sent again unchanged would make the
    disk bytes per row look better than any real service's would be.
    """

    pieces: list[bytes]  # distinct 8-byte halves of trace ids, and span ids, as generated
    piece_at: np.ndarray  # (occurrences, 8) byte positions of each occurrence of a piece
    piece_of: np.ndarray  # which piece each occurrence is
    hex_at: np.ndarray  # (tokens, 16) byte positions of 16 hex digits of a generated token
    time_at: np.ndarray  # (occurrences, 8) byte positions of fixed64 timestamps
    time_value: np.ndarray  # the uint64 each timestamp occurrence holds


@dataclass
class PooledBody:
    """One serialized request, what each send varies in it, and how many records it holds."""

    body: bytes
    records: int
    varied: Varied
    first_trace: tuple[bytes, int] = (b"", 0)  # (original id, span count) of its first trace


HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
HEX_RUN = re.compile(r"[0-9a-f]{16,}")  # request ids in log bodies
TIME_STEP_NS = 7_919  # each request number moves its timestamps this much: distinct, same spread


def _occurrences(body: bytes, needles: Sequence[bytes]) -> tuple[list[int], list[int]]:
    """Where in `body` each needle (8 bytes or more) occurs: (positions, needle numbers).

    One pass over the body's 8-byte windows, matched against every needle's first 8 bytes at
    once: a `bytes.find` per needle took 85% of generating a pool (0.3-0.5 s a request).
    """
    raw = np.frombuffer(body, dtype=np.uint8)
    if len(raw) < 8 or not needles:
        return [], []
    windows = np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(raw, 8))
    words = windows.view("<u8").ravel()
    heads = np.frombuffer(b"".join(needle[:8] for needle in needles), dtype="<u8")
    order = np.argsort(heads, kind="stable")
    sorted_heads = heads[order]
    at = np.flatnonzero(np.isin(words, sorted_heads))
    first = np.searchsorted(sorted_heads, words[at])
    positions: list[int] = []
    which: list[int] = []
    for position, index in zip(at.tolist(), first.tolist(), strict=True):
        # Needles sharing their first 8 bytes sit side by side in `order`.
        while index < len(order) and sorted_heads[index] == words[position]:
            number = int(order[index])
            needle = needles[number]
            if body[position : position + len(needle)] == needle:
                positions.append(position)
                which.append(number)
            index += 1
    return positions, which


def _positions(width: int, starts: list[int]) -> np.ndarray:
    return np.asarray(starts, dtype=np.int64).reshape(-1, 1) + np.arange(width, dtype=np.int64)


def locate_varied(body: bytes, ids: list[bytes], tokens: list[str], times: list[int]) -> Varied:
    """Every occurrence in `body` of the ids' 8-byte pieces, the hex tokens and timestamps."""
    pieces = list(dict.fromkeys(piece for one in ids for piece in (one[:8], one[8:]) if piece))
    starts, which = _occurrences(body, pieces)
    distinct_tokens = list(dict.fromkeys(tokens))
    token_starts, token_of = _occurrences(body, [token.encode() for token in distinct_tokens])
    hex_starts = [
        position + offset
        for position, number in zip(token_starts, token_of, strict=True)
        for offset in range(0, len(distinct_tokens[number]) - 15, 16)
    ]
    values = list(dict.fromkeys(times))
    time_starts, value_of = _occurrences(body, [value.to_bytes(8, "little") for value in values])
    return Varied(
        pieces,
        _positions(8, starts),
        np.asarray(which, dtype=np.int64),
        _positions(16, hex_starts),
        _positions(8, time_starts),
        np.asarray([values[number] for number in value_of], dtype=np.uint64),
    )


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64: distinct inputs to well-spread, distinct-looking 64-bit outputs."""
    x = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def fresh_words(request_number: int, count: int, salt: int) -> np.ndarray:
    """`count` random-looking uint64, unique per (request number, index, salt)."""
    keys = (np.uint64(request_number) << np.uint64(24)) | np.arange(count, dtype=np.uint64)
    return _mix(keys ^ np.uint64(salt << 56))


def patched_body(pooled: PooledBody, request_number: int) -> bytearray:
    """A copy of the body with new ids, hex tokens and timestamps for this request number."""
    varied = pooled.varied
    buffer = bytearray(pooled.body)
    view = np.frombuffer(buffer, dtype=np.uint8)
    if varied.pieces:
        fresh = fresh_words(request_number, len(varied.pieces), salt=1).astype(">u8")
        view[varied.piece_at] = fresh.view(np.uint8).reshape(-1, 8)[varied.piece_of]
    if len(varied.hex_at):
        raw = fresh_words(request_number, len(varied.hex_at), salt=2).astype(">u8")
        octets = raw.view(np.uint8).reshape(-1, 8)
        nibbles = np.stack((octets >> 4, octets & 15), axis=-1).reshape(-1, 16)
        view[varied.hex_at] = HEX_DIGITS[nibbles]
    if len(varied.time_value):
        moved = varied.time_value + np.uint64(request_number * TIME_STEP_NS)
        view[varied.time_at] = moved.astype("<u8").view(np.uint8).reshape(-1, 8)
    return buffer


def trace_request(rng: random.Random, origins: dict[tuple[str, int], Origin]) -> PooledBody:
    """One ExportTraceServiceRequest of whole traces, exactly SPANS_PER_REQUEST spans."""
    now = time.time_ns()
    groups: dict[tuple[str, int], list[Span]] = {}
    traces: list[tuple[bytes, int]] = []
    total = 0
    while total < SPANS_PER_REQUEST:
        spans = TraceBuilder(rng, now, SPANS_PER_REQUEST - total).build()
        traces.append((spans[0][1].trace_id, len(spans)))
        total += len(spans)
        for origin, span in spans:
            groups.setdefault(origin, []).append(span)
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=origins[key].resource,
                scope_spans=[ScopeSpans(scope=origins[key].scope, spans=spans)],
            )
            for key, spans in groups.items()
        ]
    )
    every = [span for spans in groups.values() for span in spans]
    body = request.SerializeToString()
    varied = locate_varied(
        body,
        ids=[trace_id for trace_id, _ in traces] + [span.span_id for span in every],
        tokens=[a.value.string_value for s in every for a in s.attributes if a.key == REQUEST_ID],
        times=[t for span in every for t in (span.start_time_unix_nano, span.end_time_unix_nano)],
    )
    return PooledBody(body, total, varied, first_trace=traces[0])


def _log_body(rng: random.Random, template: str) -> str:
    return template.format(
        method=rng.choice(("GET", "POST", "PUT")),
        path=_fill_route(rng.choice(SERVICES["frontend"][1]).split(" ")[1], rng),
        status=rng.choice((200, 200, 200, 201, 204, 404, 500)),
        ms=rng.lognormvariate(3.0, 1.0),
        user=rng.randint(1, 5_000_000),
        qty=rng.randint(1, 12),
        sku=rng.randint(10_000, 99_999),
        cart=uuid.UUID(int=rng.getrandbits(128)),
        order=rng.getrandbits(40),
        amount=rng.uniform(3, 900),
        last4=rng.randint(1000, 9999),
        attempt=rng.randint(1, 3),
        active=rng.randint(15, 20),
        idle=rng.randint(0, 3),
        waiting=rng.randint(0, 40),
        peer=rng.choice(BACKENDS),
        backoff=rng.choice((50, 100, 200, 400)),
        zip=rng.randint(10_000, 99_999),
        a=rng.randint(0, 255),
        b=rng.randint(0, 255),
        c=rng.randint(0, 255),
        request=rng.randbytes(8).hex(),
        line=rng.randint(40, 400),
    )


def _log_record(rng: random.Random, now: int, service: str) -> LogRecord:
    """One realistic record; about half carry the trace and span they were logged in."""
    severity, template = rng.choices(LOG_TEMPLATES, weights=LOG_TEMPLATE_WEIGHTS)[0]
    when = now - rng.randint(0, 120_000) * MS
    record = LogRecord(
        time_unix_nano=when,
        observed_time_unix_nano=when + rng.randint(100_000, 5_000_000),
        severity_number=severity,  # type: ignore[arg-type]
        severity_text=SEVERITY_TEXT[severity],
        body=AnyValue(string_value=_log_body(rng, template)),
        attributes=[
            _kv("logger.name", f"{service}.{rng.choice(('http', 'db', 'service', 'worker'))}"),
            _kv("thread.id", rng.randint(1, 64)),
            _kv("code.function.name", rng.choice(("handle", "placeOrder", "charge", "load"))),
        ],
    )
    if rng.random() < 0.5:
        record.trace_id = rng.randbytes(16)
        record.span_id = rng.randbytes(8)
        record.flags = 1
    return record


def log_request(rng: random.Random, origins: dict[tuple[str, int], Origin]) -> PooledBody:
    """One ExportLogsServiceRequest of LOGS_PER_REQUEST records from many service instances."""
    now = time.time_ns()
    groups: dict[tuple[str, int], list[LogRecord]] = {}
    keys = list(origins)
    for _ in range(LOGS_PER_REQUEST):
        key = rng.choice(keys)
        groups.setdefault(key, []).append(_log_record(rng, now, key[0]))
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=origins[key].resource,
                scope_logs=[ScopeLogs(scope=origins[key].scope, log_records=records)],
            )
            for key, records in groups.items()
        ]
    )
    every = [record for records in groups.values() for record in records]
    body = request.SerializeToString()
    varied = locate_varied(
        body,
        ids=[id_ for record in every for id_ in (record.trace_id, record.span_id) if id_],
        tokens=[token for record in every for token in HEX_RUN.findall(record.body.string_value)],
        times=[t for r in every for t in (r.time_unix_nano, r.observed_time_unix_nano)],
    )
    return PooledBody(body, LOGS_PER_REQUEST, varied)


def build_pool(signal_name: str, count: int, seed: int) -> list[PooledBody]:
    """`count` distinct serialized requests (generated before any timing starts)."""
    rng = random.Random(seed)
    origins = make_origins(random.Random(1))
    make = trace_request if signal_name == "traces" else log_request
    return [make(rng, origins) for _ in range(count)]


def known_trace(pool: list[PooledBody]) -> tuple[str, int]:
    """The hex id and span count of the first trace of request number 0 (as sent)."""
    original, spans = pool[0].first_trace
    pieces = pool[0].varied.pieces
    fresh = fresh_words(0, len(pieces), salt=1)
    hi, lo = (int(fresh[pieces.index(half)]) for half in (original[:8], original[8:]))
    return f"{hi:016x}{lo:016x}", spans


# -- in-process rates -------------------------------------------------------------------------


def rate_over_pool(
    pool: list[PooledBody], work: Callable[[bytes], object], seconds: float
) -> float:
    """Records per second that `work` gets through, cycling over the pool for `seconds`."""
    records = 0
    started = time.perf_counter()
    while True:
        for pooled in pool:
            work(pooled.body)
            records += pooled.records
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return records / elapsed


# -- the server child -------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGKILL if the benchmark dies, so no server outlives it (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET from 127.0.0.1:port; (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class ServerProcess:
    """`steth up` on free ports as a child process; always stopped (then killed) on exit."""

    def __init__(self, data_dir: Path, log_path: Path, options: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.options = list(options)  # more `steth up` options
        self.log_path = log_path
        self.http_port, self.grpc_port, self.ui_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        command = [
            str(STETH),
            "up",
            "--data",
            str(self.data_dir),
            "--http-port",
            str(self.http_port),
            "--grpc-port",
            str(self.grpc_port),
            "--ui-port",
            str(self.ui_port),
            *self.options,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._wait_healthy(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        tree = self._descendants()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._kill_left(tree)

    def _descendants(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            return list(psutil.Process(self.pid).children(recursive=True))
        return []

    @staticmethod
    def _kill_left(tree: list[psutil.Process], grace: float = 0.0) -> int:
        """Kill the server's processes still running `grace` seconds after it exited."""
        deadline = time.monotonic() + grace
        while (left := [process for process in tree if _running(process)]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        for process in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        return len(left)

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"steth up exited early; see {self.log_path}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_get(self.http_port, "/healthz", timeout=2)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"steth up not healthy after {timeout}s; see {self.log_path}")

    def stats(self) -> dict[str, Any]:
        """The pipeline counters from GET /api/stats."""
        status, body = http_get(self.ui_port, "/api/stats")
        if status != 200:
            raise RuntimeError(f"/api/stats answered {status}: {body[:200]!r}")
        return dict(json.loads(body))

    def wait_stored(self, expected: int, timeout: float) -> dict[str, Any]:
        """Poll until everything acknowledged is written to the store (pending_bytes == 0)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["pending_bytes"] == 0 and stats["accepted"] >= expected:
                return stats
            if time.monotonic() > deadline:
                raise RuntimeError(f"store did not catch up within {timeout}s: {stats}")
            time.sleep(0.1)

    def stop(self, timeout: float = 900.0) -> tuple[float, int]:
        """SIGTERM, wait for the drain and exit: (seconds it took, child processes left)."""
        assert self.process is not None
        tree = self._descendants()
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        elapsed = time.monotonic() - started
        left = self._kill_left(tree, grace=5.0)
        if code != 0:
            raise RuntimeError(f"steth up exited with {code}; see {self.log_path}")
        return elapsed, left

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server and its live child processes so far."""
        root = psutil.Process(self.pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total


def _running(process: psutil.Process) -> bool:
    """Alive and not a zombie (is_running() also guards against pid reuse)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return False


class MemorySampler:
    """Samples the memory of a process tree every `interval` seconds in a thread; keeps peaks.

    `peak_pss` is of the whole tree as the machine pays it: proportional set sizes, each shared
    page (the libraries every worker maps, pages a fork shares) counted once across the tree.
    `peak` sums the processes' RSS, which counts a shared page once per process: 285-313 MiB
    more than PSS with two decode workers and the mining process (1,059 against 774). `peak_main`
    is the server process's RSS alone and `peak_children` its children's, each at its own moment.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = self.peak_pss = self.peak_main = self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.pid)
            while not self._stop.is_set():
                server = root.memory_full_info()  # ~1 ms a process (smaps_rollup)
                main, pss, children = server.rss, server.pss, 0
                for child in root.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        memory = child.memory_full_info()
                        children += memory.rss
                        pss += memory.pss
                self.peak = max(self.peak, main + children)
                self.peak_pss = max(self.peak_pss, pss)
                self.peak_main = max(self.peak_main, main)
                self.peak_children = max(self.peak_children, children)
                self._stop.wait(self.interval)


# -- senders (separate processes) -------------------------------------------------------------


@dataclass(frozen=True)
class SenderJob:
    """What one sender process posts: request numbers first, first+step, ... (count of them)."""

    port: int
    signal: str
    pool: list[PooledBody]
    first: int
    step: int
    count: int


@dataclass
class SenderResult:
    """What one sender saw; times are time.monotonic() (system-wide on Linux)."""

    acknowledged: int = 0
    rejected: int = 0
    requests: int = 0
    retries: int = 0
    retry_wait_s: float = 0.0
    reconnects: int = 0
    failed: int = 0
    first_error: str = ""
    started: float = 0.0
    finished: float = 0.0
    cpu_s: float = 0.0


class Sender:
    """A keep-alive OTLP/HTTP client that honours Retry-After on 429/503."""

    def __init__(self, job: SenderJob) -> None:
        self.job = job
        self.result = SenderResult()
        self.response_type = (
            ExportTraceServiceResponse if job.signal == "traces" else ExportLogsServiceResponse
        )
        self.connection = http.client.HTTPConnection("127.0.0.1", job.port, timeout=120)

    def run(self, go: Any) -> SenderResult:
        """Wait for `go`, then send every request of the job."""
        go.wait()
        cpu = time.process_time()
        self.result.started = time.monotonic()
        job = self.job
        for index in range(job.count):
            number = job.first + index * job.step
            pooled = job.pool[number % len(job.pool)]
            self._send(patched_body(pooled, number), pooled.records)
        self.result.finished = time.monotonic()
        self.result.cpu_s = time.process_time() - cpu
        self.connection.close()
        return self.result

    def _send(self, body: bytearray, records: int) -> None:
        headers = {"Content-Type": PROTOBUF}
        for _ in range(1000):
            try:
                self.connection.request("POST", f"/v1/{self.job.signal}", body, headers)
                response = self.connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                self.result.reconnects += 1
                self.connection.close()
                time.sleep(0.1)
                continue
            if response.status in (429, 503):
                wait = float(response.getheader("Retry-After") or 1)
                self.result.retries += 1
                self.result.retry_wait_s += wait
                time.sleep(wait)
                continue
            self._record(response.status, payload, records)
            return
        self._fail(f"gave up after 1000 attempts; last status {response.status}")

    def _record(self, status: int, payload: bytes, records: int) -> None:
        self.result.requests += 1
        if status != 200:
            self._fail(f"HTTP {status}: {payload[:200]!r}")
            return
        partial = self.response_type.FromString(payload).partial_success
        rejected = getattr(partial, "rejected_spans", 0) or getattr(
            partial, "rejected_log_records", 0
        )
        self.result.rejected += rejected
        self.result.acknowledged += records - rejected

    def _fail(self, message: str) -> None:
        self.result.failed += 1
        self.result.first_error = self.result.first_error or message


def sender_main(job: SenderJob, go: Any, ready: Any, results: Any) -> None:
    """Entry point of a sender process."""
    sender = Sender(job)
    ready.put(job.first)
    results.put(sender.run(go))


def send_all(
    port: int,
    signal_name: str,
    pool: list[PooledBody],
    requests: int,
    senders: int,
    on_ready: Callable[[], object] = lambda: None,
) -> list[SenderResult]:
    """Post `requests` requests from `senders` processes at once; their results. `on_ready` is
    called once every sender has started, just before they begin."""
    context = mp.get_context("spawn")
    go, ready, results = context.Event(), context.Queue(), context.Queue()
    processes = []
    for first in range(senders):
        count = len(range(first, requests, senders))
        job = SenderJob(port, signal_name, pool, first, senders, count)
        process = context.Process(target=sender_main, args=(job, go, ready, results), daemon=True)
        process.start()
        processes.append(process)
    try:
        for _ in processes:
            ready.get(timeout=120)
        on_ready()
        go.set()
        return [_next_result(results, processes) for _ in processes]
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _next_result(results: Any, processes: list[Any]) -> SenderResult:
    while True:
        with contextlib.suppress(queue.Empty):
            return results.get(timeout=1.0)  # type: ignore[no-any-return]
        if all(not process.is_alive() for process in processes) and results.empty():
            raise RuntimeError("a sender process died without a result")


# -- phases -----------------------------------------------------------------------------------


@dataclass
class IngestResult:
    """One server run: send, wait until stored, stop, measure the files."""

    signal: str
    records: int = 0  # acknowledged
    rejected: int = 0
    failed_requests: int = 0
    first_error: str = ""
    seconds: float = 0.0
    rate: float = 0.0
    retries: int = 0
    retry_wait_s: float = 0.0
    reconnects: int = 0
    sender_cpu_s: float = 0.0
    server_cores: float = 0.0  # server CPU seconds / ingest wall seconds
    other_cores: float = 0.0  # CPU used meanwhile by processes that are not part of the run
    stored_after_s: float = 0.0  # from the first send until pending_bytes == 0
    stop_s: float = 0.0
    store_wal_at_stop: int = 0  # size of steth.duckdb.wal when SIGTERM was sent
    left_processes: int = 0  # server children still running after it exited (then killed)
    peak_pss: int = 0  # whole tree, shared pages counted once (what the target is about)
    peak_rss: int = 0  # whole tree, RSS summed
    peak_rss_main: int = 0
    peak_rss_children: int = 0
    store_bytes: int = 0
    wal_bytes: int = 0
    store_used_bytes: int = 0  # blocks of steth.duckdb holding data
    store_free_bytes: int = 0  # blocks of steth.duckdb that are free (not returned to the OS)
    rows: int = 0
    files: dict[str, int] = field(default_factory=dict)
    segment_bytes: int = 0  # Parquet segments (`steth up`'s default compact store)

    @property
    def bytes_per_row(self) -> float:
        """Disk bytes per stored row: the store file, its segments and every *.wal file left."""
        return (self.store_bytes + self.segment_bytes + self.wal_bytes) / max(self.rows, 1)


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far: by the server tree, by this process, by the whole machine."""

    server: float
    benchmark: float
    machine: float

    @classmethod
    def take(cls, server: ServerProcess) -> CpuSnapshot:
        """The counters now."""
        own = psutil.Process().cpu_times()
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return cls(server.cpu_seconds(), own.user + own.system, busy)

    def since(self, server: ServerProcess, senders_cpu: float) -> tuple[float, float]:
        """(server CPU seconds, CPU seconds of everything else on the machine) since then."""
        now = CpuSnapshot.take(server)
        server_cpu = now.server - self.server
        ours = server_cpu + senders_cpu + now.benchmark - self.benchmark
        return server_cpu, max(0.0, now.machine - self.machine - ours)


def run_ingest(
    signal_name: str,
    pool: list[PooledBody],
    records: int,
    data_dir: Path,
    senders: int,
    options: Sequence[str] = (),
) -> IngestResult:
    """Start a server (`steth up OPTIONS`) on `data_dir`, ingest `records`, wait until stored,
    stop it, measure."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise RuntimeError(f"{data_dir} is not empty: measuring needs a fresh data directory")
    per_request = pool[0].records
    requests = -(-records // per_request)
    result = IngestResult(signal_name)
    log_path = data_dir.parent / f"{data_dir.name}.server.log"
    with ServerProcess(data_dir, log_path, options) as server, MemorySampler(server.pid) as memory:
        # Taken once the senders have started: starting one (spawn, imports, unpickling the
        # pool) took CPU that would otherwise have counted as other processes'.
        before: list[CpuSnapshot] = []
        sent = send_all(
            server.http_port,
            signal_name,
            pool,
            requests,
            senders,
            on_ready=lambda: before.append(CpuSnapshot.take(server)),
        )
        _fold(result, sent)
        server_cpu, others_cpu = before[0].since(server, result.sender_cpu_s)
        result.server_cores = server_cpu / result.seconds
        result.other_cores = others_cpu / result.seconds
        progress(f"  {signal_name}: {result.records:,} acknowledged, waiting for the store")
        server.wait_stored(result.records, timeout=1800)
        result.stored_after_s = time.monotonic() - min(s.started for s in sent)
        store_wal = data_dir / "steth.duckdb.wal"  # DuckDB's own log, folded in at shutdown
        result.store_wal_at_stop = store_wal.stat().st_size if store_wal.exists() else 0
        progress("  stopping the server (SIGTERM)")
        result.stop_s, result.left_processes = server.stop()
    result.peak_pss, result.peak_rss = memory.peak_pss, memory.peak
    result.peak_rss_main = memory.peak_main
    result.peak_rss_children = memory.peak_children
    _measure_files(result, data_dir)
    return result


def _fold(result: IngestResult, sent: list[SenderResult]) -> None:
    result.records = sum(s.acknowledged for s in sent)
    result.rejected = sum(s.rejected for s in sent)
    result.failed_requests = sum(s.failed for s in sent)
    result.first_error = next((s.first_error for s in sent if s.first_error), "")
    result.retries = sum(s.retries for s in sent)
    result.retry_wait_s = sum(s.retry_wait_s for s in sent)
    result.reconnects = sum(s.reconnects for s in sent)
    result.sender_cpu_s = sum(s.cpu_s for s in sent)
    result.seconds = max(s.finished for s in sent) - min(s.started for s in sent)
    result.rate = result.records / result.seconds


def _measure_files(result: IngestResult, data_dir: Path) -> None:
    """Sizes of the store file, its segments and every *.wal left; rows counted in the store."""
    from stethoscope.store.duckdb.segments import SEGMENT_DIR
    from stethoscope.store.duckdb.store import STORE_FILE, DuckDBStore

    store_file = data_dir / STORE_FILE
    result.files = {
        str(path.relative_to(data_dir)): path.stat().st_size
        for path in [store_file, *sorted(data_dir.rglob("*.wal"))]
        if path.exists()
    }
    result.store_bytes = result.files.get("steth.duckdb", 0)
    result.wal_bytes = sum(size for name, size in result.files.items() if name.endswith(".wal"))
    segments = [path.stat().st_size for path in (data_dir / SEGMENT_DIR).glob("*.parquet")]
    result.segment_bytes = sum(segments)
    if segments:
        result.files[f"{SEGMENT_DIR}/ ({len(segments)} files)"] = result.segment_bytes
    table = "spans" if result.signal == "traces" else "logs"
    store = DuckDBStore(data_dir, read_only=True)
    try:
        cursor = store.cursor()
        found = cursor.execute(f"SELECT count(*) FROM {table}").fetchone()
        result.rows = int(found[0]) if found else 0
        # DuckDB keeps freed blocks inside the file; report live data and free space apart.
        blocks = cursor.execute(
            "SELECT block_size, used_blocks, free_blocks FROM pragma_database_size()"
        ).fetchone()
        if blocks:
            result.store_used_bytes = int(blocks[0]) * int(blocks[1])
            result.store_free_bytes = int(blocks[0]) * int(blocks[2])
    finally:
        store.close()


@dataclass
class QueryResult:
    """Median latencies (seconds) on the big store, CLI and in-process."""

    spans: int
    trace_id: str
    trace_spans_expected: int
    trace_spans_found: int = 0
    traces_found: int = 0
    cli_startup_s: float = 0.0
    cli_trace_s: float = 0.0
    cli_traces_s: float = 0.0
    api_trace_s: float = 0.0  # the CLI again, answered by a server running on the store
    api_traces_s: float = 0.0
    open_s: float = 0.0
    trace_s: float = 0.0
    traces_s: float = 0.0


def median_time(call: Callable[[], object], runs: int = 5) -> tuple[float, object]:
    """Median wall time of `runs` calls after one warm-up, and the last call's result."""
    answer = call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), answer


def run_cli(*arguments: str) -> str:
    """Run `steth ARGS`; its stdout (a non-zero exit is an error)."""
    done = subprocess.run([str(STETH), *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"steth {' '.join(arguments)} failed: {done.stderr.strip()}")
    return done.stdout


def time_queries(data_dir: Path, spans: int, trace_id: str, expected: int) -> QueryResult:
    """Time `steth trace` / `steth traces` as subprocesses and the same calls in-process."""
    from stethoscope.store.base import TraceQuery
    from stethoscope.store.duckdb.store import DuckDBStore

    data = str(data_dir)
    result = QueryResult(spans, trace_id, expected)
    result.cli_startup_s, _ = median_time(lambda: run_cli("--version"))
    result.cli_trace_s, text = median_time(
        lambda: run_cli("trace", trace_id, "--json", "--data", data)
    )
    result.trace_spans_found = len(json.loads(str(text))["spans"])
    traces_args = ("traces", "--service", QUERY_SERVICE, "--min-duration", "100ms")
    result.cli_traces_s, text = median_time(
        lambda: run_cli(*traces_args, "--limit", "20", "--json", "--data", data)
    )
    result.traces_found = len(json.loads(str(text))["traces"])
    started = time.perf_counter()
    store = DuckDBStore(data_dir, read_only=True)
    result.open_s = time.perf_counter() - started
    try:
        query = TraceQuery(service=QUERY_SERVICE, min_duration_ns=100 * MS, limit=20)
        result.trace_s, _ = median_time(lambda: store.trace(trace_id))
        result.traces_s, _ = median_time(lambda: store.traces(query))
    finally:
        store.close()
    # With `steth up` running on the data directory the CLI asks its API instead.
    with ServerProcess(data_dir, data_dir.parent / "query-server.log"):
        result.api_trace_s, text = median_time(
            lambda: run_cli("trace", trace_id, "--json", "--data", data)
        )
        assert len(json.loads(str(text))["spans"]) == result.trace_spans_found
        result.api_traces_s, _ = median_time(
            lambda: run_cli(*traces_args, "--limit", "20", "--json", "--data", data)
        )
    return result


# -- report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the final table; `target` is (comparison, value, text) or None."""

    metric: str
    measured: str
    value: float | None = None
    target: tuple[str, float, str] | None = None

    def verdict(self) -> str:
        """'<measured/target>x of target  PASS|FAIL', or '' without a target."""
        if self.target is None or self.value is None:
            return ""
        comparison, goal, _ = self.target
        checks = {">=": self.value >= goal, "<=": self.value <= goal, "<": self.value < goal}
        ok = checks[comparison]
        ratio = self.value / goal
        return f"{ratio:.2f}x of target  {'PASS' if ok else 'FAIL'}"


def rate_text(value: float, unit: str) -> str:
    """A rate with thousands separators: '28,000 spans/s'."""
    return f"{value:,.0f} {unit}"


def ingest_rows(result: IngestResult, unit: str, target: float) -> list[Row]:
    """The table lines for one ingest phase."""
    name = "spans" if result.signal == "traces" else "log records"
    per_row = "span" if result.signal == "traces" else "log record"
    goal_bytes = 60.0 if result.signal == "traces" else None
    return [
        Row(
            f"OTLP/HTTP ingest, {name} (ack = durable)",
            rate_text(result.rate, f"{unit}/s"),
            result.rate,
            (">=", target, f">= {target:,.0f}"),
        ),
        Row(
            "  acknowledged / in store / rejected / failed requests",
            f"{result.records:,} / {result.rows:,} / {result.rejected:,} / "
            f"{result.failed_requests:,}",
        ),
        Row(
            "  429/503 retries (total Retry-After wait)",
            f"{result.retries:,} ({result.retry_wait_s:.0f} s)",
        ),
        Row("  wall time of sending", f"{result.seconds:.1f} s"),
        Row(
            "  ack -> stored: rate until pending_bytes == 0",
            rate_text(result.records / result.stored_after_s, f"{unit}/s"),
        ),
        Row(
            "  CPU while sending: server / senders / other processes",
            f"{result.server_cores:.2f} / {result.sender_cpu_s / result.seconds:.2f} / "
            f"{result.other_cores:.2f} cores",
        ),
        Row(
            "  shutdown (SIGTERM -> exit) / steth.duckdb.wal then / children left",
            f"{result.stop_s:.1f} s / {_mib(result.store_wal_at_stop, 1)} / "
            f"{result.left_processes}",
        ),
        Row(
            "  server peak memory, whole tree: PSS (shared pages once) / RSS summed",
            f"{_mib(result.peak_pss)} / {_mib(result.peak_rss)}",
            result.peak_pss / GIB,
            ("<", 1.0, "< 1 GiB"),
        ),
        Row(
            "  server peak RSS, main / children alone",
            f"{_mib(result.peak_rss_main)} / {_mib(result.peak_rss_children)}",
        ),
        Row(
            f"  disk bytes per {per_row} (store + segments + *.wal)",
            f"{result.bytes_per_row:.1f} B",
            result.bytes_per_row,
            ("<=", goal_bytes, f"<= {goal_bytes:.0f}") if goal_bytes else None,
        ),
        Row(
            f"  disk bytes per {per_row}, steth.duckdb alone (used / free blocks)",
            f"{result.store_bytes / max(result.rows, 1):.1f} B "
            f"({result.store_used_bytes / max(result.rows, 1):.1f} / "
            f"{result.store_free_bytes / max(result.rows, 1):.1f} B)",
        ),
        Row("  files", ", ".join(f"{k} {_mib(v, 1)}" for k, v in result.files.items())),
    ]


def query_rows(result: QueryResult) -> list[Row]:
    """The table lines for the big-store queries."""
    at = f"at {result.spans / 1e6:.3g}M spans"
    ms = 1000.0
    lookup = ("<", 0.1, "< 100 ms")
    return [
        Row(
            f"trace lookup {at}, in-process (store.trace)",
            f"{result.trace_s * ms:.1f} ms",
            result.trace_s,
            lookup,
        ),
        Row(
            f"trace lookup {at}, `steth trace --json`",
            f"{result.cli_trace_s * ms:.1f} ms",
            result.cli_trace_s,
            lookup,
        ),
        Row(
            f"trace lookup {at}, `steth trace --json`, server running (its API)",
            f"{result.api_trace_s * ms:.1f} ms",
            result.api_trace_s,
            lookup,
        ),
        Row(
            "  spans in the looked-up trace (found / sent)",
            f"{result.trace_spans_found} / {result.trace_spans_expected}",
        ),
        Row(f"traces search {at}, in-process (store.traces)", f"{result.traces_s * ms:.1f} ms"),
        Row(f"traces search {at}, `steth traces ... --json`", f"{result.cli_traces_s * ms:.1f} ms"),
        Row(
            f"traces search {at}, `steth traces ... --json`, server running",
            f"{result.api_traces_s * ms:.1f} ms",
        ),
        Row(
            f"  (--service {QUERY_SERVICE} --min-duration 100ms --limit 20) traces found",
            str(result.traces_found),
        ),
        Row("CLI start-up alone (`steth --version`)", f"{result.cli_startup_s * ms:.1f} ms"),
        Row("open store read-only, in-process", f"{result.open_s * ms:.1f} ms"),
    ]


def print_table(title: str, rows: list[Row]) -> None:
    """The final table on stdout, under a title line."""
    print(title)
    header = ("metric", "measured", "target", "ratio / verdict")
    cells = [header] + [
        (row.metric, row.measured, row.target[2] if row.target else "", row.verdict())
        for row in rows
    ]
    widths = [max(len(cell[i]) for cell in cells) for i in range(3)]
    for number, cell in enumerate(cells):
        padded = [text.ljust(width) for text, width in zip(cell, widths, strict=False)]
        print("  ".join([*padded, cell[3]]).rstrip())
        if number == 0:
            print("-" * (sum(widths) + 6 + len(header[3])))


def progress(message: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, with --quick or full-size defaults filled in, checked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, help="spans to send (2,000,000; --quick 200,000)")
    parser.add_argument("--logs", type=int, help="log records (2,000,000; --quick 200,000)")
    parser.add_argument(
        "--big-store-spans",
        type=int,
        help="spans in the query store (10,000,000; --quick 1,000,000; 0 skips)",
    )
    parser.add_argument(
        "--senders",
        type=int,
        default=8,
        help="sender processes, each with one request in flight (8: an OpenTelemetry "
        "Collector's exporter sends with 10 consumers by default; a few synchronous senders "
        "measure request latency more than the server's capacity)",
    )
    parser.add_argument(
        "--pool",
        type=int,
        help=f"distinct requests per signal ({POOL_ROWS:,} rows: {POOL_ROWS // SPANS_PER_REQUEST} "
        f"trace and {POOL_ROWS // LOGS_PER_REQUEST} log requests; --quick 50)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller defaults for a smoke run")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep", type=Path, help="keep the data directories under this path")
    parser.add_argument(
        "--table-store",
        action="store_true",
        help="run `steth up --no-compact-store` (spans and log records in DuckDB's tables)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "spans": (2_000_000, 200_000),
        "logs": (2_000_000, 200_000),
        "big_store_spans": (10_000_000, 1_000_000),
    }
    for name, (full, small) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    if quick and args.pool is None:
        args.pool = 50
    pool_ok = args.pool is None or args.pool >= 1
    if args.senders < 1 or not pool_ok or min(args.spans, args.logs, args.big_store_spans) < 0:
        parser.error("--senders and --pool must be >= 1; counts must be >= 0")
    return args


def compile_package() -> None:
    """Write the measured package's bytecode, as `pip install` does for an installed steth.

    Where PYTHONDONTWRITEBYTECODE is set (as on our machines), a command run from an editable
    checkout otherwise compiles every module it imports on every run: 6-21 ms of CPU of each
    `steth trace` (three paired rounds: 110/80/80 against 89/72/74 ms), which no installed
    steth pays.
    """
    import compileall

    import stethoscope

    compileall.compile_dir(Path(stethoscope.__file__).parent, quiet=1)


def measure(args: argparse.Namespace, workdir: Path) -> tuple[list[Row], dict[str, Any]]:
    """Run every phase; the table rows and the raw results."""
    cpus = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0))
    rows: list[Row] = []
    raw: dict[str, Any] = {"cpus": cpus, "usable_cpus": usable, "args": dict(vars(args))}
    compile_package()
    trace_requests = args.pool or POOL_ROWS // SPANS_PER_REQUEST
    log_requests = args.pool or POOL_ROWS // LOGS_PER_REQUEST
    progress(f"generating {trace_requests} trace and {log_requests} log requests")
    traces = build_pool("traces", trace_requests, seed=7)
    logs = build_pool("logs", log_requests, seed=8)
    rows += in_process_rows(traces, logs, 0.5 if args.quick else 2.0, raw)
    peaks: list[tuple[int, int]] = []  # (PSS, RSS summed) of each phase
    for signal_name, pool, count, unit, target in (
        ("traces", traces, args.spans, "spans", 80_000.0),
        ("logs", logs, args.logs, "records", 150_000.0),
    ):
        if count == 0:
            continue
        progress(f"ingest phase: {count:,} {unit} ({signal_name})")
        result = run_ingest(
            signal_name, pool, count, workdir / signal_name, args.senders, server_options(args)
        )
        raw[signal_name] = asdict(result) | {"bytes_per_row": result.bytes_per_row}
        rows += ingest_rows(result, unit, target)
        peaks.append((result.peak_pss, result.peak_rss))
    if args.big_store_spans:
        rows += big_store(args, traces, workdir / "big", raw, peaks)
    if peaks:
        worst = max(pss for pss, _ in peaks)
        target = ("<", 1.0, "< 1 GiB")
        rows.append(Row("server peak memory (PSS), worst phase", _mib(worst), worst / GIB, target))
        worst_rss = max(rss for _, rss in peaks)
        rows.append(Row("server peak RSS summed over its processes, worst phase", _mib(worst_rss)))
    return rows, raw


def in_process_rates(
    traces: list[PooledBody], logs: list[PooledBody], seconds: float
) -> dict[str, float]:
    """Records/s of bare protobuf parsing and of the server's decoder, in this process."""
    rates = {
        "parse traces": rate_over_pool(traces, ExportTraceServiceRequest.FromString, seconds),
        "parse logs": rate_over_pool(logs, ExportLogsServiceRequest.FromString, seconds),
    }
    try:
        from stethoscope.sources.otlp.codec import decode_request
    except ImportError as error:  # the decoder's API moved: report the ceiling alone
        progress(f"  server decoder not measured in-process: {error}")
        return rates
    for name, pool in (("traces", traces), ("logs", logs)):
        decode: Callable[[bytes], object] = functools.partial(
            decode_request, name, content_type=PROTOBUF
        )
        rates[f"decode {name}"] = rate_over_pool(pool, decode, seconds)
    return rates


def in_process_rows(
    traces: list[PooledBody], logs: list[PooledBody], seconds: float, raw: dict[str, Any]
) -> list[Row]:
    """Table lines for the in-process rates and the request sizes."""
    rates = in_process_rates(traces, logs, seconds)
    raw["in_process_per_s"] = rates
    labels = {
        "parse traces": "protobuf parse only (FromString, 1 core), spans",
        "parse logs": "protobuf parse only (FromString, 1 core), log records",
        "decode traces": "server decode to columns in-process (1 core), spans",
        "decode logs": "server decode to columns in-process (1 core), log records",
    }
    rows = [Row(text, rate_text(rates[key], "/s")) for key, text in labels.items() if key in rates]
    sizes = f"{_mean_size(traces) / 1024:.0f} KiB / {_mean_size(logs) / 1024:.0f} KiB"
    rows.append(Row("request body size (mean), traces / logs", sizes))
    return rows


def _mib(size: int, decimals: int = 0) -> str:
    return f"{size / 2**20:,.{decimals}f} MiB"


def _mean_size(pool: list[PooledBody]) -> float:
    return sum(len(p.body) for p in pool) / len(pool)


def big_store(
    args: argparse.Namespace,
    pool: list[PooledBody],
    data_dir: Path,
    raw: dict[str, Any],
    peaks: list[tuple[int, int]],
) -> list[Row]:
    """Build the big store through the server (sustained ingest), then time the queries."""
    count = args.big_store_spans
    progress(f"big store: {count:,} spans through the server")
    result = run_ingest("traces", pool, count, data_dir, args.senders, server_options(args))
    peaks.append((result.peak_pss, result.peak_rss))
    trace_id, expected = known_trace(pool)
    progress(f"timing queries on {result.rows:,} spans (trace {trace_id})")
    queries = time_queries(data_dir, result.rows, trace_id, expected)
    raw["big_store"] = asdict(result) | {"bytes_per_row": result.bytes_per_row}
    raw["queries"] = asdict(queries)
    return [*sustained_rows(result, count), *query_rows(queries)]


def sustained_rows(result: IngestResult, count: int) -> list[Row]:
    """The table lines for building the big store."""
    return [
        Row(
            f"sustained ingest building {count / 1e6:g}M-span store",
            rate_text(result.rate, "spans/s"),
            result.rate,
            (">=", 80_000.0, ">= 80,000"),
        ),
        Row(
            "  retries / wall time / ack -> stored rate",
            f"{result.retries:,} / {result.seconds:.0f} s / "
            f"{rate_text(result.records / result.stored_after_s, 'spans/s')}",
        ),
        Row("  acknowledged / in store", f"{result.records:,} / {result.rows:,}"),
        Row(
            "  CPU while sending: server / senders / other processes",
            f"{result.server_cores:.2f} / {result.sender_cpu_s / result.seconds:.2f} / "
            f"{result.other_cores:.2f} cores",
        ),
        Row(
            "  shutdown (SIGTERM -> exit) / steth.duckdb.wal then",
            f"{result.stop_s:.1f} s / {_mib(result.store_wal_at_stop, 1)}",
        ),
        Row(
            "  server peak memory: PSS / RSS summed (main / children alone)",
            f"{_mib(result.peak_pss)} / {_mib(result.peak_rss)} ({_mib(result.peak_rss_main)} / "
            f"{_mib(result.peak_rss_children)})",
        ),
        Row(
            "  disk bytes per span: store + segments + *.wal (segments / steth.duckdb's used"
            " / free blocks)",
            f"{result.bytes_per_row:.1f} B ({result.segment_bytes / max(result.rows, 1):.1f}"
            f" / {result.store_used_bytes / max(result.rows, 1):.1f}"
            f" / {result.store_free_bytes / max(result.rows, 1):.1f} B)",
            result.bytes_per_row,
            ("<=", 60.0, "<= 60"),
        ),
    ]


def server_options(args: argparse.Namespace) -> list[str]:
    """The `steth up` options the ingest phases run with."""
    return ["--no-compact-store"] if args.table_store else []


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; 130 when interrupted."""
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so that every server child is stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = args.keep
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="steth-bench-")))
        try:
            rows, raw = measure(args, workdir)
        except KeyboardInterrupt:
            progress("interrupted; servers stopped")
            return 130
    rows.append(Row("benchmark wall time", f"{time.monotonic() - started:.0f} s"))
    cpus, usable = raw["cpus"], raw["usable_cpus"]
    print_table(
        f"machine: {cpus} CPUs ({usable} usable), shared by the server and {args.senders} "
        "sender processes (the senders' CPU is counted below)",
        rows,
    )
    if args.out:
        args.out.write_text(json.dumps(raw, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
