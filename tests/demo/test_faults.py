"""Each fault of the catalogue injected once into one shared demo: its ground truth is recorded
and its visible effect is read back from the store (`steth ... --json` against the real
collector that every demo process reports to through `steth run`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import RunningServer, ServerFactory
from demo_helpers import RunningDemo, shop, since, start_demo, wait_for

from stethoscope.demo.faults import CATALOGUE, FaultInjector

pytestmark = pytest.mark.slow  # one system for ~3 minutes of faults


@pytest.fixture(scope="module")
def demo(
    start_module_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningDemo]:
    server: RunningServer = start_module_server()
    run_dir = tmp_path_factory.mktemp("demo")
    system = start_demo(server, run_dir)
    ground_truth = run_dir / "ground-truth.jsonl"
    try:
        yield RunningDemo(system, FaultInjector(system, ground_truth), server, ground_truth)
    finally:
        system.stop()


def fault_of(test_name: str) -> str:
    """The fault a test is about: `test_NAME_shows_...` -> NAME."""
    return test_name.removeprefix("test_").split("_shows")[0]


@pytest.fixture(autouse=True)
def ground_truth_recorded(request: pytest.FixtureRequest, demo: RunningDemo) -> Iterator[None]:
    """After each test: its fault's inject and revert lines are in the ground-truth file."""
    before = len(demo.records())
    yield
    name = fault_of(request.node.name)
    if name not in {f.name for f in CATALOGUE}:
        return
    lines = demo.records()[before:]
    assert [line["action"] for line in lines] == ["inject", "revert"]
    inject, revert = lines
    assert inject["fault"] == name and inject["instance"] == revert["instance"]
    assert {"service", "instance", "time_ns", "params", "mechanism"} <= set(inject)
    assert inject["time_ns"] < revert["time_ns"]


def logs(demo: RunningDemo, service: str, after_ns: int, *text: str) -> list[dict[str, Any]]:
    """Log records of a service since `after_ns`, optionally containing `text`."""
    found = demo.store("logs", *text, "--service", service, "--since", since(after_ns))
    return list(found["logs"])


def events(demo: RunningDemo, name: str, instance: str, after_ns: int) -> list[dict[str, Any]]:
    """Events named `name` of one instance since `after_ns`."""
    rows = demo.store("events", "--name", name, "--since", since(after_ns), "--limit", "500")
    return [row for row in rows["events"] if row["instance"] == instance]


def points(demo: RunningDemo, metric: str, instance: str, after_ns: int) -> list[float]:
    """Values of a metric's points for one instance since `after_ns`."""
    service = instance.rsplit("-", 1)[0]
    found = demo.store(
        "metrics", metric, "--service", service, "--since", since(after_ns), "--points", "100"
    )
    return [
        float(point["value"])
        for series in found["series"]
        if series["instance"] == instance
        for point in series["points"]
        if point["time_ns"] >= after_ns
    ]


def test_latency_shows_slow_spans(demo: RunningDemo) -> None:
    with demo.fault("latency", target="cart-1", delay_ms=600) as injection:
        found = wait_for(
            "cart spans of 400 ms or more",
            lambda: demo.store(
                "traces", "--service", "cart", "--min-duration", "400ms",
                "--since", since(injection.injected_ns),
            )["traces"],
        )  # fmt: skip
    assert found


def test_errors_shows_error_spans_at_payment(demo: RunningDemo) -> None:
    with demo.fault("errors", fraction=1.0) as injection:
        assert shop(demo.system.gateway_url, "t-errors", ["sku-03"]).status_code == 502
        found = wait_for(
            "payment error traces",
            lambda: demo.store(
                "traces", "--errors", "--service", "payment", "--since",
                since(injection.injected_ns),
            )["traces"],
        )  # fmt: skip
        assert wait_for(
            "payment's error log",
            lambda: logs(demo, "payment", injection.injected_ns, "charge failed"),
        )
    assert found


def test_errors_shows_at_the_callers_of_the_uninstrumented_node_service(
    demo: RunningDemo,
) -> None:
    # shipping has no spans of its own: its failure shows in its plain-text log and in checkout.
    with demo.fault("errors", target="shipping-1", fraction=1.0) as injection:
        assert shop(demo.system.gateway_url, "t-ship", ["sku-08"]).status_code == 502
        assert wait_for(
            "checkout's error about the quote",
            lambda: logs(demo, "checkout", injection.injected_ns, "shipping quote failed"),
        )
        own = wait_for(
            "shipping's own error line",
            lambda: logs(demo, "shipping", injection.injected_ns, "rate table lookup failed"),
        )
    assert own[0]["severity_number"] >= 17


