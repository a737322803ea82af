"""The load generator: a steady mix of browsing, adding to carts and checking out.

A synthetic client: it logs each failed request (WARNING) and, every `--report-every` seconds,
how many requests succeeded and their latency percentiles.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from stethoscope.demo.services.base import configure_logging

__all__ = ["main"]

log = logging.getLogger("loadgen")
USERS = 30
SKUS = 20
TIMEOUT_S = 10.0
MAX_LATENCY_SAMPLES = 100_000  # per report interval
# The mix: (weight, action). Checkout only for users whose cart has something in it.
MIX = ((45, "browse"), (25, "product"), (20, "add"), (10, "checkout"))


@dataclass
class Tally:
    """Outcomes since the last report (guarded by `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ok: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, ok: bool, latency_ms: float) -> None:
        with self.lock:
            self.ok += ok
            self.failed += not ok
            if len(self.latencies_ms) < MAX_LATENCY_SAMPLES:  # beyond: counted, not timed
                self.latencies_ms.append(latency_ms)

    def report(self) -> None:
        """Log and reset."""
        with self.lock:
            ok, failed, latencies = self.ok, self.failed, sorted(self.latencies_ms)
            self.ok, self.failed, self.latencies_ms = 0, 0, []
        if not latencies:
            log.warning("no requests completed in the last interval")
            return
        cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
        log.info(
            "requests ok=%d failed=%d success=%.1f%% p50=%.0fms p95=%.0fms p99=%.0fms",
            ok,
            failed,
            100 * ok / (ok + failed),
            cuts[49],
            cuts[94],
            cuts[98],
        )


class Client:
    """One simulated client thread issuing the mix at its share of the rate."""

    def __init__(
        self, number: int, base: str, interval_s: float, tally: Tally, stop: threading.Event
    ) -> None:
        self.base, self.interval_s, self.tally, self.stop = base, interval_s, tally, stop
        self.users = [f"c{number}-u{n}" for n in range(1, USERS + 1)]  # each client its own
        self.with_items: set[str] = set()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=TIMEOUT_S) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                self.one(http)
                self.stop.wait(
                    max(
                        0.0,
                        self.interval_s * random.uniform(0.5, 1.5) - (time.monotonic() - started),
                    )
                )

    def one(self, http: httpx.Client) -> None:
        action = random.choices([a for _, a in MIX], weights=[w for w, _ in MIX])[0]
        user = random.choice(self.users)
        if action == "checkout" and not self.with_items:
            action = "add"
        sku = f"sku-{random.randint(1, SKUS):02d}"
        if action == "browse":
            self.request(http, "GET", "/api/products")
        elif action == "product":
            self.request(http, "GET", f"/api/products/{sku}")
        elif action == "add" and self.request(
            http, "POST", f"/api/cart/{user}", json={"sku": sku, "qty": random.randint(1, 3)}
        ):
            self.with_items.add(user)
        elif action == "checkout":
            user = self.with_items.pop()
            self.request(http, "POST", f"/api/checkout/{user}")

    def request(self, http: httpx.Client, method: str, path: str, **kwargs: object) -> bool:
        started = time.monotonic()
        try:
            status = http.request(method, path, **kwargs).status_code  # type: ignore[arg-type]
            error = "" if status < 400 else f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        latency_ms = (time.monotonic() - started) * 1000
        self.tally.add(not error, latency_ms)
        if error:
            log.warning("%s %s failed: %s after %.0fms", method, path, error, latency_ms)
        return not error


def main(argv: Sequence[str] | None = None) -> None:
    """Generate load until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="demo load generator")
    parser.add_argument("--gateway", required=True, help="gateway URL")
    parser.add_argument("--rate", type=float, default=4.0, help="requests per second (4)")
    parser.add_argument("--clients", type=int, default=2, help="concurrent clients (2)")
    parser.add_argument("--report-every", type=float, default=5.0, help="seconds (5)")
    parser.add_argument("--instance", default="")
    flags = parser.parse_args(argv)
    if flags.rate <= 0 or flags.clients < 1 or flags.report_every <= 0:
        parser.error("--rate and --report-every must be positive, --clients at least 1")
    configure_logging("loadgen")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    tally = Tally()
    interval = flags.clients / flags.rate
    threads = [
        threading.Thread(
            target=Client(number, flags.gateway, interval, tally, stop).run, daemon=True
        )
        for number in range(1, flags.clients + 1)
    ]
    for thread in threads:
        thread.start()
    log.info(
        "load on %s: %.1f requests/s from %d clients", flags.gateway, flags.rate, flags.clients
    )
    while not stop.wait(flags.report_every):
        tally.report()
    for thread in threads:
        thread.join(timeout=TIMEOUT_S)
    tally.report()
    log.info("load stopped")


if __name__ == "__main__":
    main(sys.argv[1:])
