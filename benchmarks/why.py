"""Speed of `steth why` over a 15-minute window holding ~1M spans and ~1M log records.

    .venv/bin/python benchmarks/why.py --quick             # ~100k spans, about a minute
    .venv/bin/python benchmarks/why.py                     # 1M + 1M in the window
    .venv/bin/python benchmarks/why.py --store DIR --out results.json

Generates a system of 30 services (a layered call graph, 2-4 instances each, call trees of
5-30 spans with client and server spans on both sides of every call, log records tied to spans
from ~300 templates) over a 15-minute baseline and the 15-minute window after it, and injects
a fault into one service five minutes into the window: its own code slows down, a fifth of its
requests fail (the failure travels up to the roots), and it logs an error it never logged
before. The data goes in the way `steth import` puts it in: OTLP requests through the real
decoders, the log templates mined by the real ingest miner, and `DuckDBStore.write` in 200k-row
transactions. The store is kept in `--store` and reused when its parameters match.

Then times `steth why --json` over the window as a child process (median of 3 after a
warm-up), and in-process each stage: every profile query (window and baseline; SQL and the
conversion to rows apart), every detector, the ranking. Checks that the top suspect is the
service the fault was injected into.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from stethoscope.analysis.context import AnalysisContext
from stethoscope.analysis.rank import rank
from stethoscope.analysis.registry import detectors
from stethoscope.analysis.why import scope_for
from stethoscope.cli.loader import WRITE_ROWS
from stethoscope.model.batch import SignalBatch
from stethoscope.server.templating import LogTemplater
from stethoscope.sources.otlp.codec import decode_message
from stethoscope.store.base import Window
from stethoscope.store.duckdb.store import DuckDBStore

SECOND = 1_000_000_000
MS = 1_000_000
START_NS = 1_700_000_000 * SECOND  # historical, as an import keeps it: baseline start
WINDOW_S = 15 * 60
FAULT_AT_S = 5 * 60  # into the window
TARGET_S = 10.0
MAX_SPANS = 30
STETH = [sys.executable, "-m", "stethoscope.cli.main"]
LAYERS = (
    ("gateway", "web-bff", "mobile-bff"),
    ("auth", "user", "catalog", "search", "cart", "checkout", "order", "review"),
    ("payment", "inventory", "pricing", "shipping", "recommend", "session", "profile", "coupon"),
    ("fraud", "tax", "ledger", "currency", "notification", "email", "warehouse", "geo"),
    ("config", "audit", "media"),
)
NOUNS = ("item", "account", "record", "entry", "batch", "token", "quote", "slot", "lease", "job")
STORES = ("postgres", "redis", "mongodb", "kafka", "s3")
# Message shapes, each logged by a service about its own noun and store (~450 templates in all).
SHAPES = (
    (9, "handled {op} for user {user} in {ms} ms"),
    (9, "loaded {n} {noun}s from {store} in {ms} ms"),
    (5, "cache miss for {noun}:{id}, fetching from {store}"),
    (9, "{noun} {id} updated by user {user}, version {n}"),
    (9, "request {hex} accepted from 10.{n}.{n}.{n}"),
    (5, "validated {noun} {id}: {n} fields ok"),
    (9, "publishing {noun}.changed event {hex} to topic {service}-events"),
    (13, "slow {store} query on {noun} took {ms} ms"),
    (9, "session {hex} refreshed, expires in {n} s"),
    (5, "serialized {n} bytes for {noun} {id}"),
    (9, "acquired lock on {noun} {id} after {ms} ms"),
    (13, "retrying {store} write for {noun} {id} (attempt {n}/3)"),
    (9, "computed {noun} summary over {n} rows in {ms} ms"),
    (5, "feature flag {noun}-v{n} evaluated to true for user {user}"),
    (9, "queued {noun} job {hex} with priority {n}"),
)
ERROR_SHAPE = (17, "failed to refresh {noun} cache from {store}: connection reset by peer")
CALL_FAILED = (13, "call to {peer} failed with status 500, giving up on {noun} {id}")
FAULT_LOG = (17, "timeout waiting for a {store} connection from pool {noun}-{n} after {ms} ms")
LEVEL_WORDS = {5: "DEBUG", 9: "INFO", 13: "WARN", 17: "ERROR"}


@dataclass(frozen=True, kw_only=True)
class Params:
    """What the generated store holds; a cached store is reused only when these match."""

    spans: int  # per 15-minute period (baseline and window each)
    shape: int = 2  # bumped whenever the generated data changes, so old stores are not reused
    seed: int = 11
    logs_per_span: float = 1.0
    base_error_rate: float = 0.003
    fault_error_rate: float = 0.2
    fault_extra_ms: float = 40.0


@dataclass
class Operation:
    """One endpoint of a service: its own work, what it calls, what it logs."""

    name: str
    self_ms: float
    calls: list[tuple[str, int, float]]  # (callee service, its operation, probability)
    queries: int  # same-service child spans (database calls)
    shapes: list[tuple[int, str]]  # what a request of this operation logs


@dataclass
class Service:
    """A service: its instances (resource, scope), endpoints, and what its logs talk about."""

    name: str
    instances: list[tuple[Resource, InstrumentationScope]]
    operations: list[Operation]
    noun: str
    store: str
    plain_text: bool  # logs without a severity, the level word in the body


def build_system(rng: random.Random) -> dict[str, Service]:
    """30 services in layers; each operation calls a fixed set of operations further down."""
    system: dict[str, Service] = {}
    for depth in range(len(LAYERS) - 1, -1, -1):
        below = [name for layer in LAYERS[depth + 1 :] for name in layer]
        for name in LAYERS[depth]:
            operations = []
            for index in range(rng.randint(2, 4)):
                fan = 0 if not below else rng.randint(2, 3) if depth == 0 else rng.randint(0, 2)
                # Entry operations always call down, so every trace has at least five spans.
                calls = [
                    (
                        callee,
                        rng.randrange(len(system[callee].operations)),
                        1.0 if depth == 0 else rng.uniform(0.6, 1.0),
                    )
                    for callee in rng.sample(below, fan)
                ]
                shapes = rng.sample(SHAPES, 2)
                operations.append(
                    Operation(
                        name=f"{rng.choice(('GET', 'POST'))} /{name}/{NOUNS[index]}",
                        self_ms=rng.uniform(0.5, 6.0),
                        calls=calls,
                        queries=rng.randint(0, 2),
                        shapes=shapes,
                    )
                )
            system[name] = Service(
                name=name,
                instances=[_origin(name, number) for number in range(rng.randint(2, 4))],
                operations=operations,
                noun=rng.choice(NOUNS),
                store=rng.choice(STORES),
                plain_text=rng.random() < 0.25,
            )
    return system


def _origin(service: str, number: int) -> tuple[Resource, InstrumentationScope]:
    pod = f"{service}-{zlib.crc32(service.encode()) % 0xFFFFF:05x}-{number}"
    attributes = {
        "service.name": service,
        "service.instance.id": pod,
        "k8s.pod.name": pod,
        "host.name": f"node-{number % 3}",
    }
    resource = Resource(attributes=[_kv(key, value) for key, value in attributes.items()])
    return resource, InstrumentationScope(name=f"io.opentelemetry.{service}", version="1.0")


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def fault_service(system: dict[str, Service]) -> str:
    """The mid-tier service with the most callers: its failure shows in many places."""
    callers: dict[str, set[str]] = defaultdict(set)
    for service in system.values():
        for operation in service.operations:
            for callee, _, _ in operation.calls:
                callers[callee].add(service.name)
    return max(LAYERS[2], key=lambda name: (len(callers[name]), name))


@dataclass
class Traffic:
    """One second of spans and log records, grouped by the instance that emitted them."""

    spans: dict[int, list[Span]] = field(default_factory=lambda: defaultdict(list))
    logs: dict[int, list[LogRecord]] = field(default_factory=lambda: defaultdict(list))
    span_count: int = 0
    log_count: int = 0


class TraceWriter:
    """Builds traces (callee durations first, so every parent contains its children)."""

    def __init__(self, system: dict[str, Service], params: Params, faulty: str) -> None:
        self.system = system
        self.params = params
        self.faulty = faulty
        self.rng = random.Random(params.seed)
        self.origins = {
            id(origin[0]): origin for service in system.values() for origin in service.instances
        }
        self.roots = [(name, index) for name in LAYERS[0] for index in range(4)]
        self.trace_id, self.span_count, self.fault = b"", 0, False

    def trace(self, traffic: Traffic, start: int, fault: bool) -> None:
        """One request from an entry service down, into `traffic`."""
        service, index = self.rng.choice(self.roots)
        operations = self.system[service].operations
        self.trace_id, self.span_count, self.fault = self.rng.randbytes(16), 0, fault
        self._serve(traffic, service, operations[index % len(operations)], b"", start)

    def _serve(
        self, traffic: Traffic, name: str, operation: Operation, parent: bytes, start: int
    ) -> tuple[int, bool]:
        rng, service = self.rng, self.system[name]
        origin = rng.randrange(len(service.instances))
        span_id = rng.randbytes(8)
        self.span_count += 1
        faulty = name == self.faulty and self.fault
        self_ns = int(rng.lognormvariate(math.log(operation.self_ms), 0.35) * MS)
        if faulty:
            self_ns += int(rng.lognormvariate(math.log(self.params.fault_extra_ms), 0.3) * MS)
        at = start + self_ns // 2
        failed = rng.random() < self.params.base_error_rate
        failed |= faulty and rng.random() < self.params.fault_error_rate
        for callee, callee_op, chance in operation.calls:
            if self.span_count + 2 > MAX_SPANS or rng.random() > chance:
                continue
            client_id = rng.randbytes(8)
            self.span_count += 1
            gap = int(rng.uniform(0.2, 1.0) * MS)
            target = self.system[callee].operations[callee_op]
            took, error = self._serve(traffic, callee, target, client_id, at + gap // 2)
            self._span(
                traffic,
                name,
                origin,
                client_id,
                span_id,
                f"{target.name}",
                3,
                at,
                took + gap,
                error,
            )
            if error:
                self._log(traffic, service, origin, client_id, at + took + gap, CALL_FAILED, callee)
            failed |= error
            at += took + gap
        for _ in range(operation.queries):
            if self.span_count >= MAX_SPANS:
                break
            self.span_count += 1
            took = int(rng.lognormvariate(math.log(0.8), 0.5) * MS)
            self._span(
                traffic,
                name,
                origin,
                rng.randbytes(8),
                span_id,
                f"SELECT {service.noun}s",
                1,
                at,
                took,
                False,
            )
            at += took
        end = at + self_ns - self_ns // 2
        self._span(
            traffic, name, origin, span_id, parent, operation.name, 2, start, end - start, failed
        )
        self._logs(traffic, service, origin, span_id, operation, start, end, faulty and failed)
        return end - start, failed

    def _span(
        self,
        traffic: Traffic,
        service: str,
        origin: int,
        span_id: bytes,
        parent: bytes,
        name: str,
        kind: int,
        start: int,
        took: int,
        failed: bool,
    ) -> None:
        status = 500 if failed else 200
        traffic.spans[id(self.system[service].instances[origin][0])].append(
            Span(
                trace_id=self.trace_id,
                span_id=span_id,
                parent_span_id=parent,
                name=name,
                kind=kind,  # type: ignore[arg-type]
                start_time_unix_nano=start,
                end_time_unix_nano=start + took,
                attributes=self._attributes(service, name, kind, status),
                status=Status(code=Status.STATUS_CODE_ERROR if failed else 0),  # type: ignore[arg-type]
            )
        )
        traffic.span_count += 1

    def _attributes(self, service: str, name: str, kind: int, status: int) -> list[KeyValue]:
        """What instrumentation libraries record: HTTP on both sides of a call, a database query."""
        rng = self.rng
        method, _, path = name.partition(" ")
        if kind == 1:
            store = self.system[service].store
            return [
                _kv("db.system.name", store),
                _kv("db.namespace", service),
                _kv("db.query.text", f"{name} WHERE id = ?"),
                _kv("db.response.returned_rows", rng.randint(0, 40)),
            ]
        common = [_kv("http.request.method", method), _kv("http.response.status_code", status)]
        if kind == 3:
            return [
                *common,
                _kv("url.full", f"http://{path.split('/')[1]}:8080{path}/{rng.randint(1, 99_999)}"),
                _kv("server.address", path.split("/")[1]),
                _kv("server.port", 8080),
            ]
        return [
            *common,
            _kv("http.route", f"{path}/{{id}}"),
            _kv("url.path", f"{path}/{rng.randint(1, 99_999)}"),
            _kv("server.address", f"{service}.shop.svc"),
            _kv("client.address", f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}"),
            _kv("user_agent.original", "okhttp/4.12.0"),
        ]

    def _logs(
        self,
        traffic: Traffic,
        service: Service,
        origin: int,
        span_id: bytes,
        operation: Operation,
        start: int,
        end: int,
        fault_error: bool,
    ) -> None:
        rng = self.rng
        # A server span logs on behalf of its client and query spans too (~2.9 spans each).
        expected = self.params.logs_per_span * 2.9
        for _ in range(int(expected) + (rng.random() < expected % 1)):
            if rng.random() < 0.85:
                shape = rng.choice(operation.shapes)
            else:
                shape = ERROR_SHAPE if rng.random() < 0.02 else rng.choice(SHAPES)
            self._log(traffic, service, origin, span_id, rng.randint(start, end), shape, "")
        if fault_error:
            self._log(traffic, service, origin, span_id, end, FAULT_LOG, "")

    def _log(
        self,
        traffic: Traffic,
        service: Service,
        origin: int,
        span_id: bytes,
        when: int,
        shape: tuple[int, str],
        peer: str,
    ) -> None:
        rng = self.rng
        severity, text = shape
        body = text.format(
            op=service.operations[0].name,
            user=rng.randint(1, 2_000_000),
            ms=round(rng.lognormvariate(1.5, 0.8), 1),
            n=rng.randint(1, 500),
            noun=service.noun,
            store=service.store,
            id=rng.randint(10_000, 9_999_999),
            hex=rng.randbytes(6).hex(),
            service=service.name,
            peer=peer,
        )
        if service.plain_text:
            body, severity = f"{LEVEL_WORDS[severity]} [{service.name}] {body}", 0
        traffic.logs[id(service.instances[origin][0])].append(
            LogRecord(
                time_unix_nano=when,
                observed_time_unix_nano=when + 2 * MS,
                severity_number=severity,  # type: ignore[arg-type]
                body=AnyValue(string_value=body),
                trace_id=self.trace_id,
                span_id=span_id,
                attributes=[_kv("logger.name", f"{service.name}.{service.noun}")],
            )
        )
        traffic.log_count += 1

    def requests(self, traffic: Traffic) -> tuple[Any, Any]:
        """The second's traffic as one trace and one logs export request."""
        traces = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=self.origins[key][0],
                    scope_spans=[ScopeSpans(scope=self.origins[key][1], spans=spans)],
                )
                for key, spans in traffic.spans.items()
            ]
        )
        logs = ExportLogsServiceRequest(
            resource_logs=[
                ResourceLogs(
                    resource=self.origins[key][0],
                    scope_logs=[ScopeLogs(scope=self.origins[key][1], log_records=records)],
                )
                for key, records in traffic.logs.items()
            ]
        )
        return traces, logs


