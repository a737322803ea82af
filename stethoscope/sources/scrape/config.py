"""What `steth scrape` is told: the targets, their identity, the interval and every bound."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from stethoscope.errors import UsageError

__all__ = ["ScrapeConfig", "target_instance"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def target_instance(url: str) -> str:
    """host:port of a target URL, the scheme's port when none is written (as Prometheus does)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets in host:port
        host = f"[{host}]"
    return f"{host}:{parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)}"


@dataclass(frozen=True, kw_only=True)
class ScrapeConfig:
    """Everything the scraper needs; `validate()` refuses impossible settings at start-up."""

    targets: tuple[str, ...]
    service: str
    instance: str | None = None  # None: each target's host:port
    interval_s: float = 15.0
    timeout_s: float = 5.0
    max_body_bytes: int = 10 * 2**20  # a larger answer fails the scrape (decompressed size)
    max_samples: int = 100_000  # more samples in one answer fail the scrape (Prometheus' limit)

    def validate(self) -> None:
        """Raise UsageError with one clear message for the first impossible setting."""
        if not self.targets:
            raise UsageError("give at least one URL to scrape")
        for url in self.targets:
            parts = urlsplit(url)
            if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
                raise UsageError(f"a target must be an http:// or https:// URL, got {url!r}")
            try:
                parts.port  # noqa: B018 - raises on a port that is not a number
            except ValueError:
                raise UsageError(f"bad port in target {url!r}") from None
        if not self.service.strip():
            raise UsageError("--service must not be empty")
        if self.instance is not None and len(self.targets) > 1:
            raise UsageError(
                "--instance names one target; with several URLs leave it out and each target's "
                "instance is its host:port (or run one `steth scrape` per instance)"
            )
        instances = self.instances()
        for instance in set(instances):
            if instances.count(instance) > 1:
                raise UsageError(
                    f"two targets share the instance {instance}; their series would mix "
                    "(run one `steth scrape --instance ID` for each)"
                )
        if self.interval_s <= 0 or self.timeout_s <= 0:
            raise UsageError("--interval and --timeout must be positive")
        if self.timeout_s > self.interval_s:
            raise UsageError(
                f"--timeout ({self.timeout_s:g}s) must not exceed --interval "
                f"({self.interval_s:g}s), as in Prometheus"
            )
        if self.max_body_bytes < 1 or self.max_samples < 1:
            raise UsageError("--max-body and --max-samples must be at least 1")

    def instances(self) -> list[str]:
        """The service.instance.id of each target, in order."""
        if self.instance is not None:
            return [self.instance for _ in self.targets]
        return [target_instance(url) for url in self.targets]