def test_crash_shows_on_the_node_service_too(demo: RunningDemo) -> None:
    with demo.fault("crash", target="shipping-1") as injection:
        exits = wait_for(
            "shipping-1's exit event",
            lambda: events(demo, "process.exit", "shipping-1", injection.injected_ns),
        )
    assert exits[0]["attributes"]["process.exit.code"] == 70


def test_exception_shows_a_traceback_in_checkout(demo: RunningDemo) -> None:
    with demo.fault("exception") as injection:
        answer = shop(demo.system.gateway_url, "t-exception", ["sku-04", "sku-05"])
        assert answer.status_code == 502
        records = wait_for(
            "checkout's traceback",
            lambda: logs(demo, "checkout", injection.injected_ns, "bundle-v2"),
        )
    assert any("KeyError" in str(r["body"]) and r["severity_number"] >= 17 for r in records)


def test_crash_shows_an_exit_and_a_restart(demo: RunningDemo) -> None:
    with demo.fault("crash", target="checkout-1") as injection:
        exits = wait_for(
            "checkout-1's exit event",
            lambda: events(demo, "process.exit", "checkout-1", injection.injected_ns),
        )
        assert exits[0]["attributes"]["process.exit.code"] == 70
        assert wait_for(
            "checkout-1's restart",
            lambda: events(demo, "process.restart", "checkout-1", injection.injected_ns),
        )


def test_crash_loop_shows_repeated_exits(demo: RunningDemo) -> None:
    with demo.fault("crash_loop", target="payment-1") as injection:
        exits = wait_for(
            "three exits of payment-1",
            lambda: (
                (found := events(demo, "process.exit", "payment-1", injection.injected_ns))
                and len(found) >= 3
                and found
            ),
            timeout_s=60,
        )
    assert all(e["attributes"].get("process.exit.code") for e in exits)
    assert any(
        "PAYMENT_PROCESSOR_URL" in str(e["attributes"].get("process.stderr_tail")) for e in exits
    )


def test_hang_shows_timeouts_at_the_gateway(demo: RunningDemo) -> None:
    with demo.fault("hang", target="catalog-1") as injection:
        time.sleep(1)
        # The load shares the round-robin, so which replica a request reaches is not ours to
        # pick: ask until one reaches the hung replica.
        with httpx.Client(base_url=demo.system.gateway_url, timeout=15) as http:
            statuses = []
            while 504 not in statuses and len(statuses) < 10:
                statuses.append(http.get("/api/products").status_code)
        assert 504 in statuses and set(statuses) <= {200, 504}
        assert wait_for(
            "the gateway's timeout warnings",
            lambda: logs(demo, "gateway", injection.injected_ns, "catalog timed out"),
        )
        down = wait_for(
            "catalog-1's probe going down",
            lambda: [
                e for e in events(demo, "probe.state", "catalog-1", injection.injected_ns)
                if e["attributes"]["probe.state"] == "down"
            ],
        )  # fmt: skip
    assert down


def test_wrong_result_shows_only_at_the_worker(demo: RunningDemo) -> None:
    with demo.fault("wrong_result") as injection:
        answer = shop(demo.system.gateway_url, "t-wrong", ["sku-06"])
        assert answer.status_code == 200  # nobody upstream notices
        order = answer.json()["order_id"]
        parked = wait_for(
            "the worker parking the order",
            lambda: logs(demo, "worker", injection.injected_ns, order),
        )
    assert "no payment reference" in parked[0]["body"]
    assert not demo.store(
        "traces", "--errors", "--service", "payment", "--since", since(injection.injected_ns)
    )["traces"]


def test_worker_stall_shows_a_growing_queue(demo: RunningDemo) -> None:
    with demo.fault("worker_stall") as injection:
        time.sleep(1)
        for n in range(3):
            assert shop(demo.system.gateway_url, f"t-stall-{n}", ["sku-07"]).status_code == 200

        def depths() -> list[int] | None:
            bodies = [
                str(r["body"]) for r in logs(demo, "checkout", injection.injected_ns, "queue depth")
            ]
            found = [int(m.group(1)) for b in bodies if (m := re.search(r"queue depth (\d+)", b))]
            return found if len(found) >= 3 else None

        found = wait_for("checkout's queue depth lines", depths)
        shipped = logs(demo, "worker", injection.injected_ns + 1_000_000_000, "shipped")
    assert found == sorted(found) and found[-1] >= 3
    assert shipped == []


