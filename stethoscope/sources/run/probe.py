"""`--probe URL`: an HTTP GET every few seconds, as metrics and as events on state changes.

`probe.up` (1 when the answer is 200-399, else 0) and `probe.duration` (seconds, also when the
probe failed) are gauges with `url.full`; `probe.state` is an event each time the state changes,
the first result included, WARN when down. A program takes a moment to listen: until it has
been up once, failures within `grace_s` of the start are metrics only, not a `down` event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from stethoscope.sources.records import SEVERITY, log_record
from stethoscope.sources.run.procmetrics import gauge
from stethoscope.sources.run.redact import redact_text
from stethoscope.sources.shipper import Channel

__all__ = ["HttpProbe", "ProbeResult"]


@dataclass(frozen=True)
class ProbeResult:
    """One probe: up or down, the HTTP status (0 without an answer), time taken, why down."""

    up: bool
    status: int
    duration_s: float
    error: str


class HttpProbe:
    """Probes one URL and reports to a channel; call `check()` from one thread."""

    def __init__(self, url: str, *, timeout_s: float, grace_s: float, channel: Channel) -> None:
        self._url = url
        self._shown_url = redact_text(url)
        self._channel = channel
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._last_up: bool | None = None
        self._grace_until = time.monotonic() + grace_s

    def check(self) -> None:
        """Probe once, emit the metrics, and an event when the state changed."""
        result = self._get()
        now = time.time_ns()
        attrs = {"url.full": self._shown_url}
        self._channel.metrics(
            [
                gauge("probe.up", "1", [(attrs, int(result.up))], time_ns=now),
                gauge("probe.duration", "s", [(attrs, result.duration_s)], time_ns=now),
            ]
        )
        starting = self._last_up is None and time.monotonic() < self._grace_until
        if result.up != self._last_up and (result.up or not starting):
            self._last_up = result.up
            self._channel.log(self._event(result, now))

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def _get(self) -> ProbeResult:
        started = time.monotonic()
        try:
            response = self._client.get(self._url)
        except httpx.HTTPError as error:
            message = redact_text(str(error)) or type(error).__name__
            return ProbeResult(False, 0, time.monotonic() - started, message)
        duration = time.monotonic() - started
        up = 200 <= response.status_code < 400
        why = "" if up else f"HTTP {response.status_code}"
        return ProbeResult(up, response.status_code, duration, why)

    def _event(self, result: ProbeResult, now: int) -> LogRecord:
        state = "up" if result.up else "down"
        attributes: dict[str, object] = {"url.full": self._shown_url, "probe.state": state}
        if result.status:
            attributes["http.response.status_code"] = result.status
        if result.error:
            attributes["error.message"] = result.error
        level = "INFO" if result.up else "WARN"
        return log_record(
            time_ns=now,
            body=f"probe {self._shown_url} is {state}"
            + (f": {result.error}" if result.error else ""),
            severity_number=SEVERITY[level],
            severity_text=level,
            attributes=attributes,
            event_name="probe.state",
        )
