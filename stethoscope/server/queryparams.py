"""Query objects to and from URL parameters: the one encoding the CLI and the API share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stethoscope.errors import UsageError
from stethoscope.store.base import (
    EventQuery,
    LogQuery,
    MetricQuery,
    TemplateQuery,
    TraceQuery,
    Window,
)


def window_params(window: Window) -> list[tuple[str, str]]:
    """URL parameters for a window."""
    params = []
    if window.since_ns is not None:
        params.append(("since_ns", str(window.since_ns)))
    if window.until_ns is not None:
        params.append(("until_ns", str(window.until_ns)))
    return params


def _int(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except ValueError:
        raise UsageError(f"{name} must be an integer, got {value!r}") from None


def window_from(params: Mapping[str, str]) -> Window:
    """The window given as since_ns/until_ns parameters."""
    return Window(since_ns=_int(params, "since_ns"), until_ns=_int(params, "until_ns"))


def trace_query_params(query: TraceQuery) -> list[tuple[str, str]]:
    """URL parameters for a TraceQuery."""
    params = window_params(query.window) + [("limit", str(query.limit))]
    for name in ("service", "operation"):
        if getattr(query, name):
            params.append((name, getattr(query, name)))
    if query.errors_only:
        params.append(("errors", "1"))
    if query.min_duration_ns is not None:
        params.append(("min_duration_ns", str(query.min_duration_ns)))
    params.extend(("attr", f"{key}={value}") for key, value in query.attributes)
    return params


def trace_query_from(params: Mapping[str, str], attrs: Sequence[str]) -> TraceQuery:
    """A TraceQuery from URL parameters (`attrs` are the repeated attr=key=value values)."""
    return TraceQuery(
        window=window_from(params),
        service=params.get("service") or None,
        operation=params.get("operation") or None,
        errors_only=params.get("errors") == "1",
        min_duration_ns=_int(params, "min_duration_ns"),
        attributes=tuple(parse_attribute_filter(text) for text in attrs),
        limit=_int(params, "limit") or 20,
    )


def parse_attribute_filter(text: str) -> tuple[str, str]:
    """'key=value' as a (key, value) pair."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"attribute filter must look like key=value, got {text!r}")
    return key, value


def log_query_params(query: LogQuery) -> list[tuple[str, str]]:
    """URL parameters for a LogQuery."""
    params = window_params(query.window) + [("limit", str(query.limit))]
    named = (("text", query.text), ("service", query.service), ("trace", query.trace_id))
    for name, value in named:
        if value:
            params.append((name, value))
    if query.min_severity is not None:
        params.append(("min_severity", str(query.min_severity)))
    if query.newest_first:
        params.append(("newest", "1"))
    return params


def log_query_from(params: Mapping[str, str]) -> LogQuery:
    """A LogQuery from URL parameters."""
    return LogQuery(
        window=window_from(params),
        text=params.get("text") or None,
        service=params.get("service") or None,
        min_severity=_int(params, "min_severity"),
        trace_id=params.get("trace") or None,
        limit=_int(params, "limit") or 1000,
        newest_first=params.get("newest") == "1",
    )


def metric_query_params(query: MetricQuery) -> list[tuple[str, str]]:
    """URL parameters for a MetricQuery."""
    params = window_params(query.window) + [("points", str(query.points_per_series))]
    for name, value in (("name", query.name), ("service", query.service)):
        if value:
            params.append((name, value))
    return params


def metric_query_from(params: Mapping[str, str]) -> MetricQuery:
    """A MetricQuery from URL parameters."""
    return MetricQuery(
        window=window_from(params),
        name=params.get("name") or None,
        service=params.get("service") or None,
        points_per_series=_int(params, "points") or 10,
    )


def _named(params: list[tuple[str, str]], **values: str | None) -> list[tuple[str, str]]:
    """`params` plus each value that is set, under its name."""
    return params + [(name, value) for name, value in values.items() if value]


def template_query_params(query: TemplateQuery) -> list[tuple[str, str]]:
    """URL parameters for a TemplateQuery."""
    params = window_params(query.window) + [("limit", str(query.limit))]
    return _named(params, service=query.service)


def template_query_from(params: Mapping[str, str]) -> TemplateQuery:
    """A TemplateQuery from URL parameters."""
    return TemplateQuery(
        window=window_from(params),
        service=params.get("service") or None,
        limit=_int(params, "limit") or 50,
    )


def event_query_params(query: EventQuery) -> list[tuple[str, str]]:
    """URL parameters for an EventQuery."""
    params = window_params(query.window) + [("limit", str(query.limit))]
    return _named(params, service=query.service, name=query.name)


def event_query_from(params: Mapping[str, str]) -> EventQuery:
    """An EventQuery from URL parameters."""
    return EventQuery(
        window=window_from(params),
        service=params.get("service") or None,
        name=params.get("name") or None,
        limit=_int(params, "limit") or 100,
    )


def why_params(
    since_ns: int, until_ns: int, baseline: tuple[int, int] | None, service: str | None
) -> list[tuple[str, str]]:
    """URL parameters of a `steth why` request."""
    params = window_params(Window(since_ns=since_ns, until_ns=until_ns))
    if baseline is not None:
        params += [("baseline_since_ns", str(baseline[0])), ("baseline_until_ns", str(baseline[1]))]
    return _named(params, service=service)


def why_from(
    params: Mapping[str, str],
) -> tuple[int, int, tuple[int, int] | None, str | None]:
    """(since, until, baseline or None, service or None) of a `steth why` request."""
    since, until = _int(params, "since_ns"), _int(params, "until_ns")
    if since is None or until is None:
        raise UsageError("why needs since_ns and until_ns")
    start, end = _int(params, "baseline_since_ns"), _int(params, "baseline_until_ns")
    baseline = (start, end) if start is not None and end is not None else None
    return since, until, baseline, params.get("service") or None
