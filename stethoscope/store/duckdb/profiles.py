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

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stethoscope.store.base import Window
from stethoscope.store.duckdb.attribute_sql import AttributeSql
from stethoscope.store.duckdb.queries import restore_attributes

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = [
    "call_profile",
    "edge_profile",
    "event_history",
    "log_profile",
    "metric_profile",
    "span_profile",
]


def _bounds(window: Window) -> tuple[int, int]:
    if window.since_ns is None or window.until_ns is None:
        raise ValueError("profiles need a closed window")
    return window.since_ns, window.until_ns


def _spans_in_window(cursor: duckdb.DuckDBPyConnection) -> str:
    """The `in_window` and `w` (with instances) subqueries over the window's spans."""
    error = AttributeSql.of(cursor, "spans").span_error()
    return f"""
        in_window AS (
            SELECT resource_id, service, trace_hi, trace_lo, span_id, parent_span_id, name,
                   kind, start_ns, duration_ns, coalesce({error}, false) AS error
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
        WITH {_spans_in_window(cursor)},
        kids AS (
            SELECT c.trace_hi, c.trace_lo, c.parent_span_id AS span_id,
                   sum(c.duration_ns) AS child_ns, bool_or(c.service <> p.service) AS remote
            FROM w c JOIN w p ON p.trace_hi = c.trace_hi AND p.trace_lo = c.trace_lo
                             AND p.span_id = c.parent_span_id
            WHERE NOT coalesce(p.kind IN (3, 4), false)  -- no self time for those (below)
            GROUP BY ALL
        ),
        -- A span that calls another service spends its self time waiting between the two: that
        -- time is the edge's (see edge_profile), so it is left out of the caller's self time.
        -- So is a client or producer span's: its callee may send no spans (peers.py).
        costed AS (
            SELECT w.*, CASE WHEN kids.remote OR w.kind IN (3, 4) THEN NULL
                        ELSE greatest(w.duration_ns - coalesce(kids.child_ns, 0), 0) END AS self_ns
            FROM w LEFT JOIN kids USING (trace_hi, trace_lo, span_id)
        ),
        -- Both percentiles of a column come from one aggregate: its values are gathered once.
        stats AS (
            SELECT service, instance, name AS operation,
                   ((start_ns - $since) // $bucket)::BIGINT AS bucket,
                   count(*)::BIGINT AS spans,
                   count(*) FILTER (WHERE error)::BIGINT AS errors,
                   count(*) FILTER (WHERE parent_span_id = 0)::BIGINT AS roots,
                   count(self_ns)::BIGINT AS local_spans,
                   quantile_cont(duration_ns, [0.5, 0.95]) AS duration_q,
                   quantile_cont(self_ns, [0.5, 0.95]) AS self_q,
                   sum(self_ns)::DOUBLE AS self_sum
            FROM costed
            GROUP BY GROUPING SETS (
                (service, instance, operation, bucket), (service, instance, operation),
                (service, operation, bucket), (service, operation)
            )
        )
        SELECT * EXCLUDE (duration_q, self_q, self_sum),
               duration_q[1] AS duration_p50, duration_q[2] AS duration_p95,
               self_q[1] AS self_p50, self_q[2] AS self_p95, self_sum
        FROM stats
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
        WITH {_spans_in_window(cursor)},
        stats AS (
            SELECT p.service AS caller, p.instance AS caller_instance,
                   c.service AS callee, c.instance AS callee_instance,
                   ((c.start_ns - $since) // $bucket)::BIGINT AS bucket,
                   count(*)::BIGINT AS calls,
                   count(*) FILTER (WHERE c.error)::BIGINT AS callee_errors,
                   count(*) FILTER (WHERE p.error)::BIGINT AS caller_errors,
                   count(*) FILTER (WHERE c.error AND NOT p.error)::BIGINT AS swallowed,
                   quantile_cont(greatest(p.duration_ns - c.duration_ns, 0), [0.5, 0.95]) AS gap_q,
                   quantile_cont(c.duration_ns, 0.5) AS callee_p50
            FROM w c JOIN w p
              ON p.trace_hi = c.trace_hi AND p.trace_lo = c.trace_lo
             AND p.span_id = c.parent_span_id
            WHERE p.service <> c.service
            GROUP BY GROUPING SETS (
                (caller, caller_instance, callee, callee_instance, bucket),
                (caller, caller_instance, callee, callee_instance),
                (caller, callee, bucket), (caller, callee)
            )
        )
        SELECT * EXCLUDE (gap_q, callee_p50),
               gap_q[1] AS gap_p50, gap_q[2] AS gap_p95, callee_p50
        FROM stats
    """
    params = {"since": since, "until": until, "bucket": bucket_ns}
    return cursor.sql(sql, params=params).to_arrow_table()


