"""The scrape loop: every target on its own schedule, concurrently, in one event loop.

Each target is fetched with a hard deadline (`timeout_s`, the whole request including the body)
and parsed on a worker thread, so a slow, dead or huge target never delays the others. Ticks
are anchored to the start time (no drift); a scrape that overruns skips the ticks it missed.
Every scrape emits Prometheus' synthetic series (`up`, `scrape_duration_seconds`,
`scrape_samples_scraped`), and a change of a target's state is a `scrape.target` event.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint

from stethoscope import __version__
from stethoscope.errors import DataError
from stethoscope.sources.records import SEVERITY, log_record
from stethoscope.sources.scrape.config import ScrapeConfig
from stethoscope.sources.scrape.convert import Conversion, SeriesStarts, convert_families
from stethoscope.sources.scrape.exposition import ACCEPT, parse_exposition
from stethoscope.sources.shipper import Channel, Shipper

__all__ = ["SCOPE", "Scraper", "ScraperStats", "TargetStats"]

SCOPE = "stethoscope.scrape"
_SYNTHETIC = (
    ("up", "1 if the target answered with a readable exposition, else 0", ""),
    ("scrape_duration_seconds", "how long the scrape took", "seconds"),
    ("scrape_samples_scraped", "samples the target exposed", ""),
)


@dataclass
class TargetStats:
    """One target's counters, for the summary printed at the end."""

    url: str
    instance: str
    scrapes: int = 0
    failures: int = 0
    refused_samples: int = 0  # malformed or duplicated series left out of successful scrapes
    refusal: str = ""  # why, the latest time
    state: str = ""  # "", "up" or "down"
    last_error: str = ""


@dataclass
class ScraperStats:
    """Every target's counters."""

    targets: list[TargetStats] = field(default_factory=list)


@dataclass
class _Target:
    url: str
    channel: Channel
    stats: TargetStats
    starts: SeriesStarts = field(default_factory=SeriesStarts)


