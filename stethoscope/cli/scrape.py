"""`steth scrape`: Prometheus text / OpenMetrics endpoints into OTLP metrics for the collector."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from stethoscope.model.timeutil import NS_PER_S, parse_duration_ns

EXIT_INTERRUPTED = 0  # stopping is how a scraper ends; it is not a failure


def register(subparsers: Any) -> None:
    """Add `scrape` to the CLI."""
    parser = subparsers.add_parser(
        "scrape",
        help="scrape Prometheus/OpenMetrics endpoints into the collector",
        description="Scrape Prometheus text format and OpenMetrics endpoints and send the "
        "samples, with Prometheus' up/scrape_duration_seconds/scrape_samples_scraped, as "
        "OTLP metrics. Runs until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("urls", nargs="+", metavar="URL", help="e.g. http://127.0.0.1:8000/metrics")
    parser.add_argument("--service", required=True, help="service.name of what is scraped")
    parser.add_argument(
        "--instance", help="service.instance.id (one URL only; default: the target's host:port)"
    )
    parser.add_argument("--interval", "--every", default="15s", help="time between scrapes (15s)")
    parser.add_argument("--timeout", default="5s", help="bound on one scrape (5s)")
    parser.add_argument(
        "--max-body", type=int, default=10, help="largest answer in MiB, decompressed (10)"
    )
    parser.add_argument(
        "--max-samples", type=int, default=100_000, help="most samples in one answer (100000)"
    )
    parser.add_argument(
        "--endpoint",
        default="http://127.0.0.1:4318",
        help="OTLP/HTTP collector (http://127.0.0.1:4318)",
    )
    parser.add_argument(
        "--token", default=None, help="bearer token of the collector (default: $STETH_TOKEN)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from stethoscope.sources.scrape.config import ScrapeConfig
    from stethoscope.sources.scrape.scraper import Scraper
    from stethoscope.sources.shipper import Shipper, ShipperConfig

    config = ScrapeConfig(
        targets=tuple(args.urls),
        service=args.service,
        instance=args.instance,
        interval_s=parse_duration_ns(args.interval) / NS_PER_S,
        timeout_s=parse_duration_ns(args.timeout) / NS_PER_S,
        max_body_bytes=args.max_body * 2**20,
        max_samples=args.max_samples,
    )
    config.validate()
    token = args.token or os.environ.get("STETH_TOKEN") or None
    shipper = Shipper(ShipperConfig(endpoint=args.endpoint, token=token))  # validates
    scraper = Scraper(config, shipper)
    print(
        f"steth scrape: {len(config.targets)} target(s) every {args.interval} -> {args.endpoint}",
        file=sys.stderr,
    )
    shipper.start()
    import asyncio  # here: importing it costs every steth command ~18 ms of start-up

    try:
        asyncio.run(_until_signalled(scraper))
    finally:  # also when Ctrl-C came before the signal handlers were in place
        sent = shipper.close()
    for target in scraper.stats().targets:
        refused = (
            f", {target.refused_samples} samples refused ({target.refusal})"
            if target.refused_samples
            else ""
        )
        down = f" ({target.last_error})" if target.state == "down" else ""
        print(
            f"steth scrape: {target.url} ({target.instance}): {target.scrapes} scrapes, "
            f"{target.failures} failed{refused}, now {target.state or 'not scraped'}{down}",
            file=sys.stderr,
        )
    print(
        f"steth scrape: sent {sent.sent_metrics} metrics and {sent.sent_logs} events; "
        f"dropped {sent.dropped_metrics + sent.dropped_logs}, unsent {sent.pending}",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


async def _until_signalled(scraper: Any) -> None:
    """Run the scraper until SIGINT or SIGTERM."""
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await scraper.run(stop)