def call_profile(cursor: duckdb.DuckDBPyConnection, window: Window, bucket_ns: int) -> pa.Table:
    """Per (service, operation, callee, bucket): the requests a service's server or consumer
    spans took and the calls (client or producer spans) each made directly under it.

    `callee` is the service whose span answered the call, '' when none did; rows with a null
    callee count every call (and every request). Rows with a null bucket cover the whole
    window. A service that stops making a call it used to make shows here even when nothing
    failed.
    """
    since, until = _bounds(window)
    sql = f"""
        WITH {_spans_in_window(cursor)},
        requests AS (
            SELECT trace_hi, trace_lo, span_id, service, name AS operation,
                   ((start_ns - $since) // $bucket)::BIGINT AS bucket
            FROM w WHERE kind IN (2, 5)
        ),
        answers AS (
            SELECT trace_hi, trace_lo, parent_span_id AS span_id, any_value(service) AS callee
            FROM w WHERE kind IN (2, 5) AND parent_span_id <> 0
            GROUP BY ALL
        ),
        calls AS (
            SELECT c.trace_hi, c.trace_lo, c.parent_span_id AS request_id,
                   coalesce(a.callee, '') AS callee
            FROM w c LEFT JOIN answers a USING (trace_hi, trace_lo, span_id)
            WHERE c.kind IN (3, 4)
        ),
        per_request AS (
            SELECT r.service, r.operation, r.bucket, r.span_id,
                   coalesce(c.callee, '-') AS callee,  -- '-': a request that made no call
                   count(c.request_id)::BIGINT AS calls
            FROM requests r LEFT JOIN calls c
              ON c.trace_hi = r.trace_hi AND c.trace_lo = r.trace_lo AND c.request_id = r.span_id
            GROUP BY ALL
        )
        SELECT service, operation, callee, bucket,
               count(DISTINCT span_id)::BIGINT AS requests, sum(calls)::BIGINT AS calls
        FROM per_request
        GROUP BY GROUPING SETS (
            (service, operation, bucket), (service, operation),
            (service, operation, callee, bucket), (service, operation, callee)
        )
        HAVING callee IS DISTINCT FROM '-'
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
            FROM logs
            -- Events (process.exit, probe.state...) have detectors of their own.
            WHERE time_ns >= $since AND time_ns < $until AND coalesce(event_name, '') = ''
        ),
        w AS (
            SELECT in_window.* EXCLUDE (resource_id), coalesce(r.instance, '') AS instance
            FROM in_window LEFT JOIN resources r USING (resource_id)
        ),
        stats AS (
            SELECT service, instance, template_id,
                   ((time_ns - $since) // $bucket)::BIGINT AS bucket,
                   count(*)::BIGINT AS records,
                   max(level)::INTEGER AS level,
                   min(time_ns) AS first_ns,
                   any_value(body) AS example
            FROM w
            GROUP BY GROUPING SETS (
                (service, instance, template_id, bucket), (service, instance, template_id),
                (service, template_id, bucket), (service, template_id)
            )
        )
        -- Template texts are joined to the few aggregated rows, not to every record.
        SELECT s.* EXCLUDE (example), t.template, s.example
        FROM stats s
        LEFT JOIN templates t ON t.service = s.service AND t.template_id = s.template_id
    """
    params = {"since": since, "until": until, "bucket": bucket_ns}
    return cursor.sql(sql, params=params).to_arrow_table()