def generate(store_dir: Path, params: Params) -> dict[str, Any]:
    """Write baseline and window into a new store the way `steth import` does; its manifest."""
    shutil.rmtree(store_dir, ignore_errors=True)
    system = build_system(random.Random(params.seed))
    faulty = fault_service(system)
    writer = TraceWriter(system, params, faulty)
    store = DuckDBStore(store_dir)
    templater = LogTemplater()
    pending: list[SignalBatch] = []
    rows, spans, logs = 0, 0, 0
    started = time.monotonic()
    per_second = params.spans / WINDOW_S
    try:
        for second in range(2 * WINDOW_S):
            traffic = Traffic()
            fault = second >= WINDOW_S + FAULT_AT_S
            while traffic.span_count < per_second * (second + 1) - spans:
                offset = writer.rng.randrange(SECOND)
                writer.trace(traffic, START_NS + second * SECOND + offset, fault)
            spans += traffic.span_count
            logs += traffic.log_count
            for signal, request in zip(("traces", "logs"), writer.requests(traffic), strict=True):
                batch = decode_message(signal, request, imported=True)
                pending.append(batch)
                rows += batch.accepted
            if rows >= WRITE_ROWS or second == 2 * WINDOW_S - 1:
                batches, templates = templater.annotate(pending)  # as the importer's sink does
                store.write(batches, templates=templates)
                pending, rows = [], 0
            if second % 60 == 59:
                progress(f"generated {second + 1} s of traffic: {spans:,} spans, {logs:,} logs")
        store.checkpoint()
    finally:
        store.close()
    manifest = {
        "params": asdict(params),
        "fault_service": faulty,
        "since_ns": START_NS + WINDOW_S * SECOND,
        "until_ns": START_NS + 2 * WINDOW_S * SECOND,
        "fault_ns": START_NS + (WINDOW_S + FAULT_AT_S) * SECOND,
        "generate_seconds": round(time.monotonic() - started, 1),
    }
    (store_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def prepared_store(store_dir: Path, params: Params) -> dict[str, Any]:
    """The cached store's manifest when its parameters match; else a freshly generated one."""
    manifest_path = store_dir / "manifest.json"
    if manifest_path.exists():
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        if manifest.get("params") == asdict(params):
            progress(f"reusing the store in {store_dir}")
            return manifest
    elif store_dir.exists() and any(store_dir.iterdir()):
        # Only a store this benchmark generated (it has a manifest) is ever replaced.
        raise SystemExit(
            f"{store_dir} is not a finished benchmark store (an interrupted generation leaves "
            "one without its manifest.json): delete it or pass an empty or new --store"
        )
    progress(f"generating a store in {store_dir}")
    return generate(store_dir, params)


def counts(store_dir: Path, manifest: dict[str, Any]) -> dict[str, int]:
    """Spans and log records in the window and in the baseline."""
    store = DuckDBStore(store_dir, read_only=True)
    try:
        found = {}
        since, until = manifest["since_ns"], manifest["until_ns"]
        for table, column in (("spans", "start_ns"), ("logs", "time_ns")):
            sql = f"""SELECT count(*) FILTER (WHERE {column} >= {since}),
                             count(*) FILTER (WHERE {column} < {since}),
                             (SELECT count(*) FROM templates) FROM {table}
                      WHERE {column} < {until}"""
            window, baseline, templates = store.cursor().execute(sql).fetchone() or (0, 0, 0)
            found[f"{table}_window"], found[f"{table}_baseline"] = window, baseline
            found["templates"] = templates
        return found
    finally:
        store.close()


def iso(ns: int) -> str:
    """ns since the epoch as ISO-8601 UTC."""
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def time_cli(store_dir: Path, manifest: dict[str, Any], runs: int) -> tuple[list[float], Any]:
    """`steth why --json` over the window as a child process: a warm-up, then `runs` timings."""
    command = [*STETH, "why", "--json", "--data", str(store_dir)]
    command += ["--since", iso(manifest["since_ns"]), "--until", iso(manifest["until_ns"])]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    seconds, report = [], None
    for run in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"steth why exited {done.returncode}:\n{done.stderr}")
        report = json.loads(done.stdout)
        if run:
            seconds.append(elapsed)
    return seconds, report


