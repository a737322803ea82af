"""How far each instance's clock sits from the others', from its records and its spans.

A log line captured from a process carries the time the process printed (its clock) and the
time the collector observed it (ours). Their median difference per instance is steady (the
capture delay, or a time zone the line did not name); a jump in it is that instance's clock.

Spans carry no arrival time, but a call does: the callee's server span runs inside the caller's
client span, so a callee that starts before its caller or ends after it is impossible without
skew. With roughly symmetric network delay, ((callee start - caller start) + (callee end -
caller end)) / 2 estimates the callee's clock minus the caller's (the NTP estimate).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stethoscope.store.base import Window

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["TRACE_SKEW_NS", "clock_profile", "span_clock_profile", "trace_clock_offsets"]


def clock_profile(cursor: duckdb.DuckDBPyConnection, window: Window, bucket_ns: int) -> pa.Table:
    """Per (service, instance, bucket): records with their own time, median and spread of
    (record time - observed time) in ns. Rows with a null bucket cover the whole window."""
    if window.since_ns is None or window.until_ns is None:
        raise ValueError("profiles need a closed window")
    sql = """
        WITH offsets AS (
            SELECT l.service, coalesce(r.instance, '') AS instance,
                   ((l.observed_ns - $since) // $bucket)::BIGINT AS bucket,
                   l.time_ns - l.observed_ns AS offset_ns
            FROM logs l LEFT JOIN resources r USING (resource_id)
            -- Records whose time was only the observed time say nothing about a clock.
            WHERE l.observed_ns >= $since AND l.observed_ns < $until
              AND l.time_ns <> l.observed_ns
        )
        SELECT service, instance, bucket, count(*)::BIGINT AS records,
               quantile_cont(offset_ns, 0.5) AS offset_p50,
               quantile_cont(offset_ns, 0.75) - quantile_cont(offset_ns, 0.25) AS offset_iqr
        FROM offsets
        GROUP BY GROUPING SETS ((service, instance, bucket), (service, instance))
    """
    params = {"since": window.since_ns, "until": window.until_ns, "bucket": bucket_ns}
    return cursor.sql(sql, params=params).to_arrow_table()


# A callee is looked for this far outside the window: its clock may put it there.
MAX_SKEW_NS = 15 * 60 * 1_000_000_000


def span_clock_profile(
    cursor: duckdb.DuckDBPyConnection, window: Window, bucket_ns: int
) -> pa.Table:
    """Per (caller, caller instance, callee, callee instance, bucket) of cross-instance calls:
    pairs, how many stuck out of their caller, median and spread of the NTP estimate of the
    callee's clock minus the caller's, in ns. Rows with a null bucket cover the whole window.

    Only server spans count as callees: a consumer starts when the queue hands it the message,
    so its distance from the producer is queueing, not clock. A callee longer than its caller
    (the caller gave up, the callee went on) says nothing about clocks either.
    """
    if window.since_ns is None or window.until_ns is None:
        raise ValueError("profiles need a closed window")
    sql = """
        WITH callers AS (
            SELECT p.trace_hi, p.trace_lo, p.span_id, p.service, p.start_ns, p.duration_ns,
                   coalesce(r.instance, '') AS instance
            FROM spans p LEFT JOIN resources r USING (resource_id)
            WHERE p.start_ns >= $since AND p.start_ns < $until
        ),
        callees AS (
            SELECT c.trace_hi, c.trace_lo, c.parent_span_id, c.service, c.start_ns,
                   c.duration_ns, coalesce(r.instance, '') AS instance
            FROM spans c LEFT JOIN resources r USING (resource_id)
            WHERE c.start_ns >= $since - $margin AND c.start_ns < $until + $margin
              AND c.kind = 2 AND c.parent_span_id <> 0
        ),
        pairs AS (
            SELECT p.service AS caller, p.instance AS caller_instance,
                   c.service AS callee, c.instance AS callee_instance,
                   ((p.start_ns - $since) // $bucket)::BIGINT AS bucket,
                   (c.start_ns - p.start_ns)::DOUBLE
                       + (c.duration_ns - p.duration_ns)::DOUBLE / 2 AS offset_ns,
                   c.start_ns < p.start_ns
                       OR c.start_ns + c.duration_ns > p.start_ns + p.duration_ns AS outside
            FROM callees c JOIN callers p
              ON p.trace_hi = c.trace_hi AND p.trace_lo = c.trace_lo
             AND p.span_id = c.parent_span_id
            WHERE (p.service <> c.service OR p.instance <> c.instance)
              AND c.duration_ns <= p.duration_ns
        )
        SELECT caller, caller_instance, callee, callee_instance, bucket,
               count(*)::BIGINT AS pairs,
               count(*) FILTER (WHERE outside)::BIGINT AS outside,
               quantile_cont(offset_ns, 0.5) AS offset_p50,
               quantile_cont(offset_ns, 0.75) - quantile_cont(offset_ns, 0.25) AS offset_iqr
        FROM pairs
        GROUP BY GROUPING SETS (
            (caller, caller_instance, callee, callee_instance, bucket),
            (caller, caller_instance, callee, callee_instance)
        )
    """
    params = {
        "since": window.since_ns,
        "until": window.until_ns,
        "bucket": bucket_ns,
        "margin": MAX_SKEW_NS,
    }
    return cursor.sql(sql, params=params).to_arrow_table()


# -- one trace's timeline ---------------------------------------------------------------------

# Spans on one host share a clock, yet a server span may end a little after the client span
# that saw its response; only a callee this far outside its caller is moved.
TRACE_SKEW_NS = 50_000_000
_CALLERS = ("client", "producer")

Instance = tuple[str, str]


def _instance(row: Mapping[str, Any]) -> Instance:
    return (str(row.get("service") or ""), str(row.get("instance") or ""))


def _pair_estimate(parent: Mapping[str, Any], child: Mapping[str, Any], shift: int) -> int | None:
    """How far the child's clock is off, from one call, with the parent moved by `shift`;
    None when the child sits inside its parent (within TRACE_SKEW_NS) or no offset explains it."""
    p_start = int(parent["start_ns"]) + shift
    p_end = p_start + int(parent["duration_ns"])
    c_start = int(child["start_ns"])
    c_end = c_start + int(child["duration_ns"])
    early, late = p_start - c_start, c_end - p_end
    if max(early, late) <= TRACE_SKEW_NS:
        return None
    if child.get("kind") == "consumer":
        # Queued: it may start any time after the producer, never before it.
        return -early if early > TRACE_SKEW_NS else None
    if c_end - c_start > p_end - p_start:
        return None  # longer than its caller: it went on after the caller gave up
    if parent.get("kind") in _CALLERS:
        return ((c_start - p_start) + (c_end - p_end)) // 2
    # The parent also did other work: move the child just inside it.
    return -early if early > 0 else late


def trace_clock_offsets(spans: Sequence[Mapping[str, Any]]) -> dict[Instance, int]:
    """Per (service, instance) of one trace, the ns to add to its times to put its spans inside
    their callers'; only instances that need it. Callers are settled before their callees, so
    a callee of a corrected instance is judged against the corrected times."""
    by_id = {str(s.get("span_id")): s for s in spans}
    calls: dict[Instance, list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = defaultdict(list)
    settled: set[Instance] = set()
    for span in spans:
        parent = by_id.get(str(span.get("parent_span_id") or ""))
        if parent is None:
            settled.add(_instance(span))  # roots keep their clock: they are the reference
        elif _instance(parent) != _instance(span) and span.get("kind") in ("server", "consumer"):
            calls[_instance(span)].append((parent, span))
    if not settled:
        settled = {_instance(span) for span in spans[:1]}
    offsets: dict[Instance, int] = {}
    pending = set(calls) - settled
    while pending:
        ready = sorted(i for i in pending if any(_instance(p) in settled for p, _ in calls[i]))
        if not ready:
            break  # callers only among unsettled instances (a cycle): leave them as they are
        for instance in ready:
            offset = _instance_offset(calls[instance], settled, offsets)
            if offset:
                offsets[instance] = offset
            settled.add(instance)
            pending.discard(instance)
    return offsets


def _instance_offset(
    calls: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]],
    settled: set[Instance],
    offsets: Mapping[Instance, int],
) -> int:
    """The median estimate over the calls that put this instance outside a settled caller,
    when most of its calls from settled callers do (one odd span is not a clock)."""
    estimates, judged = [], 0
    for parent, child in calls:
        caller = _instance(parent)
        if caller in settled:
            judged += 1
            estimate = _pair_estimate(parent, child, offsets.get(caller, 0))
            if estimate is not None:
                estimates.append(estimate)
    if not estimates or 2 * len(estimates) < judged:
        return 0
    return -int(statistics.median(estimates))
