"""Where query answers come from: a running server's API, or the store opened read-only."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from stethoscope.errors import DataError, UsageError
from stethoscope.server.discovery import ServerAddresses, read_addresses

if TYPE_CHECKING:
    from stethoscope.store.base import (
        EventQuery,
        LogQuery,
        MetricQuery,
        TemplateQuery,
        TraceQuery,
        Window,
    )
    from stethoscope.store.duckdb.store import DuckDBStore


class ApiSource:
    """The read side of the Store protocol, answered by a running server's HTTP API.

    Over one kept-alive HTTP/1.1 connection (`http11.py`): importing httpx took ~100 ms of
    every command's start-up, the standard library's `http.client` ~15 ms, several times what
    the server needs to answer. Each method imports the encoding of its own query: importing
    them all brought in the store's query types (dataclasses), ~8 ms of `steth trace`, which
    needs none.
    """

    def __init__(self, addresses: ServerAddresses, token: str | None) -> None:
        from stethoscope.cli.http11 import Http11Connection

        self._url = addresses.api_url
        parts = urlsplit(self._url)
        self._connection = Http11Connection(parts.hostname or "", parts.port or 80, timeout=60)
        self._headers = [("Authorization", f"Bearer {token}")] if token else []

    def _get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        from stethoscope.cli.http11 import HttpError

        target = quote(path) + (f"?{urlencode(list(params))}" if params else "")
        try:
            status, body = self._connection.get(target, self._headers)
        except HttpError as error:
            raise DataError(f"server at {self._url} did not answer: {error}") from None
        if status == 404:
            return None
        if status == 400:
            raise UsageError(_error_text(body))
        if status == 401:
            raise UsageError("the server needs a token: pass --token or set STETH_TOKEN")
        if status != 200:
            raise DataError(f"server answered {status}: {body[:200].decode(errors='replace')}")
        return json.loads(body)

    def services(self, window: Window) -> list[dict[str, Any]]:
        from stethoscope.server.queryparams import window_params

        return self._get("/api/services", window_params(window))["services"]

    def traces(self, query: TraceQuery) -> list[dict[str, Any]]:
        from stethoscope.server.queryparams import trace_query_params

        return self._get("/api/traces", trace_query_params(query))["traces"]

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        return self._get(f"/api/traces/{trace_id}")

    def trace_ids(self, prefix: str) -> list[str]:
        return list(self._get("/api/trace-ids", [("prefix", prefix)])["trace_ids"])

    def logs(self, query: LogQuery) -> list[dict[str, Any]]:
        from stethoscope.server.queryparams import log_query_params

        return self._get("/api/logs", log_query_params(query))["logs"]

    def metrics(self, query: MetricQuery) -> dict[str, Any]:
        from stethoscope.server.queryparams import metric_query_params

        return self._get("/api/metrics", metric_query_params(query))

    def templates(self, query: TemplateQuery) -> list[dict[str, Any]]:
        from stethoscope.server.queryparams import template_query_params

        return self._get("/api/templates", template_query_params(query))["templates"]

    def events(self, query: EventQuery) -> list[dict[str, Any]]:
        from stethoscope.server.queryparams import event_query_params

        return self._get("/api/events", event_query_params(query))["events"]

    def why(
        self,
        since_ns: int,
        until_ns: int,
        *,
        baseline: tuple[int, int] | None,
        service: str | None,
    ) -> dict[str, Any]:
        """The server's `steth why` report for the window."""
        from stethoscope.server.queryparams import why_params

        return self._get("/api/why", why_params(since_ns, until_ns, baseline, service))

    def close(self) -> None:
        self._connection.close()


def _error_text(body: bytes) -> str:
    """The message of the API's `{"error": ...}` answer (the body itself if it is not one)."""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")


@contextmanager
def open_source(data: Path, token: str | None) -> Iterator[ApiSource | DuckDBStore]:
    """The running server's API when there is one on `data`, else the store read-only."""
    addresses = read_addresses(data)
    source: ApiSource | DuckDBStore
    if addresses is not None:
        source = ApiSource(addresses, token)
    else:
        from stethoscope.store.duckdb.store import DuckDBStore

        source = DuckDBStore(data, read_only=True)
    try:
        yield source
    finally:
        source.close()
