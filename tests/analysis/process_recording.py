"""What `steth run` and `steth scrape` would have sent, as an OTLP/JSON recording to import.

The records are built by the same functions the capture uses (`sources/run/lifecycle.py`,
`fingerprint.py`, `procmetrics.gauge`, `sources/records.log_record`), then given historical
times, so a test replays the events and metrics of supervised processes as they arrive.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import run_steth
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from synthetic import SECOND, START_NS

from stethoscope.sources.records import SEVERITY, key_values, log_record
from stethoscope.sources.run import lifecycle
from stethoscope.sources.run.fingerprint import (
    FingerprintLimits,
    collect_fingerprint,
    fingerprint_digest,
)
from stethoscope.sources.run.procmetrics import gauge

SCOPE = "stethoscope.run"


def at(seconds: float) -> int:
    """The recording's time `seconds` after it starts."""
    return START_NS + int(seconds * SECOND)


@dataclass
class Process:
    """One supervised instance: the records it sent, to be written out together."""

    service: str
    instance: str
    logs: list[LogRecord] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)

    def event(self, record: LogRecord, seconds: float) -> Process:
        """Add an event built by the capture's own code, at recording time `seconds`."""
        record.time_unix_nano = at(seconds)
        record.observed_time_unix_nano = at(seconds)
        self.logs.append(record)
        return self

    def start(self, seconds: float, argv: Sequence[str], restarts: int = 0) -> Process:
        """process.start, as the supervisor sends it before the spawn."""
        record = lifecycle.start_event(
            pid=4242, argv=argv, cwd=Path("/srv"), restart_count=restarts, time_ns=at(seconds)
        )
        return self.event(record, seconds)

    def exit(self, seconds: float, returncode: int, stderr: Sequence[str] = ()) -> Process:
        """process.exit with a code (or a signal, as a negative returncode)."""
        record = lifecycle.exit_event(
            pid=4242, returncode=returncode, run_seconds=30.0, stderr_tail=stderr
        )
        return self.event(record, seconds)

    def restart(self, seconds: float, count: int) -> Process:
        """process.restart, the supervisor's announcement after a failed exit."""
        return self.event(lifecycle.restart_event(restart_count=count, delay_s=1.0), seconds)

    def crash_loop(self, seconds: float, count: int) -> Process:
        """process.crash_loop, once the restarts reach the threshold."""
        record = lifecycle.crash_loop_event(restart_count=count, window_s=300.0)
        return self.event(record, seconds)

    def fingerprint(
        self,
        seconds: float,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        *,
        packages_listed: bool = True,
    ) -> Process:
        """process.fingerprint of real files, as `steth run` computes it at each start;
        without `packages_listed`, as when listing the packages failed or timed out."""
        attributes: dict[str, Any] = collect_fingerprint(argv, env, cwd, FingerprintLimits())
        if not packages_listed:
            attributes["python.packages"] = {}
            del attributes["steth.fingerprint"]
            attributes["steth.fingerprint"] = fingerprint_digest(attributes)
        attributes["process.pid"] = 4242
        record = log_record(
            time_ns=at(seconds),
            body=f"fingerprint {attributes['steth.fingerprint'][:16]} of pid 4242",
            severity_number=SEVERITY["INFO"],
            severity_text="INFO",
            attributes=attributes,
            event_name="process.fingerprint",
        )
        return self.event(record, seconds)

    def state(self, seconds: float, event: str, key: str, up: bool, url: str) -> Process:
        """A probe.state or scrape.target event, in the shape probe.py / scraper.py send."""
        state = "up" if up else "down"
        attributes: dict[str, object] = {"url.full": url, key: state}
        if not up:
            attributes["error.message"] = "timed out"
        level = "INFO" if up else "WARN"
        record = log_record(
            time_ns=at(seconds),
            body=f"{url} is {state}" + ("" if up else ": timed out"),
            severity_number=SEVERITY[level],
            severity_text=level,
            attributes=attributes,
            event_name=event,
        )
        return self.event(record, seconds)

    def gauge(
        self, name: str, unit: str, value: Callable[[float], float], seconds: range
    ) -> Process:
        """A gauge sampled every `seconds.step` s, as procmetrics sends it."""
        for second in seconds:
            self.metrics.append(gauge(name, unit, [({}, value(second))], time_ns=at(second)))
        return self

    def counter(
        self, name: str, rate: Callable[[float], float], seconds: range, unit: str = "1"
    ) -> Process:
        """A cumulative monotonic sum growing at `rate(t)` per second."""
        total = 0.0
        for second in seconds:
            total += rate(second) * seconds.step
            point = NumberDataPoint(
                time_unix_nano=at(second), start_time_unix_nano=at(0), as_double=total
            )
            self.metrics.append(
                Metric(
                    name=name,
                    unit=unit,
                    sum=Sum(
                        aggregation_temporality=AGGREGATION_TEMPORALITY_CUMULATIVE,
                        is_monotonic=True,
                        data_points=[point],
                    ),
                )
            )
        return self

    def resource(self) -> Resource:
        """The resource `steth run --service S --instance I` sends with."""
        attributes = {"service.name": self.service, "service.instance.id": self.instance}
        return Resource(attributes=key_values(attributes))


def write(path: Path, processes: Sequence[Process]) -> Path:
    """Collector file-exporter lines: one logs request and one metrics request per process."""
    scope = InstrumentationScope(name=SCOPE)
    with path.open("w") as out:
        for process in processes:
            if process.logs:
                logs = ExportLogsServiceRequest(
                    resource_logs=[
                        ResourceLogs(
                            resource=process.resource(),
                            scope_logs=[ScopeLogs(scope=scope, log_records=process.logs)],
                        )
                    ]
                )
                out.write(json.dumps(json_format.MessageToDict(logs)) + "\n")
            if process.metrics:
                metrics = ExportMetricsServiceRequest(
                    resource_metrics=[
                        ResourceMetrics(
                            resource=process.resource(),
                            scope_metrics=[ScopeMetrics(scope=scope, metrics=process.metrics)],
                        )
                    ]
                )
                out.write(json.dumps(json_format.MessageToDict(metrics)) + "\n")
    return path


def why_over(tmp_path: Path, processes: Sequence[Process], window: Sequence[str]) -> dict[str, Any]:
    """Import the processes' records with `steth import`, then `steth why --json` over `window`."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    recording = write(tmp_path / "recording.jsonl", processes)
    data = tmp_path / "data"
    code, _, err = run_steth("import", str(recording), "--data", str(data))
    assert code == 0, err
    code, out, err = run_steth("why", "--json", "--data", str(data), *window)
    assert code == 0, err
    return dict(json.loads(out))