class TimedSource:
    """The store, with the time spent in each of its profile queries recorded."""

    def __init__(self, store: DuckDBStore, window: Window, baseline: Window) -> None:
        self.store = store
        self.window = window
        self.baseline = baseline
        self.seconds: dict[str, float] = {}

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.store, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = method(*args, **kwargs)
            names = {self.window: "window", self.baseline: "baseline"}
            which = names.get(args[0], "other") if args and isinstance(args[0], Window) else "-"
            label = f"  SQL {name} ({which})"
            self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started
            return result

        return timed


PROFILES = ("spans", "spans_baseline", "edges", "edges_baseline", "logs", "logs_baseline")


def time_stages(store_dir: Path, manifest: dict[str, Any]) -> dict[str, float]:
    """One in-process analysis, stage by stage (profiles first, then detectors, then ranking)."""
    scope = scope_for(manifest["since_ns"], manifest["until_ns"])
    store = DuckDBStore(store_dir, read_only=True)
    try:
        source = TimedSource(store, scope.window, scope.baseline_window)
        context = AnalysisContext(source, scope)  # type: ignore[arg-type]
        stages: dict[str, float] = {}
        started = time.perf_counter()
        for name in PROFILES:
            begun = time.perf_counter()
            getattr(context, name)
            stages[f"profile {name} (SQL + rows)"] = time.perf_counter() - begun
        findings = []
        for detector in detectors():
            begun = time.perf_counter()
            findings.extend(detector.detect(context))
            stages[f"detector {detector.name}"] = time.perf_counter() - begun
        begun = time.perf_counter()
        findings.sort(key=lambda finding: finding.score, reverse=True)
        rank(findings, context)
        stages["ranking"] = time.perf_counter() - begun
        stages["in-process total"] = time.perf_counter() - started
        stages.update(source.seconds)
        return stages
    finally:
        store.close()