class Scraper:
    """Scrapes every configured target until told to stop; one channel (resource) per target."""

    def __init__(self, config: ScrapeConfig, shipper: Shipper) -> None:
        config.validate()
        self.config = config
        self._targets = [
            _Target(
                url, _channel(shipper, config.service, instance, url), TargetStats(url, instance)
            )
            for url, instance in zip(config.targets, config.instances(), strict=True)
        ]

    def stats(self) -> ScraperStats:
        """The counters so far."""
        return ScraperStats([target.stats for target in self._targets])

    async def run(self, stop: asyncio.Event) -> None:
        """Scrape every target on its schedule until `stop` is set."""
        headers = {
            "Accept": ACCEPT,
            "User-Agent": f"steth/{__version__}",
            "X-Prometheus-Scrape-Timeout-Seconds": f"{self.config.timeout_s:g}",
        }
        limits = httpx.Limits(max_connections=len(self._targets))
        client = httpx.AsyncClient(
            headers=headers, limits=limits, timeout=self.config.timeout_s, follow_redirects=True
        )
        async with client:
            loops = [asyncio.create_task(self._loop(client, target)) for target in self._targets]
            stopped = asyncio.create_task(stop.wait())
            # The loops end only on a bug: that surfaces at once instead of a target going quiet.
            await asyncio.wait([stopped, *loops], return_when=asyncio.FIRST_COMPLETED)
            for task in [stopped, *loops]:  # a scrape still in flight is abandoned, not reported
                task.cancel()
            await asyncio.gather(stopped, *loops, return_exceptions=True)
            for task in loops:
                failure = None if task.cancelled() else task.exception()
                if failure is not None:
                    raise failure

    async def _loop(self, client: httpx.AsyncClient, target: _Target) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.interval_s
        anchor = loop.time()
        while True:
            await self._scrape_once(client, target)
            now = loop.time()
            next_tick = anchor + (math.floor((now - anchor) / interval) + 1) * interval
            await asyncio.sleep(next_tick - now)

    async def _scrape_once(self, client: httpx.AsyncClient, target: _Target) -> None:
        """One scrape of one target: fetch, parse, convert, emit points and state changes."""
        time_ns = time.time_ns()
        began = time.perf_counter()
        conversion = Conversion()
        error = ""
        try:
            async with asyncio.timeout(self.config.timeout_s):
                body, content_type = await self._fetch(client, target.url)
            conversion = await asyncio.to_thread(self._convert, target, body, content_type, time_ns)
        except (TimeoutError, httpx.TimeoutException):
            error = f"timed out after {self.config.timeout_s:g}s"
        except httpx.HTTPError as failure:
            error = (
                f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
            )
        except DataError as failure:
            error = str(failure)
        duration = time.perf_counter() - began
        synthetic = _synthetic(time_ns, not error, duration, conversion.samples if not error else 0)
        target.channel.metrics([*conversion.metrics, *synthetic])
        self._record(target, error, conversion)

    async def _fetch(self, client: httpx.AsyncClient, url: str) -> tuple[bytes, str]:
        """The body and Content-Type of a 200 answer; DataError for anything else."""
        limit = self.config.max_body_bytes
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise DataError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise DataError(f"answer of {declared} bytes is over the {limit}-byte limit")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():  # decompressed: the limit bounds memory
                size += len(chunk)
                if size > limit:
                    raise DataError(f"answer is over the {limit}-byte limit")
                chunks.append(chunk)
            return b"".join(chunks), response.headers.get("Content-Type", "")

    def _convert(self, target: _Target, body: bytes, content_type: str, time_ns: int) -> Conversion:
        families = parse_exposition(body, content_type, max_samples=self.config.max_samples)
        try:
            return convert_families(families, time_ns=time_ns, starts=target.starts)
        except (ValueError, OverflowError, TypeError) as error:  # parsed, yet not convertible
            raise DataError(f"could not convert the answer: {error}") from None

    def _record(self, target: _Target, error: str, conversion: Conversion) -> None:
        """Count the scrape, and emit a `scrape.target` event when the state changed."""
        stats = target.stats
        stats.scrapes += 1
        stats.refused_samples += conversion.refused
        if conversion.reasons:
            stats.refusal = conversion.reasons[0]
        state = "down" if error else "up"
        if error:
            stats.failures += 1
            stats.last_error = error
        if state != stats.state:
            target.channel.log(_state_event(target.url, state, error, came_back=bool(stats.state)))
        stats.state = state


def _channel(shipper: Shipper, service: str, instance: str, url: str) -> Channel:
    parts = urlsplit(url)
    attributes = {
        "server.address": parts.hostname or "",
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
        "url.scheme": parts.scheme,
    }
    return shipper.channel(
        service=service, instance=instance, scope=SCOPE, resource_attributes=attributes
    )


def _synthetic(time_ns: int, up: bool, duration_s: float, samples: int) -> list[Metric]:
    """Prometheus' per-scrape series, as gauges of the target's resource."""
    values = (1.0 if up else 0.0, duration_s, float(samples))
    metrics = []
    for (name, description, unit), value in zip(_SYNTHETIC, values, strict=True):
        metric = Metric(name=name, description=description, unit=unit)
        metric.gauge.CopyFrom(
            Gauge(data_points=[NumberDataPoint(time_unix_nano=time_ns, as_double=value)])
        )
        metrics.append(metric)
    return metrics


def _state_event(url: str, state: str, error: str, *, came_back: bool) -> LogRecord:
    if state == "down":
        body = f"scrape target {url} is down: {error}"
        severity = "WARN"
    else:
        body = f"scrape target {url} is {'back ' if came_back else ''}up"
        severity = "INFO"
    attributes = {"url.full": url, "scrape.state": state}
    if error:
        attributes["error.message"] = error
    return log_record(
        time_ns=time.time_ns(),
        body=body,
        severity_number=SEVERITY[severity],
        severity_text=severity,
        attributes=attributes,
        event_name="scrape.target",
    )
