"""What every detector reads: the incident window, its baseline, and the profiles of both.

Profiles are fetched once per analysis and shared by all detectors, as plain rows grouped by
component: the whole-window row (for comparing distributions) and the per-bucket rows (for
finding the onset).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from stethoscope.errors import UsageError
from stethoscope.store.base import Window

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["EVENT_NAMES", "AnalysisContext", "Profile", "ProfileSource", "Scope"]

Row = dict[str, Any]


class ProfileSource(Protocol):
    """The part of the Store that analysis reads."""

    def span_profile(self, window: Window, bucket_ns: int) -> pa.Table: ...

    def edge_profile(self, window: Window, bucket_ns: int) -> pa.Table: ...

    def log_profile(self, window: Window, bucket_ns: int) -> pa.Table: ...

    def event_history(
        self, window: Window, *, names: Sequence[str], per_key: int
    ) -> list[dict[str, Any]]: ...

    def metric_profile(self, window: Window, bucket_ns: int, *, max_series: int) -> pa.Table: ...

    def call_profile(self, window: Window, bucket_ns: int) -> pa.Table: ...

    def clock_profile(self, window: Window, bucket_ns: int) -> pa.Table: ...

    def span_clock_profile(self, window: Window, bucket_ns: int) -> pa.Table: ...

    def peer_profile(self, window: Window, bucket_ns: int) -> pa.Table: ...

    def address_book(self, window: Window) -> pa.Table: ...


@dataclass(frozen=True, kw_only=True)
class Scope:
    """The incident window, the baseline it is compared with, and the onset resolution."""

    since_ns: int
    until_ns: int
    baseline: tuple[int, int]
    bucket_ns: int
    service: str | None = None
    baseline_chosen: bool = False  # picked by us, not given: analysis may narrow it

    def validate(self) -> None:
        """Refuse empty or inverted windows with a clear message."""
        if self.until_ns <= self.since_ns:
            raise UsageError("--until must be after --since")
        start, end = self.baseline
        if end <= start:
            raise UsageError("the baseline must end after it starts (--baseline START..END)")
        if self.bucket_ns <= 0:
            raise UsageError("the bucket must be positive")

    @property
    def window(self) -> Window:
        """The incident window."""
        return Window(since_ns=self.since_ns, until_ns=self.until_ns)

    @property
    def baseline_window(self) -> Window:
        """The baseline window."""
        return Window(since_ns=self.baseline[0], until_ns=self.baseline[1])

    def bucket_start_ns(self, bucket: int) -> int:
        """When a bucket of the incident window starts."""
        return self.since_ns + bucket * self.bucket_ns


class BucketRows(Mapping[tuple[Any, ...], list[Row]]):
    """Per-bucket rows by component key, in bucket order, made Python rows only when asked for.

    Detectors read the buckets of the few components that changed (to find an onset), while a
    profile holds twenty buckets of every component: converting them all cost more than the
    detectors did.
    """

    def __init__(self, table: pa.Table, key: tuple[str, ...]) -> None:
        self._table = table.sort_by([(name, "ascending") for name in (*key, "bucket")])
        self._ranges: dict[tuple[Any, ...], tuple[int, int]] = {}
        self._rows: dict[tuple[Any, ...], list[Row]] = {}
        columns = [self._table.column(name).to_pylist() for name in key]
        start, previous = 0, None
        for index, component in enumerate(zip(*columns, strict=True)):
            if component != previous:
                if previous is not None:
                    self._ranges[previous] = (start, index - start)
                start, previous = index, component
        if previous is not None:
            self._ranges[previous] = (start, self._table.num_rows - start)

    def __getitem__(self, component: tuple[Any, ...]) -> list[Row]:
        rows = self._rows.get(component)
        if rows is None:
            start, length = self._ranges[component]
            rows = self._rows[component] = self._table.slice(start, length).to_pylist()
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._ranges)

    def __len__(self) -> int:
        return len(self._ranges)


@dataclass
class Profile:
    """One profile's rows by component key: `total[key]` whole window, `buckets[key]` by time."""

    total: dict[tuple[Any, ...], Row] = field(default_factory=dict)
    buckets: Mapping[tuple[Any, ...], list[Row]] = field(default_factory=dict)
    active: frozenset[int] = frozenset()  # the buckets that hold any row
    timed: pa.Table | None = None  # the per-bucket rows, for sums over every component

    def bucket_sums(self, columns: tuple[str, ...]) -> dict[int, dict[str, float]]:
        """Per bucket, the sums of `columns` over every service (all-instance rows only)."""
        if self.timed is None or self.timed.num_rows == 0:
            return {}
        import pyarrow.compute as pc

        rows = self.timed
        if "instance" in rows.column_names:
            rows = rows.filter(pc.is_null(rows.column("instance")))
        grouped = rows.group_by("bucket").aggregate([(name, "sum") for name in columns])
        return {
            row["bucket"]: {name: float(row[f"{name}_sum"] or 0) for name in columns}
            for row in grouped.to_pylist()
        }

    @classmethod
    def from_table(cls, table: pa.Table, key: tuple[str, ...]) -> Profile:
        """Split an Arrow profile (null bucket = whole window) by the `key` columns."""
        import pyarrow.compute as pc

        whole = pc.is_null(table.column("bucket"))
        total = {tuple(row[name] for name in key): row for row in table.filter(whole).to_pylist()}
        timed = table.filter(pc.invert(whole))
        active = frozenset(pc.unique(timed.column("bucket")).to_pylist())
        return cls(total=total, buckets=BucketRows(timed, key), active=active, timed=timed)


