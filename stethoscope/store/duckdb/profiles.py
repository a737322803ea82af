"""Aggregates that analysis compares between a baseline and an incident window.

Each profile is an Arrow table of per-(component, time bucket) statistics, computed in SQL so
that a million spans never become Python objects. Rows with a null `bucket` cover the whole
window (percentiles cannot be merged from buckets, so they are computed once more), and rows
with a null instance cover every instance of the service. Time is split where it is spent: a span's
self time (its duration minus its children's) belongs to its own service; the gap between a
caller's span and the callee's span under it (network, queueing, client overhead) belongs to
the edge between them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stethoscope.store.base import Window
from stethoscope.store.duckdb.queries import SPAN_ERROR

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["edge_profile", "log_profile", "span_profile"]


def _bounds(window: Window) -> tuple[int, int]:
    if window.since_ns is None or window.until_ns is None:
        raise ValueError("profiles need a closed window")
    return window.since_ns, window.until_ns


_SPANS_IN_WINDOW = f"""
    in_window AS (
        SELECT resource_id, service, trace_hi, trace_lo, span_id, parent_span_id, name,
               start_ns, duration_ns, coalesce({SPAN_ERROR}, false) AS error
        FROM spans WHERE start_ns >= $since AND start_ns < $until
    ),
    w AS (
        SELECT in_window.* EXCLUDE (resource_id), coalesce(r.instance, '') AS instance
        FROM in_window LEFT JOIN resources r USING (resource_id)
    )
"""


def span_profile(cursor: duckdb.DuckDBPyConnection, window: Window, bucket_ns: int) -> pa.Table:
    """Per (service, instance, operation, bucket): spans, errors, duration and self-time stats."""
    since, until = _bounds(window)
    sql = f"""
        WITH {_SPANS_IN_WINDOW},
        kids AS (
            SELECT c.trace_hi, c.trace_lo, c.parent_span_id AS span_id,
                   sum(c.duration_ns) AS child_ns, bool_or(c.service <> p.service) AS remote
            FROM w c JOIN w p ON p.trace_hi = c.trace_hi AND p.trace_lo = c.trace_lo
                             AND p.span_id = c.parent_span_id
            GROUP BY ALL
        ),
        -- A span that calls another service spends its self time waiting between the two: that
        -- time is the edge's (see edge_profile), so it is left out of the caller's self time.
        costed AS (
            SELECT w.*, CASE WHEN kids.remote THEN NULL
                        ELSE greatest(w.duration_ns - coalesce(kids.child_ns, 0), 0) END AS self_ns
            FROM w LEFT JOIN kids USING (trace_hi, trace_lo, span_id)
        )
        SELECT service, instance, name AS operation,
               ((start_ns - $since) // $bucket)::BIGINT AS bucket,
               count(*)::BIGINT AS spans,
               count(*) FILTER (WHERE error)::BIGINT AS errors,
               count(*) FILTER (WHERE parent_span_id = 0)::BIGINT AS roots,
               count(self_ns)::BIGINT AS local_spans,
               quantile_cont(duration_ns, 0.5) AS duration_p50,
               quantile_cont(duration_ns, 0.95) AS duration_p95,
               quantile_cont(self_ns, 0.5) AS self_p50,
               quantile_cont(self_ns, 0.95) AS self_p95,
               sum(self_ns)::DOUBLE AS self_sum
        FROM costed
        GROUP BY GROUPING SETS (
            (service, instance, operation, bucket), (service, instance, operation),
            (service, operation, bucket), (service, operation)
        )
    """
    params = {"since": since, "until": until, "bucket": bucket_ns}
    return cursor.sql(sql, params=params).to_arrow_table()


def edge_profile(cursor: duckdb.DuckDBPyConnection, window: Window, bucket_ns: int) -> pa.Table:
    """Per (caller, callee, bucket) across services: calls, errors on either side, gap stats.

    The gap is the caller span's duration minus the callee span's: time the call spent between
    the two processes.
    """
    since, until = _bounds(window)
    sql = f"""
        WITH {_SPANS_IN_WINDOW}
        SELECT p.service AS caller, p.instance AS caller_instance,
               c.service AS callee, c.instance AS callee_instance,
               ((c.start_ns - $since) // $bucket)::BIGINT AS bucket,
               count(*)::BIGINT AS calls,
               count(*) FILTER (WHERE c.error)::BIGINT AS callee_errors,
               count(*) FILTER (WHERE p.error)::BIGINT AS caller_errors,
               count(*) FILTER (WHERE c.error AND NOT p.error)::BIGINT AS swallowed,
               quantile_cont(greatest(p.duration_ns - c.duration_ns, 0), 0.5) AS gap_p50,
               quantile_cont(greatest(p.duration_ns - c.duration_ns, 0), 0.95) AS gap_p95,
               quantile_cont(c.duration_ns, 0.5) AS callee_p50
        FROM w c JOIN w p
          ON p.trace_hi = c.trace_hi AND p.trace_lo = c.trace_lo AND p.span_id = c.parent_span_id
        WHERE p.service <> c.service
        GROUP BY GROUPING SETS (
            (caller, caller_instance, callee, callee_instance, bucket),
            (caller, caller_instance, callee, callee_instance),
            (caller, callee, bucket), (caller, callee)
        )
    """
    params = {"since": since, "until": until, "bucket": bucket_ns}
    return cursor.sql(sql, params=params).to_arrow_table()


# Records sent without a severity (plain text captured from a process, or exporters that leave it
# to the text) get one from an upper-case level word near the start of the body.
_LEVEL = r"""
    CASE WHEN severity_number > 0 THEN severity_number
         WHEN regexp_matches(left(body, 80), '\b(FATAL|CRITICAL|CRIT|PANIC|EMERG)\b') THEN 21
         WHEN regexp_matches(left(body, 80), '\b(ERROR|ERR|SEVERE)\b|^E[0-9]{4} ') THEN 17
         WHEN regexp_matches(left(body, 80), '\b(WARN|WARNING)\b|^W[0-9]{4} ') THEN 13
         ELSE 9 END
"""


def log_profile(cursor: duckdb.DuckDBPyConnection, window: Window, bucket_ns: int) -> pa.Table:
    """Per (service, instance, template, bucket): records, highest level, template text, example."""
    since, until = _bounds(window)
    sql = f"""
        WITH in_window AS (
            SELECT resource_id, service, coalesce(template_id, 0) AS template_id, time_ns, body,
                   {_LEVEL} AS level
            FROM logs WHERE time_ns >= $since AND time_ns < $until
        ),
        w AS (
            SELECT in_window.* EXCLUDE (resource_id), coalesce(r.instance, '') AS instance
            FROM in_window LEFT JOIN resources r USING (resource_id)
        )
        SELECT w.service, instance, w.template_id,
               ((time_ns - $since) // $bucket)::BIGINT AS bucket,
               count(*)::BIGINT AS records,
               max(level)::INTEGER AS level,
               min(time_ns) AS first_ns,
               any_value(t.template) AS template,
               any_value(body) AS example
        FROM w LEFT JOIN templates t ON t.service = w.service AND t.template_id = w.template_id
        GROUP BY GROUPING SETS (
            (w.service, instance, w.template_id, bucket), (w.service, instance, w.template_id),
            (w.service, w.template_id, bucket), (w.service, w.template_id)
        )
    """
    params = {"since": since, "until": until, "bucket": bucket_ns}
    return cursor.sql(sql, params=params).to_arrow_table()
