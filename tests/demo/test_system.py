"""The demo system comes up under `steth run`, serves load end to end, and stops cleanly.

Everything is asserted from the store (the `steth ... --json` commands against the real
collector), except that no process outlives `stop()`, which is asked of the OS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import RunningServer, ServerFactory
from demo_helpers import RunningDemo, shop, since, start_demo, wait_for

from stethoscope.demo.faults import FaultInjector


@pytest.fixture(scope="module")
def demo(
    start_module_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDemo]:
    server: RunningServer = start_module_server()
    run_dir = tmp_path_factory.mktemp("demo")
    system = start_demo(server, run_dir)
    try:
        yield RunningDemo(
            system, FaultInjector(system, run_dir / "gt.jsonl"), server, run_dir / "gt.jsonl"
        )
    finally:
        system.stop()


def test_a_checkout_crosses_every_service_and_the_queue(demo: RunningDemo) -> None:
    started = time.time_ns()
    answer = shop(demo.system.gateway_url, "e2e-user", ["sku-01", "sku-02"])
    assert answer.status_code == 200, answer.text
    order = answer.json()["order_id"]

    def checkout_trace() -> set[str] | None:
        traces = demo.store(
            "traces", "--operation", "POST /api/checkout/{user}", "--since", since(started)
        )["traces"]
        for trace in traces:
            services = set(trace["services"])
            if {"gateway", "checkout", "cart", "payment"} <= services:
                return services
        return None

    services = wait_for(
        "a checkout trace through gateway, checkout, cart and payment", checkout_trace
    )
    assert "loadgen" in services or "gateway" in services
    shipped = wait_for(
        "the worker shipping the order",
        lambda: demo.store("logs", order, "--service", "worker", "--since", since(started))["logs"],
    )
    assert "shipped" in shipped[0]["body"]
    booked = wait_for(
        "the Node.js shipping service booking it (plain-text log, no spans)",
        lambda: demo.store("logs", order, "--service", "shipping", "--since", since(started))[
            "logs"
        ],
    )
    assert "booked shipment" in booked[0]["body"]


def test_the_load_generator_reports_success(demo: RunningDemo) -> None:
    reports = wait_for(
        "a load report",
        lambda: demo.store("logs", "requests ok=", "--service", "loadgen")["logs"],
    )
    assert "failed=0" in reports[-1]["body"] or "success=" in reports[-1]["body"]
    services = {row["service"] for row in demo.store("services")["services"]}
    assert {
        "gateway",
        "catalog",
        "cart",
        "checkout",
        "payment",
        "worker",
        "shipping",
        "loadgen",
    } <= services


def test_both_catalog_replicas_serve(demo: RunningDemo) -> None:
    def instances() -> set[str] | None:
        logs = demo.store("logs", "listed 20 products", "--service", "catalog", "--limit", "100")[
            "logs"
        ]
        found = {record["instance"] for record in logs}
        return found if found == {"catalog-1", "catalog-2"} else None

    wait_for("both catalog replicas answering", instances)


def test_stop_leaves_no_process(demo: RunningDemo, tmp_path: Path) -> None:
    pids = demo.system.pids()
    assert len(pids) >= 2 * 9  # every instance: `steth run` and its program
    demo.system.stop()
    alive = [
        pid
        for pid in pids
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == []

    def every_exit() -> list[dict[str, object]] | None:
        rows = demo.store("events", "--name", "process.exit", "--limit", "100")["events"]
        return rows if len({r["instance"] for r in rows}) >= 9 else None

    exits = wait_for("every instance's exit event", every_exit)
    # A requested stop is a clean exit: code 0, not "killed by SIGTERM".
    assert {r["instance"]: r["attributes"].get("process.exit.code") for r in exits} == {
        name: 0 for name in {r["instance"] for r in exits}
    }
