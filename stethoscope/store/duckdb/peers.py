"""Calls to peers that send no spans of their own, and who listens where.

A client span with no child span in another service called something uninstrumented: a
service in another language, a database, a third-party API. Its duration is all the time the
call took, and its peer is what the span's attributes name (server address and port, database,
message destination). The address book maps listening ports back to services, from server
spans and from the listening sockets `steth run` reports, so that such a peer can still be
named as the service it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stethoscope.store.base import Window
from stethoscope.store.duckdb.attribute_sql import AttributeSql

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["address_book", "peer_profile"]

CLIENT_KINDS = (3, 4)  # OTLP SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER


def _peer(attributes: AttributeSql) -> str:
    """SQL naming the peer a client span called."""
    value = attributes.value
    # server.address may already hold host:port (some instrumentations put it there on servers)
    return f"""
        coalesce(
            CASE WHEN {value("server.port")} IS NOT NULL
                 THEN split_part({value("server.address")}, ':', 1) || ':' || {value("server.port")}
            END,
            {value("server.address")},
            {value("db.system")} || ':'
                || coalesce({value("db.name")}, {value("db.namespace")}, ''),
            {value("messaging.system")} || ':' || {value("messaging.destination.name")},
            name
        )
    """


def peer_profile(cursor: duckdb.DuckDBPyConnection, window: Window, bucket_ns: int) -> pa.Table:
    """Per (service, instance, peer, bucket): calls with no callee span, errors, durations.

    `port` is the peer's port when the span names one (for the address book). Rows with a
    null bucket cover the whole window; rows with a null instance all instances.
    """
    if window.since_ns is None or window.until_ns is None:
        raise ValueError("profiles need a closed window")
    attributes = AttributeSql.of(cursor, "spans")
    sql = f"""
        WITH calls AS (
            SELECT resource_id, service, trace_hi, trace_lo, span_id, start_ns, duration_ns,
                   coalesce({attributes.span_error()}, false) AS error,
                   {_peer(attributes)} AS peer, {attributes.value("server.port")} AS port
            FROM spans
            WHERE start_ns >= $since AND start_ns < $until AND kind IN {CLIENT_KINDS}
        ),
        answered AS (
            SELECT DISTINCT trace_hi, trace_lo, parent_span_id AS span_id FROM spans
            WHERE start_ns >= $since - 60000000000 AND start_ns < $until + 60000000000
              AND parent_span_id <> 0
        ),
        unanswered AS (
            SELECT c.*, coalesce(r.instance, '') AS instance
            FROM calls c
            LEFT JOIN resources r USING (resource_id)
            ANTI JOIN answered a USING (trace_hi, trace_lo, span_id)
        )
        SELECT service, instance, peer, any_value(port) AS port,
               ((start_ns - $since) // $bucket)::BIGINT AS bucket,
               count(*)::BIGINT AS calls,
               count(*) FILTER (WHERE error)::BIGINT AS errors,
               quantile_cont(duration_ns, 0.5) AS duration_p50,
               quantile_cont(duration_ns, 0.95) AS duration_p95
        FROM unanswered
        GROUP BY GROUPING SETS (
            (service, instance, peer, bucket), (service, instance, peer),
            (service, peer, bucket), (service, peer)
        )
    """
    params = {"since": window.since_ns, "until": window.until_ns, "bucket": bucket_ns}
    return cursor.sql(sql, params=params).to_arrow_table()


def address_book(cursor: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """(port, service, instance) of every listening port seen in the window."""
    if window.since_ns is None or window.until_ns is None:
        raise ValueError("the address book needs a closed window")
    point = AttributeSql(None, "p")  # metric points keep every attribute in their list
    span = AttributeSql.of(cursor, "spans", "s")
    sql = f"""
        SELECT DISTINCT port, service, instance FROM (
            SELECT {point.value("network.local.port")} AS port, p.service,
                   coalesce(r.instance, '') AS instance
            FROM metric_points p LEFT JOIN resources r USING (resource_id)
            WHERE p.name = 'process.tcp.connections'
              AND p.time_ns >= $since AND p.time_ns < $until
              AND {point.value("network.connection.direction")} = 'listen'
            UNION ALL
            SELECT {span.value("server.port")} AS port, s.service,
                   coalesce(r.instance, '') AS instance
            FROM spans s LEFT JOIN resources r USING (resource_id)
            WHERE s.kind = 2 AND s.start_ns >= $since AND s.start_ns < $until
        )
        WHERE port IS NOT NULL
    """
    params = {"since": window.since_ns, "until": window.until_ns}
    return cursor.sql(sql, params=params).to_arrow_table()