def test_cpu_hog_shows_cpu_use(demo: RunningDemo) -> None:
    # Relative to its twin replica (same code, same load): the machine is shared, so the
    # absolute share of a core the hog gets varies.
    with demo.fault("cpu_hog", target="catalog-2") as injection:
        start = injection.injected_ns + 1_000_000_000

        def hogging() -> tuple[float, float] | None:
            hog = points(demo, "process.cpu.utilization", "catalog-2", start)
            twin = points(demo, "process.cpu.utilization", "catalog-1", start)
            if len(hog) < 2 or len(twin) < 2:
                return None
            return (max(hog), max(twin)) if max(hog) > 3 * max(twin) + 0.05 else None

        assert wait_for("catalog-2 using far more CPU than catalog-1", hogging)


def test_memory_leak_shows_growing_memory(demo: RunningDemo) -> None:
    before = max(points(demo, "process.memory.usage", "gateway-1", time.time_ns() - 30_000_000_000))
    with demo.fault("memory_leak", target="gateway-1", kb_per_request=1024) as injection:
        with httpx.Client(base_url=demo.system.gateway_url, timeout=15) as http:
            for _ in range(120):
                http.get("/api/products/sku-01")
        grown = wait_for(
            "gateway-1's memory growing by 80 MB",
            lambda: [
                v
                for v in points(demo, "process.memory.usage", "gateway-1", injection.injected_ns)
                if v >= before + 80 * 2**20
            ],
        )
    assert grown


def test_config_drift_shows_a_different_fingerprint(demo: RunningDemo) -> None:
    with demo.fault("config_drift", target="catalog-2") as injection:
        prints = wait_for(
            "catalog-2's new fingerprint",
            lambda: events(demo, "process.fingerprint", "catalog-2", injection.injected_ns),
        )
        assert "EUR" in prints[-1]["attributes"]["process.command_args"]
        peer = events(demo, "process.fingerprint", "catalog-1", 0)
        assert (
            peer[-1]["attributes"]["steth.fingerprint"]
            != prints[-1]["attributes"]["steth.fingerprint"]
        )
        with httpx.Client(base_url=demo.system.gateway_url, timeout=15) as http:
            currencies: set[str] = set()
            for n in range(1, 12):
                http.post("/api/cart/t-drift", json={"sku": f"sku-{n:02d}"})
                currencies = {i["currency"] for i in http.get("/api/cart/t-drift").json()["items"]}
                if currencies == {"USD", "EUR"}:
                    break
            assert currencies == {"USD", "EUR"}
            assert http.post("/api/checkout/t-drift").status_code == 409
        assert wait_for(
            "checkout refusing mixed currencies",
            lambda: logs(demo, "checkout", injection.injected_ns, "mixes currencies"),
        )


def test_store_down_shows_database_errors_at_cart(demo: RunningDemo) -> None:
    with demo.fault("store_down") as injection:
        with httpx.Client(base_url=demo.system.gateway_url, timeout=15) as http:
            assert http.get("/api/cart/t-store").status_code == 502
        records = wait_for(
            "cart's store errors",
            lambda: logs(demo, "cart", injection.injected_ns, "database is locked"),
        )
    assert records[0]["severity_number"] >= 17


def test_stop_logging_shows_silence_while_spans_go_on(demo: RunningDemo) -> None:
    with demo.fault("stop_logging", target="cart-1") as injection:
        quiet_from = injection.injected_ns + 2_000_000_000
        time.sleep(6)
        with httpx.Client(base_url=demo.system.gateway_url, timeout=15) as http:
            for _ in range(3):
                http.get("/api/cart/t-quiet")
        spans = wait_for(
            "cart spans while it is silent",
            lambda: demo.store("traces", "--service", "cart", "--since", since(quiet_from))[
                "traces"
            ],
        )
        written = [r for r in logs(demo, "cart", quiet_from) if not r.get("event_name")]
    assert spans and written == []


def test_clock_skew_shows_log_times_ahead(demo: RunningDemo) -> None:
    with demo.fault("clock_skew", target="catalog-1", offset_s=120) as injection:
        ahead = wait_for(
            "catalog-1 log records two minutes ahead",
            lambda: [
                r for r in logs(demo, "catalog", injection.injected_ns)
                if r["instance"] == "catalog-1" and r["time_ns"] > injection.injected_ns + 100e9
            ],
        )  # fmt: skip
    assert ahead


def test_every_fault_has_a_test() -> None:
    tested = {fault_of(name) for name in globals() if name.startswith("test_")}
    assert {fault.name for fault in CATALOGUE} <= tested
