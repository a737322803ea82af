"""Metric change points: CPU that rose, memory that leaks, counter rates and levels that moved.

Metrics are built as `steth run` samples them (procmetrics' gauges, a cumulative process.cpu.time)
every 5 s for 15 minutes, imported with the real `steth import`, and `steth why --json` is asked
about the window after minute 10 against the minutes before.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from process_recording import Process, why_over
from synthetic import SECOND, START_NS

from stethoscope.analysis.detectors.metrics import theil_sen
from stethoscope.model.timeutil import format_ns

WINDOW = (
    "--since",
    format_ns(START_NS + 600 * SECOND),
    "--until",
    format_ns(START_NS + 900 * SECOND),
    "--baseline",
    f"{format_ns(START_NS + 60 * SECOND)}..{format_ns(START_NS + 600 * SECOND)}",
)
SAMPLES = range(0, 900, 5)
FAULT_AT_S = 620
MB = 2**20
METRIC_KINDS = ("metric-shift", "cpu", "memory-growth")

Series = Callable[[float], float]


def noisy(level: float, seed: int, spread: float = 0.05) -> Series:
    rng = random.Random(seed)
    return lambda _: level * (1 + rng.gauss(0, spread))


def after(at: float, before: Series, then: Series) -> Series:
    return lambda t: then(t) if t >= at else before(t)


def healthy(service: str, instance: str, seed: int) -> Process:
    """An instance with steady CPU, memory and threads."""
    process = Process(service, instance)
    process.gauge("process.cpu.utilization", "1", noisy(0.03, seed), SAMPLES)
    process.gauge("process.memory.usage", "By", noisy(60 * MB, seed + 1, 0.01), SAMPLES)
    process.gauge("process.thread.count", "{thread}", lambda _: 12, SAMPLES)
    return process.counter("process.cpu.time", noisy(0.03, seed + 2), SAMPLES, unit="s")


def why(tmp_path: Path, processes: list[Process]) -> dict[str, Any]:
    return why_over(tmp_path, processes, WINDOW)


def cpu_hog() -> Process:
    process = Process("catalog", "catalog-2")
    hot = after(FAULT_AT_S, noisy(0.03, 11), noisy(0.5, 12))
    process.gauge("process.cpu.utilization", "1", hot, SAMPLES)
    return process.gauge("process.memory.usage", "By", noisy(60 * MB, 13, 0.01), SAMPLES)


def cpu_saturated() -> Process:
    process = Process("catalog", "catalog-2")
    busy = after(FAULT_AT_S, noisy(0.03, 14), noisy(0.97, 15, 0.01))
    return process.counter("process.cpu.time", busy, SAMPLES, unit="s")


def memory_leak() -> Process:
    process = Process("gateway", "gateway-1")
    steady = noisy(60 * MB, 16, 0.01)
    leak = after(FAULT_AT_S, steady, lambda t: steady(t) + 2 * MB * (t - FAULT_AT_S))
    return process.gauge("process.memory.usage", "By", leak, SAMPLES)


def rejections() -> Process:
    process = Process("orders", "orders-1")
    rate = after(FAULT_AT_S, noisy(1.0, 17, 0.1), noisy(20.0, 18, 0.1))
    return process.counter("orders.rejected", rate, SAMPLES)


@pytest.mark.parametrize(
    ("fault", "kind", "shown"),
    [
        pytest.param(cpu_hog, "cpu", ["CPU use rose", "process.cpu.utilization"], id="cpu-hog"),
        pytest.param(cpu_saturated, "cpu", ["CPU saturated", "/s"], id="cpu-saturated"),
        pytest.param(memory_leak, "memory-growth", ["grows steadily", "Theil-Sen"], id="leak"),
        pytest.param(rejections, "metric-shift", ["orders.rejected", "/s"], id="counter-rate"),
    ],
)
def test_the_instance_whose_metric_changed_ranks_first(
    tmp_path: Path, fault: Callable[[], Process], kind: str, shown: list[str]
) -> None:
    odd = fault()
    report = why(tmp_path, [odd, healthy("catalog", "catalog-1", 1), healthy("cart", "cart-1", 5)])

    top = report["suspects"][0]
    assert (top["service"], top["instance"]) == (odd.service, odd.instance), report["suspects"]
    assert kind in top["reasons"]
    finding = next(f for f in report["findings"] if f["kind"] == kind)
    text = json.dumps(finding)
    assert all(words in text for words in shown), text
    onset_s = (finding["start_ns"] - START_NS) / SECOND
    assert 600 <= onset_s <= 660
    assert {f["service"] for f in report["findings"]} == {odd.service}


def ramp(service: str) -> Process:
    """A memory gauge that grows at one pace all along: a cache filling, no leak."""
    process = Process(service, f"{service}-1")
    return process.gauge("cache.memory.bytes", "By", lambda t: 100 * MB + 0.1 * MB * t, SAMPLES)


def spike(service: str) -> Process:
    """One bucket's CPU burst inside the window."""
    process = Process(service, f"{service}-1")
    base = noisy(0.03, 21)
    burst = lambda t: 0.9 if 700 <= t < 710 else base(t)  # noqa: E731
    return process.gauge("process.cpu.utilization", "1", burst, SAMPLES)


def steady_counter(service: str) -> Process:
    """A counter whose total grows while its rate stays the same."""
    return Process(service, f"{service}-1").counter("requests", noisy(5.0, 22, 0.1), SAMPLES)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda: [healthy("catalog", "catalog-1", 1), healthy("cart", "cart-1", 5)],
            id="steady-noisy-metrics",
        ),
        pytest.param(lambda: [ramp("cache")], id="growth-as-in-the-baseline"),
        pytest.param(lambda: [spike("api")], id="a-spike-is-not-a-shift"),
        pytest.param(lambda: [steady_counter("api")], id="counter-at-a-steady-rate"),
    ],
)
def test_no_metric_finding_without_a_change(
    tmp_path: Path, make: Callable[[], list[Process]]
) -> None:
    report = why(tmp_path, make())
    assert [f for f in report["findings"] if f["kind"] in METRIC_KINDS] == []


@pytest.mark.parametrize(
    ("ys", "slope", "steady"),
    [
        pytest.param([1, 2, 3, 4, 5], 1.0, 1.0, id="line"),
        pytest.param([1, 2, 100, 4, 5], 1.0, 0.8, id="outlier-ignored"),
        pytest.param([5, 5, 5, 5], 0.0, 0.0, id="flat"),
    ],
)
def test_theil_sen_slope_resists_outliers(ys: list[float], slope: float, steady: float) -> None:
    found, rising = theil_sen([float(x) for x in range(len(ys))], ys)
    assert found == pytest.approx(slope)
    assert rising == pytest.approx(steady)