def event_history(
    cursor: duckdb.DuckDBPyConnection, window: Window, *, names: Sequence[str], per_key: int
) -> list[dict[str, Any]]:
    """The newest `per_key` events of each (service, instance, event name, url) in the window.

    Oldest first, attributes restored, each with `count`: how many events its key has in the
    window (a crash loop's thousand exits are counted, not all returned).
    """
    since, until = _bounds(window)
    if not names or per_key <= 0:
        return []
    placeholders = ", ".join("?" * len(names))
    sql = f"""
        WITH picked AS (
            SELECT resource_id, service, event_name, time_ns, severity_number, body, attributes,
                   coalesce({AttributeSql.of(cursor, "logs").value("url.full")}, '') AS url
            FROM logs
            WHERE time_ns >= ? AND time_ns < ? AND event_name IN ({placeholders})
        ),
        keyed AS (
            SELECT picked.* EXCLUDE (resource_id), coalesce(r.instance, '') AS instance
            FROM picked LEFT JOIN resources r USING (resource_id)
        )
        SELECT service, instance, event_name, url, time_ns, severity_number, body, attributes,
               count(*) OVER (PARTITION BY service, instance, event_name, url) AS count
        FROM keyed
        QUALIFY row_number() OVER (
            PARTITION BY service, instance, event_name, url ORDER BY time_ns DESC
        ) <= ?
        ORDER BY time_ns, service, instance
    """
    cursor.execute(sql, [since, until, *names, per_key])
    columns = [column[0] for column in cursor.description or ()]
    found = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    for row in found:
        row["attributes"] = restore_attributes(row["attributes"])
    return found


# Cumulative monotonic sums are compared as per-second rates between consecutive points (a drop
# is a counter reset: the new value is what accrued since); delta sums as value per interval;
# gauges and non-monotonic sums as levels. Histograms and summaries are left out.
_METRIC_VALUES = """
    pts AS (
        SELECT resource_id, service, name, unit, time_ns, start_ns, value,
               type = 2 AND coalesce(monotonic, false) AS counter, temporality,
               list_sort(attributes) AS attrs
        FROM metric_points
        WHERE time_ns >= $since AND time_ns < $until AND type IN (1, 2)
          AND value IS NOT NULL AND isfinite(value)
    ),
    series AS (
        SELECT resource_id, name, attrs, count(*) OVER () AS series_total,
               row_number() OVER (ORDER BY any_value(service), name, resource_id,
                                  hash(attrs)) AS series_no
        FROM pts GROUP BY resource_id, name, attrs
    ),
    kept AS (
        SELECT pts.*, series.series_total,
               lag(value) OVER s AS prev_value, lag(time_ns) OVER s AS prev_ns
        FROM pts JOIN series USING (resource_id, name, attrs)
        WHERE series.series_no <= $max_series
        WINDOW s AS (PARTITION BY pts.resource_id, pts.name, pts.attrs ORDER BY time_ns)
    ),
    valued AS (
        SELECT *, CASE
            WHEN NOT counter THEN value
            WHEN temporality = 1 AND start_ns > 0 AND start_ns < time_ns
                THEN value / ((time_ns - start_ns) / 1e9)
            WHEN temporality = 1 AND prev_ns IS NOT NULL AND prev_ns < time_ns
                THEN value / ((time_ns - prev_ns) / 1e9)
            WHEN prev_ns IS NOT NULL AND prev_ns < time_ns
                THEN (CASE WHEN value >= prev_value THEN value - prev_value ELSE value END)
                     / ((time_ns - prev_ns) / 1e9)
            END AS v
        FROM kept
    )
"""


def metric_profile(
    cursor: duckdb.DuckDBPyConnection, window: Window, bucket_ns: int, *, max_series: int
) -> pa.Table:
    """Per (service, instance, metric, series, bucket): points, avg/min/max/last of the value.

    The value is a gauge's (or non-monotonic sum's) level, or a counter's per-second rate
    (`kind` 'rate'). At most `max_series` series, picked in a stable order;
    `series_total` says how many the window had.
    """
    since, until = _bounds(window)
    sql = f"""
        WITH {_METRIC_VALUES},
        w AS (
            SELECT valued.* EXCLUDE (resource_id), coalesce(r.instance, '') AS instance,
                   array_to_string([a.key || '=' || a.value FOR a IN attrs], ',') AS series,
                   CASE WHEN counter THEN 'rate' ELSE 'level' END AS kind
            FROM valued LEFT JOIN resources r USING (resource_id)
            WHERE v IS NOT NULL AND isfinite(v)
        )
        SELECT service, instance, name, series, kind,
               ((time_ns - $since) // $bucket)::BIGINT AS bucket,
               any_value(unit) AS unit,
               count(*)::BIGINT AS points,
               avg(v) AS avg, min(v) AS min, max(v) AS max, arg_max(v, time_ns) AS last,
               min(time_ns) AS first_ns,
               any_value(series_total)::BIGINT AS series_total
        FROM w
        GROUP BY GROUPING SETS (
            (service, instance, name, series, kind, bucket),
            (service, instance, name, series, kind)
        )
    """
    params = {"since": since, "until": until, "bucket": bucket_ns, "max_series": max_series}
    return cursor.sql(sql, params=params).to_arrow_table()
