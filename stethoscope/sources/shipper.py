"""Sending captured signals to the collector without ever blocking the thing being captured.

`steth run`, `tail` and `scrape` emit OTLP records onto a bounded in-memory spool; one sender
thread batches them into OTLP/HTTP protobuf requests, retries while the collector is away
(connection refused, 429, 502-504, honouring Retry-After) and drops nothing it has accepted until
the collector has answered. A full spool refuses new records and counts them; once the
collector answers again a `capture.overflow` event says how many were lost, so a gap in the data
is never silent. Markers (`Channel.when_sent`) let a source commit its own progress (file
offsets) only after everything before it was acknowledged.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, ResourceMetrics, ScopeMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from stethoscope import __version__
from stethoscope.errors import UsageError
from stethoscope.sources.records import SEVERITY, key_values, log_record

__all__ = ["Channel", "Shipper", "ShipperConfig", "ShipperStats"]

# The OTLP/HTTP spec's retryable answers; every other non-2xx is permanent for that batch.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
MAX_BACKOFF_S = 5.0
MAX_RETRY_AFTER_S = 30.0
# Well under the collector's 20 MiB body limit, so one batch is never refused for its size.
MAX_REQUEST_BYTES = 4 * 2**20


@dataclass(frozen=True, kw_only=True)
class ShipperConfig:
    """Where to send and how much may wait while the collector is away."""

    endpoint: str = "http://127.0.0.1:4318"
    token: str | None = None
    spool_bytes: int = 32 * 2**20
    batch_records: int = 1000
    flush_interval_s: float = 0.2
    timeout_s: float = 5.0

    def validate(self) -> None:
        """Refuse a configuration that cannot work, with one clear message."""
        if not self.endpoint.startswith(("http://", "https://")):
            raise UsageError(
                f"--endpoint must be an http:// or https:// URL, got {self.endpoint!r}"
            )
        for name in ("spool_bytes", "batch_records"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1")
        for name in ("flush_interval_s", "timeout_s"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be positive")


@dataclass(frozen=True)
class ShipperStats:
    """What happened to everything emitted so far."""

    sent_logs: int = 0
    sent_metrics: int = 0
    dropped_logs: int = 0  # refused because the spool was full
    dropped_metrics: int = 0
    rejected: int = 0  # refused by the collector as bad data (never retried)
    pending: int = 0  # accepted, not yet acknowledged
    pending_bytes: int = 0
    collector_up: bool = False
    last_error: str = ""


@dataclass
class _Item:
    channel: Channel | None
    payload: LogRecord | Sequence[Metric] | Callable[[], None]
    size: int
    counted: bool = True  # overflow reports are sent even over the bound, and not re-counted

    @property
    def is_marker(self) -> bool:
        return self.channel is None


@dataclass
class _Batch:
    logs: dict[Channel, list[LogRecord]] = field(default_factory=dict)
    metrics: dict[Channel, list[Metric]] = field(default_factory=dict)
    items: list[_Item] = field(default_factory=list)


class Channel:
    """One resource (service, instance, attributes) and scope that records are emitted under."""

    def __init__(self, shipper: Shipper, resource: Resource, scope: InstrumentationScope):
        self._shipper = shipper
        self.resource = resource
        self.scope = scope
        self.unreported_drops = 0

    def log(self, record: LogRecord) -> None:
        """Queue one log record; never blocks, a full spool drops it and counts it."""
        self._shipper._offer(_Item(self, record, record.ByteSize()))

    def metrics(self, metrics: Sequence[Metric]) -> None:
        """Queue metrics (all their points travel together); never blocks."""
        if metrics:
            size = sum(metric.ByteSize() for metric in metrics)
            self._shipper._offer(_Item(self, list(metrics), size))

    def when_sent(self, callback: Callable[[], None]) -> None:
        """Call `callback` on the sender thread once everything queued before is acknowledged."""
        self._shipper._offer(_Item(None, callback, 0, counted=False))


class Shipper:
    """The bounded spool and the one thread that drains it to the collector."""

    def __init__(self, config: ShipperConfig) -> None:
        config.validate()
        self.config = config
        self._items: deque[_Item] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stats = ShipperStats()
        self._closing = False
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="steth-shipper", daemon=True)
        headers = {"Content-Type": "application/x-protobuf", "User-Agent": f"steth/{__version__}"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._client = httpx.Client(
            base_url=config.endpoint.rstrip("/"), headers=headers, timeout=config.timeout_s
        )

    def start(self) -> Shipper:
        """Start the sender thread."""
        self._thread.start()
        return self

    def channel(
        self,
        *,
        service: str,
        instance: str,
        scope: str,
        resource_attributes: Mapping[str, Any] | None = None,
    ) -> Channel:
        """A channel for one resource; service and instance become the OTel identity."""
        attributes = dict(resource_attributes or {})
        attributes["service.name"] = service
        attributes["service.instance.id"] = instance
        resource = Resource(attributes=key_values(attributes))
        return Channel(self, resource, InstrumentationScope(name=scope, version=__version__))

    def has_room(self) -> bool:
        """False once the spool is half full: sources that can wait should pause."""
        with self._lock:
            return self._stats.pending_bytes < self.config.spool_bytes // 2

    def stats(self) -> ShipperStats:
        """A snapshot of the counters."""
        with self._lock:
            return self._stats

    def close(self, *, timeout_s: float = 5.0) -> ShipperStats:
        """Send what can be sent within `timeout_s`, then stop; the stats tell what was not."""
        with self._wake:
            self._closing = True
            self._deadline = time.monotonic() + timeout_s
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s + self.config.timeout_s + 1.0)
        self._client.close()
        return self.stats()

    def _offer(self, item: _Item) -> None:
        with self._wake:
            if item.counted and self._stats.pending_bytes + item.size > self.config.spool_bytes:
                assert item.channel is not None
                item.channel.unreported_drops += _records(item)
                key = "dropped_logs" if isinstance(item.payload, LogRecord) else "dropped_metrics"
                self._count(**{key: getattr(self._stats, key) + _records(item)})
                return
            self._items.append(item)
            self._count(
                pending=self._stats.pending + _records(item),
                pending_bytes=self._stats.pending_bytes + item.size,
            )
            if len(self._items) >= self.config.batch_records:
                self._wake.notify()

    def _count(self, **changes: Any) -> None:
        self._stats = replace(self._stats, **changes)

    def _run(self) -> None:
        while True:
            with self._wake:
                if len(self._items) < self.config.batch_records and not self._closing:
                    # Let a trickle of records gather into one request.
                    self._wake.wait(self.config.flush_interval_s)
                if not self._items and self._closing:
                    return
                batch = self._take()
            if batch.items and not self._deliver(batch):
                return  # closing deadline passed with the collector still away

    def _take(self) -> _Batch:
        """The next batch: markers at the head fire at once, data up to the size bounds."""
        batch = _Batch()
        records = size = 0
        while self._items:
            item = self._items[0]
            if item.is_marker:
                if batch.items:
                    break  # fires after this batch is acknowledged
                self._items.popleft()
                _fire(item)
                continue
            if batch.items and (
                records + _records(item) > self.config.batch_records
                or size + item.size > MAX_REQUEST_BYTES
            ):
                break
            self._items.popleft()
            batch.items.append(item)
            records += _records(item)
            size += item.size
            assert item.channel is not None
            if isinstance(item.payload, LogRecord):
                batch.logs.setdefault(item.channel, []).append(item.payload)
            else:
                batch.metrics.setdefault(item.channel, []).extend(item.payload)  # type: ignore[arg-type]
        return batch

    def _deliver(self, batch: _Batch) -> bool:
        """Send until acknowledged or permanently refused; False if closing ran out of time."""
        requests = _requests(batch)
        delay = 0.5
        while requests:
            path, body, response_type, count = requests[0]
            outcome, retry_after, rejected = self._post(path, body, response_type)
            if outcome == "retry":
                if self._closing and time.monotonic() + delay > self._deadline:
                    return False
                time.sleep(retry_after if retry_after is not None else _jitter(delay))
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            requests.pop(0)
            with self._lock:
                sent_key = "sent_logs" if path == "/v1/logs" else "sent_metrics"
                refused = count if outcome == "rejected" else min(rejected, count)
                self._count(
                    rejected=self._stats.rejected + refused,
                    **{sent_key: getattr(self._stats, sent_key) + count - refused},
                )
        self._settle(batch)
        return True

    def _post(
        self, path: str, body: bytes, response_type: type[Any]
    ) -> tuple[str, float | None, int]:
        """('ok'|'retry'|'rejected', retry-after seconds, records the collector refused)."""
        try:
            response = self._client.post(path, content=body)
        except httpx.HTTPError as error:
            self._mark(up=False, error=f"{type(error).__name__}: {error}")
            return "retry", None, 0
        if response.status_code in RETRYABLE_STATUS:
            self._mark(up=True, error=f"HTTP {response.status_code}")
            return "retry", _retry_after(response.headers.get("Retry-After")), 0
        if response.status_code >= 300:
            self._mark(up=True, error=f"HTTP {response.status_code}: {response.text[:200]}")
            return "rejected", None, 0
        self._mark(up=True, error="")
        return "ok", None, _partial_rejections(response.content, response_type)

    def _mark(self, *, up: bool, error: str) -> None:
        with self._lock:
            self._count(collector_up=up, last_error=error or self._stats.last_error)

    def _settle(self, batch: _Batch) -> None:
        """Release the batch's spool space and report drops now that the collector answers."""
        with self._wake:
            self._count(
                pending=self._stats.pending - sum(_records(item) for item in batch.items),
                pending_bytes=self._stats.pending_bytes - sum(item.size for item in batch.items),
            )
            for channel in {item.channel for item in batch.items}:
                if channel is None or not channel.unreported_drops:
                    continue
                report = _overflow_event(channel.unreported_drops)
                channel.unreported_drops = 0
                # Next in line, outside the bound: the loss report must not be lost itself.
                self._items.appendleft(_Item(channel, report, report.ByteSize(), counted=False))
                self._count(
                    pending=self._stats.pending + 1,
                    pending_bytes=self._stats.pending_bytes + report.ByteSize(),
                )


