"""Process metrics of the child and its descendants, read with psutil every few seconds.

OTel semantic-convention names: process.cpu.time (cumulative, by cpu.mode),
process.cpu.utilization, process.memory.usage (RSS), process.thread.count,
process.open_file_descriptor.count, process.count; and `process.tcp.connections`, a gauge per
peer: outbound connections keep the peer's address and port (the service it calls), inbound ones
the local port they arrived on and the peer's address (who calls it), listening sockets their
local address. Ephemeral ports are dropped so that the series stay few.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psutil
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    Gauge,
    Metric,
    NumberDataPoint,
    Sum,
)

from stethoscope.sources.records import key_values

__all__ = ["ProcessSampler", "gauge"]

ConnectionKey = tuple[tuple[str, Any], ...]


def gauge(
    name: str, unit: str, points: Iterable[tuple[Mapping[str, Any], float]], *, time_ns: int
) -> Metric:
    """A gauge metric with one point per (attributes, value)."""
    return Metric(
        name=name,
        unit=unit,
        gauge=Gauge(data_points=[_point(attrs, value, time_ns) for attrs, value in points]),
    )


def _point(attributes: Mapping[str, Any], value: float, time_ns: int, start_ns: int = 0) -> Any:
    point = NumberDataPoint(
        attributes=key_values(attributes), time_unix_nano=time_ns, start_time_unix_nano=start_ns
    )
    if isinstance(value, int):
        point.as_int = value
    else:
        point.as_double = value
    return point


@dataclass
class _Totals:
    rss: int = 0
    threads: int = 0
    fds: int = 0
    processes: int = 0


class ProcessSampler:
    """Samples one process tree; cpu time is kept monotonic across descendants that exit."""

    def __init__(self, pid: int, *, start_ns: int, max_connection_series: int = 200) -> None:
        self._root = psutil.Process(pid)
        self._start_ns = start_ns
        self._max_series = max_connection_series
        self._last_cpu: dict[int, tuple[float, float]] = {}
        self._cpu_user = 0.0
        self._cpu_system = 0.0
        self._last_sample: tuple[int, float] | None = None

    def sample(self, now_ns: int) -> list[Metric]:
        """The metrics of the tree now; empty once the root process is gone."""
        try:
            processes = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return []
        totals = _Totals()
        connections: list[Any] = []
        seen: dict[int, tuple[float, float]] = {}
        for process in processes:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    seen[process.pid] = (times.user, times.system)
                    totals.rss += process.memory_info().rss
                    totals.threads += process.num_threads()
                    totals.fds += process.num_fds()
                    connections.extend(process.net_connections(kind="tcp"))
                    totals.processes += 1
            except psutil.Error:
                continue  # exited between listing and reading: it is simply not counted
        if not totals.processes:
            return []
        utilization = self._account_cpu(seen, now_ns)
        return self._metrics(totals, utilization, connections, now_ns)

    def _account_cpu(self, seen: dict[int, tuple[float, float]], now_ns: int) -> float | None:
        """Add each process's cpu since the last sample; the tree's utilization over it."""
        before = self._cpu_user + self._cpu_system
        for pid, (user, system) in seen.items():
            last_user, last_system = self._last_cpu.get(pid, (0.0, 0.0))
            self._cpu_user += max(0.0, user - last_user)
            self._cpu_system += max(0.0, system - last_system)
        self._last_cpu = seen  # forgets exited pids, so the map stays as small as the tree
        total = self._cpu_user + self._cpu_system
        previous, self._last_sample = self._last_sample, (now_ns, total)
        if previous is None or now_ns <= previous[0]:
            return None
        elapsed_s = (now_ns - previous[0]) / 1e9
        return (total - before) / elapsed_s / (psutil.cpu_count() or 1)

    def _metrics(
        self, totals: _Totals, utilization: float | None, connections: list[Any], now_ns: int
    ) -> list[Metric]:
        cpu_time = Metric(
            name="process.cpu.time",
            unit="s",
            sum=Sum(
                aggregation_temporality=AGGREGATION_TEMPORALITY_CUMULATIVE,
                is_monotonic=True,
                data_points=[
                    _point({"cpu.mode": "user"}, self._cpu_user, now_ns, self._start_ns),
                    _point({"cpu.mode": "system"}, self._cpu_system, now_ns, self._start_ns),
                ],
            ),
        )
        metrics = [
            cpu_time,
            gauge("process.memory.usage", "By", [({}, totals.rss)], time_ns=now_ns),
            gauge("process.thread.count", "{thread}", [({}, totals.threads)], time_ns=now_ns),
            gauge(
                "process.open_file_descriptor.count",
                "{file_descriptor}",
                [({}, totals.fds)],
                time_ns=now_ns,
            ),
            gauge("process.count", "{process}", [({}, totals.processes)], time_ns=now_ns),
        ]
        if utilization is not None:
            metrics.append(
                gauge("process.cpu.utilization", "1", [({}, utilization)], time_ns=now_ns)
            )
        series = self._connection_series(connections)
        if series:
            metrics.append(gauge("process.tcp.connections", "{connection}", series, time_ns=now_ns))
        return metrics

    def _connection_series(self, connections: list[Any]) -> list[tuple[dict[str, Any], int]]:
        """Connections counted per peer, at most `max_connection_series` series plus 'other'."""
        listening = {conn.laddr.port for conn in connections if conn.status == psutil.CONN_LISTEN}
        counts = Counter(_connection_key(conn, listening) for conn in connections)
        kept = counts.most_common(self._max_series)
        series: list[tuple[dict[str, Any], int]] = [(dict(key), count) for key, count in kept]
        rest = sum(counts.values()) - sum(count for _, count in kept)
        if rest:
            series.append(({"steth.connections.other": True}, rest))
        return series


def _connection_key(conn: Any, listening: set[int]) -> ConnectionKey:
    """The series a connection counts in: direction, state, and the non-ephemeral addresses."""
    state = str(conn.status).lower()
    if conn.status == psutil.CONN_LISTEN:
        return (
            ("network.connection.direction", "listen"),
            ("network.connection.state", state),
            ("network.local.address", conn.laddr.ip),
            ("network.local.port", conn.laddr.port),
        )
    peer = conn.raddr
    if conn.laddr and conn.laddr.port in listening:
        return (
            ("network.connection.direction", "inbound"),
            ("network.connection.state", state),
            ("network.local.port", conn.laddr.port),
            ("network.peer.address", peer.ip if peer else ""),
        )
    return (
        ("network.connection.direction", "outbound"),
        ("network.connection.state", state),
        ("network.peer.address", peer.ip if peer else ""),
        ("network.peer.port", peer.port if peer else 0),
    )
