"""What every detector reads: the incident window, its baseline, and the profiles of both.

Profiles are fetched once per analysis and shared by all detectors, as plain rows grouped by
component: the whole-window row (for comparing distributions) and the per-bucket rows (for
finding the onset).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from stethoscope.errors import UsageError
from stethoscope.store.base import Window

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["AnalysisContext", "Profile", "ProfileSource", "Scope"]

Row = dict[str, Any]


class ProfileSource(Protocol):
    """The part of the Store that analysis reads."""

    def span_profile(self, window: Window, bucket_ns: int) -> pa.Table: ...

    def edge_profile(self, window: Window, bucket_ns: int) -> pa.Table: ...

    def log_profile(self, window: Window, bucket_ns: int) -> pa.Table: ...


@dataclass(frozen=True, kw_only=True)
class Scope:
    """The incident window, the baseline it is compared with, and the onset resolution."""

    since_ns: int
    until_ns: int
    baseline: tuple[int, int]
    bucket_ns: int
    service: str | None = None

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


@dataclass
class Profile:
    """One profile's rows by component key: `total[key]` whole window, `buckets[key]` by time."""

    total: dict[tuple[Any, ...], Row] = field(default_factory=dict)
    buckets: dict[tuple[Any, ...], list[Row]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def from_table(cls, table: pa.Table, key: tuple[str, ...]) -> Profile:
        """Split an Arrow profile (null bucket = whole window) by the `key` columns."""
        profile = cls()
        for row in table.to_pylist():
            component = tuple(row[name] for name in key)
            if row["bucket"] is None:
                profile.total[component] = row
            else:
                profile.buckets[component].append(row)
        for rows in profile.buckets.values():
            rows.sort(key=lambda row: row["bucket"])
        return profile


SPAN_KEY = ("service", "instance", "operation")
EDGE_KEY = ("caller", "caller_instance", "callee", "callee_instance")
LOG_KEY = ("service", "instance", "template_id")


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
    def callers(self) -> dict[str, set[str]]:
        """Service call graph, callee -> callers, from both windows."""
        graph: dict[str, set[str]] = defaultdict(set)
        for profile in (self.edges, self.edges_baseline):
            for caller, _, callee, _ in profile.total:
                graph[callee].add(caller)
        return graph
