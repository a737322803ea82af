"""POST each watch event as JSON to a webhook, from one background thread.

The watch loop only enqueues, so a slow or dead receiver never delays detection. The queue is
bounded (`max_pending`; events refused when full are counted), each POST has a timeout and a
bounded number of retries with backoff, and failures are counted and reported on stderr, never
fatal. A 2xx answer is a delivery; a 4xx other than 408/429 is permanent and not retried.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from stethoscope.errors import UsageError

__all__ = ["WebhookConfig", "WebhookSender", "WebhookStats"]

RETRYABLE_4XX = (408, 429)


@dataclass(frozen=True, kw_only=True)
class WebhookConfig:
    """Where to POST, how long to wait, how often to retry, and how much may wait."""

    url: str
    timeout_s: float = 5.0
    attempts: int = 3
    backoff_s: float = 0.5  # doubled after each failed attempt
    max_pending: int = 1000
    drain_s: float = 5.0  # how long close() waits for what is still queued

    def validate(self) -> None:
        """Refuse a URL that is not http(s) and limits that are not positive."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--webhook must be an http:// or https:// URL, got {self.url!r}")
        if self.timeout_s <= 0 or self.attempts < 1 or self.max_pending < 1:
            raise UsageError("webhook timeout, attempts and max_pending must be positive")


@dataclass
class WebhookStats:
    """What happened to the events handed to the sender."""

    delivered: int = 0
    failed: int = 0  # given up after every attempt, or refused permanently
    refused: int = 0  # not queued: the queue was full


class WebhookSender:
    """A background thread delivering events in order; `send` never blocks."""

    def __init__(self, config: WebhookConfig) -> None:
        import httpx

        config.validate()
        self.config = config
        self.stats = WebhookStats()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(config.max_pending)
        self._closing = threading.Event()
        self._client = httpx.Client(timeout=config.timeout_s)
        self._thread = threading.Thread(target=self._run, name="steth-webhook", daemon=True)
        self._thread.start()

    def send(self, event: dict[str, Any]) -> None:
        """Queue one event; when the queue is full it is refused and counted."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.stats.refused += 1
            _warn(f"queue full, event dropped ({self.stats.refused} dropped so far)")

    def close(self) -> WebhookStats:
        """Deliver what is queued within `drain_s`, then stop."""
        with contextlib.suppress(queue.Full):  # full: the join below still bounds the wait
            self._queue.put(None, timeout=self.config.drain_s)
        self._thread.join(self.config.drain_s)
        self._closing.set()  # give up retrying whatever is still in flight
        self._thread.join(self.config.timeout_s + 1)
        self._client.close()
        return self.stats

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            error = self._deliver(event)
            if error is None:
                self.stats.delivered += 1
            else:
                self.stats.failed += 1
                _warn(f"POST {self.config.url} failed: {error} ({self.stats.failed} failed so far)")

    def _deliver(self, event: dict[str, Any]) -> str | None:
        """None once delivered, else why the last attempt failed."""
        import httpx

        delay = self.config.backoff_s
        error = "not attempted"
        for attempt in range(self.config.attempts):
            if attempt and self._closing.wait(delay):
                return f"{error} (shutting down)"
            delay *= 2
            try:
                response = self._client.post(self.config.url, json=event)
            except httpx.HTTPError as failure:
                error = str(failure) or type(failure).__name__
                continue
            if response.is_success:
                return None
            error = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code not in RETRYABLE_4XX:
                return error
        return error


def _warn(message: str) -> None:
    print(f"steth watch: webhook: {message}", file=sys.stderr, flush=True)
