"""How far each instance's own timestamps sit from the time its records arrived.

A log line captured from a process carries the time the process printed (its clock) and the
time the collector observed it (ours). Their median difference per instance is steady (the
capture delay, or a time zone the line did not name); a jump in it is that instance's clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stethoscope.store.base import Window

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["clock_profile"]


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