def progress(message: str) -> None:
    """A progress line on stderr, so stdout stays the table."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def print_table(
    cli: list[float],
    stages: list[dict[str, float]],
    top: list[str],
    manifest: dict[str, Any],
    found: dict[str, int],
    load: Sequence[float],
) -> None:
    """The stage medians, then the end-to-end time against the target and the verdicts."""
    print(
        f"window: {found['spans_window']:,} spans, {found['logs_window']:,} log records; "
        f"baseline: {found['spans_baseline']:,} spans, {found['logs_baseline']:,} log records; "
        f"{found['templates']} templates; load average {load[0]:.2f} / {load[1]:.2f}"
    )
    total = statistics.median(run["in-process total"] for run in stages)
    print(f"\n{'stage (in-process, median of 3)':<52} {'seconds':>8} {'share':>6}")
    for name in stages[0]:
        if name == "in-process total":
            continue
        value = statistics.median(run.get(name, 0.0) for run in stages)
        print(f"{name:<52} {value:>8.3f} {value / total:>6.0%}")
    print(f"{'in-process total':<52} {total:>8.3f}")
    median = statistics.median(cli)
    verdict = "PASS" if median < TARGET_S else "FAIL"
    runs = ", ".join(f"{value:.2f}" for value in cli)
    print(
        f"\nsteth why --json, child process, median of {len(cli)} ({runs}): {median:.2f} s  "
        f"target < {TARGET_S:.0f} s  {verdict}"
    )
    right = "PASS" if top and top[0] == manifest["fault_service"] else "FAIL"
    print(f"top suspects: {', '.join(top[:3])}; fault in {manifest['fault_service']}  {right}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~100k spans in the window")
    parser.add_argument("--store", type=Path, help="keep the generated store here and reuse it")
    parser.add_argument("--runs", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument("--out", type=Path, help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    params = Params(spans=100_000 if args.quick else 1_000_000)
    name = "steth-why-bench-quick" if args.quick else "steth-why-bench"
    store_dir = args.store or Path(tempfile.gettempdir()) / name
    manifest = prepared_store(store_dir, params)
    found = counts(store_dir, manifest)
    load_before = os.getloadavg()
    progress("timing steth why as a child process")
    cli, report = time_cli(store_dir, manifest, args.runs)
    progress("timing the stages in-process")
    time_stages(store_dir, manifest)  # warm-up
    stages = [time_stages(store_dir, manifest) for _ in range(args.runs)]
    load = [max(a, b) for a, b in zip(load_before, os.getloadavg(), strict=True)]
    top = [suspect["service"] for suspect in report["suspects"]]
    print_table(cli, stages, top, manifest, found, load)
    if args.out:
        results = {
            "cli_seconds": cli,
            "stages": stages,
            "top": top[:5],
            "counts": found,
            "manifest": manifest,
            "load_average": load,
        }
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
