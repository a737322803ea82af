"""The read-side SQL over what log records carry beyond text: templates, events, lifecycles.

Same conventions as `queries`: a reader's cursor in, JSON-ready dicts out, user values as `?`
parameters, half-open windows.
"""

from __future__ import annotations

from typing import Any

import duckdb

from stethoscope.store.base import EventQuery, TemplateQuery, TemplateRow, Window
from stethoscope.store.duckdb.queries import Where, log_rows, restore_attributes, template_hex

__all__ = ["add_instance_states", "events", "template_rows", "templates"]

# -- templates --------------------------------------------------------------------------------

_TEMPLATES_SQL = """
    WITH counted AS (
        SELECT service, template_id, count(*) AS count
        FROM logs WHERE template_id IS NOT NULL AND {where}
        GROUP BY service, template_id
    )
    SELECT c.service, c.template_id, t.template, t.overflow, c.count,
           t.first_seen_ns, t.last_seen_ns, t.example
    FROM counted c JOIN templates t USING (service, template_id)
    ORDER BY c.count DESC, t.last_seen_ns DESC, c.service, c.template_id
    LIMIT ?
"""


def templates(cursor: duckdb.DuckDBPyConnection, query: TemplateQuery) -> list[dict[str, Any]]:
    """The `limit` templates with the most records in the window, most frequent first.

    `count` is over the window; `first_seen_ns`/`last_seen_ns` span the template's whole
    history in this store (they outlive pruned records), so a template new since a deploy
    shows as such.
    """
    where = Where().window("time_ns", query.window)
    if query.service is not None:
        where.add("service = ?", query.service)
    sql = _TEMPLATES_SQL.format(where=where.sql())
    cursor.execute(sql, [*where.params, max(0, query.limit)])
    names = [column[0] for column in cursor.description or ()]
    found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in found:
        row["template_id"] = template_hex(row["template_id"])
    return found


def template_rows(cursor: duckdb.DuckDBPyConnection) -> list[TemplateRow]:
    """Every stored template by service and founding order: what restores the miners."""
    cursor.execute(
        "SELECT service, template_id, ordinal, template, overflow, first_seen_ns, last_seen_ns,"
        " example FROM templates ORDER BY service, ordinal"
    )
    return [TemplateRow(**dict(zip(_ROW_FIELDS, row, strict=True))) for row in cursor.fetchall()]


_ROW_FIELDS = (
    "service",
    "template_id",
    "ordinal",
    "template",
    "overflow",
    "first_seen_ns",
    "last_seen_ns",
    "example",
)

# -- events -----------------------------------------------------------------------------------


def events(
    cursor: duckdb.DuckDBPyConnection, query: EventQuery, *, templated: bool = True
) -> list[dict[str, Any]]:
    """The newest `limit` log records with an event name, oldest first."""
    where = Where().window("time_ns", query.window).add("event_name <> ''")
    if query.service is not None:
        where.add("service = ?", query.service)
    if query.name is not None:
        where.add("event_name = ?", query.name)
    found = log_rows(cursor, where, order="DESC", limit=query.limit, templated=templated)
    return found[::-1]


# -- instance state from lifecycle events -----------------------------------------------------

LIFECYCLE_STATES = {
    "process.start": "running",
    "process.exit": "exited",
    "process.restart": "restarting",
    "process.crash_loop": "crash_loop",
}
_STATE_FIELDS = {
    "exit_code": "process.exit.code",
    "exit_signal": "process.exit.signal",
    "restart_count": "steth.restart_count",
}


def _latest_lifecycle(
    cursor: duckdb.DuckDBPyConnection, window: Window
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each (service, instance)'s latest lifecycle event before the window's end."""
    names = list(LIFECYCLE_STATES)
    where = Where().add(f"event_name IN ({', '.join('?' * len(names))})", *names)
    if window.until_ns is not None:
        where.add("time_ns < ?", window.until_ns)
    sql = f"""
        SELECT l.service, coalesce(r.instance, '') AS instance,
               arg_max(l.event_name, l.time_ns) AS event_name,
               arg_max(l.attributes, l.time_ns) AS attributes,
               max(l.time_ns) AS time_ns
        FROM (SELECT service, resource_id, event_name, attributes, time_ns
              FROM logs WHERE {where.sql()}) l
        LEFT JOIN resources r USING (resource_id)
        GROUP BY l.service, instance
    """
    cursor.execute(sql, where.params)
    return {
        (service, instance): {"event": event, "attributes": attributes, "time_ns": time_ns}
        for service, instance, event, attributes, time_ns in cursor.fetchall()
    }


def _state(latest: dict[str, Any] | None) -> dict[str, Any]:
    """The state fields of an instance; all null when it sent no lifecycle event."""
    if latest is None:
        return {"state": None, "state_since_ns": None, **dict.fromkeys(_STATE_FIELDS)}
    attributes = restore_attributes(latest["attributes"])
    return {
        "state": LIFECYCLE_STATES[latest["event"]],
        "state_since_ns": latest["time_ns"],
        **{name: attributes.get(key) for name, key in _STATE_FIELDS.items()},
    }


def add_instance_states(
    cursor: duckdb.DuckDBPyConnection, services: list[dict[str, Any]], window: Window
) -> list[dict[str, Any]]:
    """`services` with each instance's state from its latest lifecycle event (in place).

    `process.start` means running, `process.exit` exited (with `exit_code` or `exit_signal`),
    `process.restart` restarting, `process.crash_loop` crash_loop; null without such events.
    """
    latest = _latest_lifecycle(cursor, window)
    for service in services:
        for instance in service["instances"]:
            instance.update(_state(latest.get((service["service"], instance["instance"]))))
    return services
