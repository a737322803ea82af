"""The Store protocol that analysis, the API and the CLI code against, and its query types.

Results are plain JSON-ready dicts (ids as hex, times as int nanoseconds) so that the same
shapes come back whether the CLI asks a running server's API or opens the store itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pyarrow stays out of the CLI's start-up until a command needs it
    import pyarrow as pa

    from stethoscope.model.batch import SignalBatch


@dataclass(frozen=True, kw_only=True)
class Window:
    """A half-open time range [since, until) in ns since the epoch; None leaves a side open."""

    since_ns: int | None = None
    until_ns: int | None = None


@dataclass(frozen=True, kw_only=True)
class TraceQuery:
    """Filters for `traces`: a trace matches when one of its spans matches every given filter.

    Results are the `limit` traces whose newest matching span is newest, sorted by trace start.
    """

    window: Window = field(default_factory=Window)
    service: str | None = None
    operation: str | None = None
    errors_only: bool = False
    min_duration_ns: int | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    limit: int = 20


@dataclass(frozen=True, kw_only=True)
class LogQuery:
    """Filters for `logs`: text is a case-insensitive substring of the body."""

    window: Window = field(default_factory=Window)
    text: str | None = None
    service: str | None = None
    min_severity: int | None = None
    trace_id: str | None = None
    limit: int = 1000
    newest_first: bool = False


@dataclass(frozen=True, kw_only=True)
class MetricQuery:
    """Filters for `metrics`: without a name, list metrics; with one, its series."""

    window: Window = field(default_factory=Window)
    name: str | None = None
    service: str | None = None
    points_per_series: int = 10


@dataclass(frozen=True, kw_only=True)
class TemplateQuery:
    """Filters for `templates`: the `limit` templates with the most records in the window."""

    window: Window = field(default_factory=Window)
    service: str | None = None
    limit: int = 50


@dataclass(frozen=True, kw_only=True)
class EventQuery:
    """Filters for `events`: log records carrying an event name; the newest `limit`."""

    window: Window = field(default_factory=Window)
    service: str | None = None
    name: str | None = None
    limit: int = 100


@dataclass(frozen=True, kw_only=True)
class TemplateRow:
    """One template as the store keeps it (see `stethoscope.logs.templating`)."""

    service: str
    template_id: int
    ordinal: int
    template: str
    overflow: bool
    first_seen_ns: int
    last_seen_ns: int
    example: str


class Store(Protocol):
    """What every store offers: batched writes from one writer, and reads from anyone."""

    def write(
        self,
        batches: list[SignalBatch],
        *,
        seqs: Sequence[int] | None = None,
        templates: Sequence[TemplateRow] = (),
        whole_row_groups: bool = False,
    ) -> int:
        """Commit the batches and the templates they touched atomically; with `seqs` (their WAL
        positions), also the position every row up to which is stored, which it returns.

        `whole_row_groups` lets a store hold rows back for a later write, to insert them in
        the units it stores best; they count as stored once a write returns their position.
        """

    def template_rows(self) -> list[TemplateRow]:
        """Every stored template, by service and founding order: the miners' saved state."""

    def applied_seq(self) -> int:
        """The last WAL sequence number whose data is committed (0 when none)."""

    def prune(self, *, older_than_ns: int) -> int:
        """Delete live (not imported) data older than the cutoff; returns rows deleted."""

    def services(self, window: Window) -> list[dict[str, Any]]:
        """Every service seen in the window with instances, counts and error counts."""

    def traces(self, query: TraceQuery) -> list[dict[str, Any]]:
        """Matching traces, newest first, summarised."""

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """Every span of one trace and its log records, or None when unknown."""

    def trace_ids(self, prefix: str) -> list[str]:
        """Full ids of a few traces whose hex id starts with `prefix` (8 to 32 digits)."""

    def logs(self, query: LogQuery) -> list[dict[str, Any]]:
        """Matching log records, oldest first unless asked otherwise."""

    def metrics(self, query: MetricQuery) -> dict[str, Any]:
        """Metric names with type, unit and series count; or one metric's series and values."""

    def templates(self, query: TemplateQuery) -> list[dict[str, Any]]:
        """Log templates with their record counts in the window, most frequent first."""

    def events(self, query: EventQuery) -> list[dict[str, Any]]:
        """Log records with an event name, oldest first (the newest `limit` of them)."""

    def span_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        """Per (service, instance, operation, bucket) span counts, errors and self-time stats."""

    def edge_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        """Per (caller, callee, bucket) cross-service call counts, errors and gap stats."""

    def log_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        """Per (service, instance, template, bucket) log record counts and highest level."""

    def call_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        """Per (service, operation, callee, bucket) requests served and calls made under them."""

    def clock_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        """Per (service, instance, bucket) median of record time minus observed time."""

    def span_clock_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        """Per (caller, callee instance, bucket) median estimate of the callee's clock offset."""

    def peer_profile(self, window: Window, bucket_ns: int) -> pa.Table:
        """Per (service, instance, peer, bucket) calls that no callee span answered."""

    def address_book(self, window: Window) -> pa.Table:
        """(port, service, instance) of the listening ports seen in the window."""

    def event_history(
        self, window: Window, *, names: Sequence[str], per_key: int
    ) -> list[dict[str, Any]]:
        """The newest `per_key` events of each (service, instance, name, url), with counts."""

    def metric_profile(self, window: Window, bucket_ns: int, *, max_series: int) -> pa.Table:
        """Per (service, instance, metric, series, bucket) levels or counter rates."""

    def close(self) -> None:
        """Flush and release the store."""