def _records(item: _Item) -> int:
    if item.is_marker:
        return 0
    if isinstance(item.payload, LogRecord):
        return 1
    return len(item.payload)  # type: ignore[arg-type]


def _fire(item: _Item) -> None:
    callback = item.payload
    assert callable(callback)
    callback()


def _requests(batch: _Batch) -> list[tuple[str, bytes, type[Any], int]]:
    requests: list[tuple[str, bytes, type[Any], int]] = []
    if batch.logs:
        logs = ExportLogsServiceRequest(
            resource_logs=[
                ResourceLogs(
                    resource=channel.resource,
                    scope_logs=[ScopeLogs(scope=channel.scope, log_records=records)],
                )
                for channel, records in batch.logs.items()
            ]
        )
        count = sum(len(records) for records in batch.logs.values())
        requests.append(("/v1/logs", logs.SerializeToString(), ExportLogsServiceResponse, count))
    if batch.metrics:
        metrics = ExportMetricsServiceRequest(
            resource_metrics=[
                ResourceMetrics(
                    resource=channel.resource,
                    scope_metrics=[ScopeMetrics(scope=channel.scope, metrics=items)],
                )
                for channel, items in batch.metrics.items()
            ]
        )
        count = sum(len(items) for items in batch.metrics.values())
        body = metrics.SerializeToString()
        requests.append(("/v1/metrics", body, ExportMetricsServiceResponse, count))
    return requests


def _partial_rejections(content: bytes, response_type: type[Any]) -> int:
    """Records the collector refused inside a 200 (OTLP partial_success)."""
    response = response_type()
    try:
        response.ParseFromString(content)
    except Exception:  # an unparseable 200 still means accepted
        return 0
    if not response.HasField("partial_success"):
        return 0
    partial = response.partial_success
    if response_type is ExportLogsServiceResponse:
        return int(partial.rejected_log_records)
    # A rejected data point loses its metric's point, counted per metric here as an upper bound.
    return int(partial.rejected_data_points)


def _overflow_event(dropped: int) -> LogRecord:
    return log_record(
        body=f"capture spool full: {dropped} records were dropped while the collector was away",
        severity_number=SEVERITY["WARN"],
        severity_text="WARN",
        attributes={"steth.dropped_records": dropped},
        event_name="capture.overflow",
    )


def _retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return min(max(float(header), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff


def _jitter(delay: float) -> float:
    return delay * random.uniform(0.5, 1.0)
