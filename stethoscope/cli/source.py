"""Where query answers come from: a running server's API, or the store opened read-only."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stethoscope.errors import DataError, UsageError
from stethoscope.server.discovery import ServerAddresses, read_addresses
from stethoscope.server.queryparams import (
    event_query_params,
    log_query_params,
    metric_query_params,
    template_query_params,
    trace_query_params,
    why_params,
    window_params,
)
from stethoscope.store.base import (
    EventQuery,
    LogQuery,
    MetricQuery,
    TemplateQuery,
    TraceQuery,
    Window,
)

if TYPE_CHECKING:
    from stethoscope.store.duckdb.store import DuckDBStore


class ApiSource:
    """The read side of the Store protocol, answered by a running server's HTTP API."""

    def __init__(self, addresses: ServerAddresses, token: str | None) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=addresses.api_url, headers=headers, timeout=60)

    def _get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        import httpx

        try:
            response = self._client.get(path, params=list(params))
        except httpx.HTTPError as error:
            raise DataError(f"server at {self._client.base_url} did not answer: {error}") from None
        if response.status_code == 404:
            return None
        if response.status_code == 400:
            raise UsageError(response.json().get("error", response.text))
        if response.status_code == 401:
            raise UsageError("the server needs a token: pass --token or set STETH_TOKEN")
        if response.status_code != 200:
            raise DataError(f"server answered {response.status_code}: {response.text[:200]}")
        return response.json()

    def services(self, window: Window) -> list[dict[str, Any]]:
        return self._get("/api/services", window_params(window))["services"]

    def traces(self, query: TraceQuery) -> list[dict[str, Any]]:
        return self._get("/api/traces", trace_query_params(query))["traces"]

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        return self._get(f"/api/traces/{trace_id}")

    def trace_ids(self, prefix: str) -> list[str]:
        return list(self._get("/api/trace-ids", [("prefix", prefix)])["trace_ids"])

    def logs(self, query: LogQuery) -> list[dict[str, Any]]:
        return self._get("/api/logs", log_query_params(query))["logs"]

    def metrics(self, query: MetricQuery) -> dict[str, Any]:
        return self._get("/api/metrics", metric_query_params(query))

    def templates(self, query: TemplateQuery) -> list[dict[str, Any]]:
        return self._get("/api/templates", template_query_params(query))["templates"]

    def events(self, query: EventQuery) -> list[dict[str, Any]]:
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
        return self._get("/api/why", why_params(since_ns, until_ns, baseline, service))

    def close(self) -> None:
        self._client.close()


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
