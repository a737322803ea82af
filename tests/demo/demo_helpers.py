"""What the demo tests share: a running demo reporting to a real `steth up`, and store polling."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from conftest import RunningServer

from stethoscope.demo.control import POLL_S
from stethoscope.demo.faults import FaultInjector, Injection
from stethoscope.demo.system import INSTANCES, DemoSystem, SystemConfig

T = TypeVar("T")
STORE_WAIT_S = 40.0  # capture ships every 0.2 s, metrics every 5 s; the machine is shared
RECOVER_WAIT_S = 60.0


@dataclass
class RunningDemo:
    """The demo system, its fault injector, and the collector it reports to."""

    system: DemoSystem
    injector: FaultInjector
    server: RunningServer
    ground_truth: Path

    def store(self, *args: str) -> Any:
        """`steth ARGS --json` against the collector's data directory."""
        return self.server.steth_json(*args)

    def records(self) -> list[dict[str, Any]]:
        """The ground-truth lines written so far."""
        if not self.ground_truth.exists():
            return []
        return [json.loads(line) for line in self.ground_truth.read_text().splitlines()]

    @contextmanager
    def fault(self, name: str, **params: Any) -> Iterator[Injection]:
        """Inject a fault for the block; revert it and wait until every instance is healthy."""
        target = params.pop("target", None)
        injection = self.injector.inject(name, target=target, params=params)
        time.sleep(2 * POLL_S)  # the instance applies its fault file within POLL_S
        try:
            yield injection
        finally:
            self.injector.revert(injection)
            deadline = time.monotonic() + RECOVER_WAIT_S
            while not all(self.system.healthy(i.name) for i in INSTANCES):
                assert time.monotonic() < deadline, f"the demo did not recover from {name}"
                time.sleep(0.5)


def start_demo(server: RunningServer, run_dir: Path, *, load_rate: float = 4.0) -> DemoSystem:
    """The demo system reporting to `server`, started, with its load running."""
    config = SystemConfig(
        run_dir=run_dir, endpoint=server.otlp_url, load_rate=load_rate, probe_every_s=2.0
    )
    system = DemoSystem(config).start()
    system.start_load()
    return system


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = STORE_WAIT_S) -> T:
    """Call `probe` until it returns something truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"not seen within {timeout_s}s: {what}"
        time.sleep(1.0)


def since(ns: int) -> str:
    """A --since value for an instant in ns."""
    return f"{ns / 1e9:.3f}"


def shop(gateway: str, user: str, skus: list[str]) -> httpx.Response:
    """Fill `user`'s cart with `skus` through the gateway and check out; the checkout answer."""
    with httpx.Client(base_url=gateway, timeout=15) as http:
        for sku in skus:
            added = http.post(f"/api/cart/{user}", json={"sku": sku, "qty": 1})
            assert added.status_code == 201, added.text
        return http.post(f"/api/checkout/{user}")