SPAN_KEY = ("service", "instance", "operation")
EDGE_KEY = ("caller", "caller_instance", "callee", "callee_instance")
LOG_KEY = ("service", "instance", "template_id")
METRIC_KEY = ("service", "instance", "name", "series", "kind")

# Events that say what happened to a process (see BRIEF "Event names"); fingerprints included.
EVENT_NAMES = (
    "process.start",
    "process.exit",
    "process.restart",
    "process.crash_loop",
    "process.fingerprint",
    "probe.state",
    "scrape.target",
    "capture.overflow",
)
# Bounds: the newest events kept per (instance, event name, url) in a window; how far back the
# state at the window's start (last fingerprint, probe state) is looked for; metric series read.
EVENTS_PER_KEY = 50
EVENT_LOOKBACK_NS = 24 * 3600 * 1_000_000_000
MAX_METRIC_SERIES = 5000
CALL_KEY = ("service", "operation", "callee")
CLOCK_KEY = ("service", "instance")
SPAN_CLOCK_KEY = EDGE_KEY
PEER_KEY = ("service", "instance", "peer")
ADDRESS_LOOKBACK_NS = 3600 * 1_000_000_000


class AnalysisContext:
    """The inputs of one analysis, fetched lazily and once."""

    def __init__(self, source: ProfileSource, scope: Scope) -> None:
        scope.validate()
        self.source = source
        self.scope = scope

    def _profile(self, fetch: str, window: Window, key: tuple[str, ...]) -> Profile:
        table = getattr(self.source, fetch)(window, self.scope.bucket_ns)
        return Profile.from_table(table, key)

    @cached_property
    def spans(self) -> Profile:
        """Span statistics of the incident window."""
        return self._profile("span_profile", self.scope.window, SPAN_KEY)

    @cached_property
    def spans_baseline(self) -> Profile:
        """Span statistics of the baseline."""
        return self._profile("span_profile", self.scope.baseline_window, SPAN_KEY)

    @cached_property
    def edges(self) -> Profile:
        """Cross-service call statistics of the incident window."""
        return self._profile("edge_profile", self.scope.window, EDGE_KEY)

    @cached_property
    def edges_baseline(self) -> Profile:
        """Cross-service call statistics of the baseline."""
        return self._profile("edge_profile", self.scope.baseline_window, EDGE_KEY)

    @cached_property
    def logs(self) -> Profile:
        """Log records per template in the incident window."""
        return self._profile("log_profile", self.scope.window, LOG_KEY)

    @cached_property
    def logs_baseline(self) -> Profile:
        """Log records per template in the baseline."""
        return self._profile("log_profile", self.scope.baseline_window, LOG_KEY)

    @cached_property
    def peers(self) -> Profile:
        """Calls no callee span answered (uninstrumented peers), in the incident window."""
        return self._profile("peer_profile", self.scope.window, PEER_KEY)

    @cached_property
    def peers_baseline(self) -> Profile:
        """The same calls in the baseline."""
        return self._profile("peer_profile", self.scope.baseline_window, PEER_KEY)

    @cached_property
    def listeners(self) -> dict[str, str]:
        """Which service listens on a port, from both windows (a port two services used is
        left out: it cannot name one)."""
        scope = self.scope
        # Ports rarely move: an hour before the baseline still names today's listeners.
        whole = Window(
            since_ns=min(scope.baseline[0], scope.since_ns) - ADDRESS_LOOKBACK_NS,
            until_ns=max(scope.baseline[1], scope.until_ns),
        )
        owners: dict[str, set[str]] = defaultdict(set)
        for row in self.source.address_book(whole).to_pylist():
            owners[row["port"]].add(row["service"])
        return {port: names.pop() for port, names in owners.items() if len(names) == 1}

    @cached_property
    def clock(self) -> Profile:
        """Record-time minus arrival-time offsets per instance in the incident window."""
        return self._profile("clock_profile", self.scope.window, CLOCK_KEY)

    @cached_property
    def clock_baseline(self) -> Profile:
        """The same offsets in the baseline."""
        return self._profile("clock_profile", self.scope.baseline_window, CLOCK_KEY)

    @cached_property
    def calls(self) -> Profile:
        """Requests each operation served and the calls it made, in the incident window."""
        return self._profile("call_profile", self.scope.window, CALL_KEY)

    @cached_property
    def calls_baseline(self) -> Profile:
        """The same in the baseline."""
        return self._profile("call_profile", self.scope.baseline_window, CALL_KEY)

    @cached_property
    def span_clock(self) -> Profile:
        """Callee-minus-caller clock estimates per cross-instance call edge, incident window."""
        return self._profile("span_clock_profile", self.scope.window, SPAN_CLOCK_KEY)

    @cached_property
    def span_clock_baseline(self) -> Profile:
        """The same estimates in the baseline."""
        return self._profile("span_clock_profile", self.scope.baseline_window, SPAN_CLOCK_KEY)

    def _events(self, window: Window, per_key: int) -> list[Row]:
        return self.source.event_history(window, names=EVENT_NAMES, per_key=per_key)

    @cached_property
    def events(self) -> list[Row]:
        """Lifecycle, probe, scrape and fingerprint events of the incident window, oldest first."""
        return self._events(self.scope.window, EVENTS_PER_KEY)

    @cached_property
    def events_baseline(self) -> list[Row]:
        """The same events in the baseline."""
        return self._events(self.scope.baseline_window, EVENTS_PER_KEY)

    @cached_property
    def events_before(self) -> list[Row]:
        """The last event of each kind before the window: the state it starts in."""
        since = self.scope.since_ns
        return self._events(Window(since_ns=since - EVENT_LOOKBACK_NS, until_ns=since), 1)

    def _metrics(self, window: Window) -> Profile:
        table = self.source.metric_profile(
            window, self.scope.bucket_ns, max_series=MAX_METRIC_SERIES
        )
        return Profile.from_table(table, METRIC_KEY)

    @cached_property
    def metrics(self) -> Profile:
        """Metric levels and counter rates per series in the incident window."""
        return self._metrics(self.scope.window)

    @cached_property
    def metrics_baseline(self) -> Profile:
        """Metric levels and counter rates per series in the baseline."""
        return self._metrics(self.scope.baseline_window)

    def active_seconds(self, *, window: bool) -> float:
        """Seconds of the window (or baseline) in whose buckets any span or log record fell."""
        spans, logs = (
            (self.spans, self.logs) if window else (self.spans_baseline, self.logs_baseline)
        )
        return max(len(spans.active | logs.active), 1) * self.scope.bucket_ns / 1e9

    @cached_property
    def services(self) -> set[str]:
        """Every service seen in either window's spans or logs."""
        found: set[str] = set()
        for profile in (self.spans, self.spans_baseline, self.logs, self.logs_baseline):
            found.update(key[0] for key in profile.total)
        return found

    @cached_property
    def callers(self) -> dict[str, set[str]]:
        """Service call graph, callee -> callers, from both windows."""
        graph: dict[str, set[str]] = defaultdict(set)
        for profile in (self.edges, self.edges_baseline):
            for caller, _, callee, _ in profile.total:
                graph[callee].add(caller)
        # Calls to peers that send no spans, where the address book names the peer.
        for profile in (self.peers, self.peers_baseline):
            for (caller, _, _), row in profile.total.items():
                callee = self.listeners.get(row.get("port") or "")
                if callee and callee != caller:
                    graph[callee].add(caller)
        return graph
