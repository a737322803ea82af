"""The fulfilment worker: takes orders off the queue, books their shipment, acknowledges them.

Its stall fault stops it consuming without a word: the loop keeps running and logs nothing, the
queue grows (checkout's "queue depth" lines show it).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from stethoscope.demo.control import FaultState
from stethoscope.demo.services.base import configure_logging
from stethoscope.demo.services.orderqueue import OrderQueue

__all__ = ["main"]

log = logging.getLogger("worker")
IDLE_POLL_S = 0.2
SHIPPING_TIMEOUT_S = 3.0
REPORT_EVERY_S = 15.0


class Worker:
    """The consume loop; `stop` ends it after the order in hand."""

    def __init__(self, queue: OrderQueue, shipping: str, state: FaultState) -> None:
        self.queue, self.shipping, self.state = queue, shipping, state
        self.stop = threading.Event()
        self.done = 0

    def run(self) -> None:
        """Consume until stopped; report throughput every REPORT_EVERY_S."""
        reported = time.monotonic()
        with httpx.Client(timeout=SHIPPING_TIMEOUT_S) as http:
            while not self.stop.is_set():
                if self.state.active("worker_stall") is not None:
                    self.stop.wait(IDLE_POLL_S)  # stuck, silently: no claim, no log
                    continue
                claimed = self.queue.claim()
                if claimed is None:
                    self.stop.wait(IDLE_POLL_S)
                else:
                    self.fulfil(http, *claimed)
                if time.monotonic() - reported >= REPORT_EVERY_S:
                    log.info("fulfilled %d orders; %d waiting", self.done, self.queue.depth())
                    reported = time.monotonic()

    def fulfil(self, http: httpx.Client, key: int, order: dict[str, Any]) -> None:
        """Book one order's shipment and ack it; release it for a retry when shipping fails."""
        order_id = order["order_id"]
        if not order.get("charge_id"):
            log.error("order %s has no payment reference; cannot ship it, parked", order_id)
            self.queue.dead(key)
            return
        try:
            answer = http.post(f"{self.shipping}/shipments", json=order)
            answer.raise_for_status()
        except httpx.HTTPError as error:
            log.warning("shipment for %s failed, will retry: %s", order_id, error)
            self.queue.release(key)
            return
        self.queue.ack(key)
        self.done += 1
        log.info("order %s shipped as %s", order_id, answer.json()["shipment_id"])


def main(argv: Sequence[str] | None = None) -> None:
    """Run the worker until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="demo fulfilment worker")
    parser.add_argument("--queue", type=Path, required=True, help="order queue SQLite file")
    parser.add_argument("--shipping", required=True, help="shipping service URL")
    parser.add_argument("--instance", default="")
    flags = parser.parse_args(argv)
    configure_logging("worker")
    state = FaultState.from_env()
    state.start()
    worker = Worker(OrderQueue(flags.queue), flags.shipping, state)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop.set())
    log.info("worker started on %s", flags.queue)
    worker.run()
    log.info("worker stopped after %d orders", worker.done)


if __name__ == "__main__":
    main(sys.argv[1:])
