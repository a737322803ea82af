"""The RCA harness' scoring (benchmarks/rca/scoring.py): reports + ground truth -> run records,
and run records -> the summary. The harness itself runs the demo and never runs in CI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The benchmarks are scripts, not an installed package: `python benchmarks/rca_eval.py` puts
# their directory first on the path, and so does this test.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from rca.scoring import (  # noqa: E402
    Truth,
    WatchTimes,
    by_fault,
    failed_record,
    onset_seconds,
    run_record,
    summarise,
    watch_detection,
)

INJECTED = 1_700_000_000 * 10**9
CART = Truth(fault="latency", service="cart", instance="cart-1", injected_ns=INJECTED)
CATALOG_2 = Truth(
    fault="crash", service="catalog", instance="catalog-2", injected_ns=INJECTED, replicated=True
)


def suspect(service: str, instance: str | None = None, onset_s: float | None = 5) -> dict[str, Any]:
    onset = None if onset_s is None else INJECTED + int(onset_s * 10**9)
    return {"service": service, "instance": instance, "score": 1.0, "onset_ns": onset}


def report(*suspects: dict[str, Any]) -> dict[str, Any]:
    """A `steth why --json` report: suspects best first, one finding per suspect."""
    findings = [{"kind": "latency", "service": s["service"]} for s in suspects]
    return {"suspects": list(suspects), "findings": findings}


@pytest.mark.parametrize(
    ("truth", "answer", "rank", "instance_match", "top3"),
    [
        pytest.param(
            CART, report(suspect("cart"), suspect("gateway")), 1, None, ["cart", "gateway"],
            id="rank-1",
        ),
        pytest.param(
            CART,
            report(suspect("gateway"), suspect("checkout"), suspect("cart"), suspect("payment")),
            3, None, ["gateway", "checkout", "cart"], id="rank-3",
        ),
        pytest.param(
            CART, report(suspect("gateway"), suspect("checkout")), None, None,
            ["gateway", "checkout"], id="absent",
        ),
        pytest.param(CART, report(), None, None, [], id="nothing-found"),
        pytest.param(
            CATALOG_2, report(suspect("catalog", "catalog-2")), 1, True, ["catalog"],
            id="replica-named",
        ),
        pytest.param(
            CATALOG_2, report(suspect("catalog", "catalog-1")), 1, False, ["catalog"],
            id="wrong-replica-still-top-1",
        ),
        pytest.param(
            CATALOG_2, report(suspect("catalog", None)), 1, False, ["catalog"],
            id="replica-not-named",
        ),
    ],
)  # fmt: skip
def test_run_record_ranks_the_true_service(
    truth: Truth,
    answer: dict[str, Any],
    rank: int | None,
    instance_match: bool | None,
    top3: list[str],
) -> None:
    record = run_record(truth, answer, detect_seconds=20.0)

    assert record["rank"] == rank
    assert record["detected"] is (rank is not None)
    assert record["detect_seconds"] == (20.0 if rank is not None else None)
    assert record["instance_match"] is instance_match
    assert record["top3"] == top3
    assert (record["fault"], record["target"]) == (truth.fault, truth.instance)


def test_run_record_keeps_extra_fields() -> None:
    record = run_record(CART, report(suspect("cart")), detect_seconds=None, why_seconds=1.5)

    assert record["why_seconds"] == 1.5
    assert record["detect_seconds"] is None


def at(seconds: float) -> int:
    return INJECTED + int(seconds * 10**9)


def finding(service: str) -> dict[str, Any]:
    return {"event": "finding", "kind": "latency", "service": service}


def top(service: str) -> dict[str, Any]:
    return {"event": "suspect", "service": service, "reasons": ["latency"]}


@pytest.mark.parametrize(
    ("events", "detect", "top1", "alarms"),
    [
        pytest.param(
            [(at(12), finding("gateway")), (at(21), finding("cart")), (at(33), top("cart"))],
            21, 33, 0, id="found-then-top",
        ),
        pytest.param(
            [(at(33), top("cart")), (at(21), finding("cart"))],
            21, 33, 0, id="printing-order-not-list-order",
        ),
        pytest.param(
            [(at(-20), finding("cart")), (at(-10), top("cart")), (at(15), finding("gateway"))],
            None, None, 1, id="before-the-injection-is-a-false-alarm",
        ),
        pytest.param(
            [(at(-10), top("cart")), (at(14), top("gateway")), (at(24), top("cart"))],
            24, 24, 0, id="top-again-after-the-injection",
        ),
        pytest.param(
            [(at(5), {"event": "recovered", "service": "cart"}), (at(9), finding("payment"))],
            None, None, 0, id="recoveries-and-others-do-not-count",
        ),
    ],
)  # fmt: skip
def test_watch_detection(
    events: list[tuple[int, dict[str, Any]]],
    detect: float | None,
    top1: float | None,
    alarms: int,
) -> None:
    assert watch_detection(CART, events) == WatchTimes(detect, top1, alarms)


@pytest.mark.parametrize(
    ("answer", "seconds"),
    [
        pytest.param(report(suspect("cart", onset_s=42)), 42.0, id="onset-after-injection"),
        pytest.param(report(suspect("cart", onset_s=-30)), 0.0, id="onset-before-is-zero"),
        pytest.param(report(suspect("cart", onset_s=None)), None, id="no-onset"),
        pytest.param(report(suspect("gateway")), None, id="not-a-suspect"),
    ],
)
def test_onset_seconds(answer: dict[str, Any], seconds: float | None) -> None:
    assert onset_seconds(CART, answer) == seconds


def run(fault: str, rank: int | None, seconds: float | None, **extra: Any) -> dict[str, Any]:
    detected = rank is not None
    return {"fault": fault, "rank": rank, "detected": detected, "detect_seconds": seconds, **extra}


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        pytest.param(
            [run("a", 1, 10), run("b", 2, 30), run("c", 4, 50), run("d", None, None)],
            {"runs": 4, "errors": 0, "top1": 0.25, "top3": 0.5, "detection": 0.75,
             "median_detect_seconds": 30},
            id="mixed",
        ),
        pytest.param(
            [run("a", None, None), run("b", None, None)],
            {"runs": 2, "top1": 0.0, "top3": 0.0, "detection": 0.0, "median_detect_seconds": None},
            id="nothing-found",
        ),
        pytest.param(
            [run("a", 1, 10), failed_record("b", "cart-1", "the baseline is not healthy")],
            {"runs": 1, "errors": 1, "top1": 1.0, "detection": 1.0, "median_detect_seconds": 10},
            id="failed-runs-apart",
        ),
        pytest.param(
            [], {"runs": 0, "top1": None, "median_detect_seconds": None}, id="empty",
        ),
        pytest.param(
            [run("a", 1, 10, instance_match=True), run("b", 1, 20, instance_match=False),
             run("c", 1, 30, instance_match=None)],
            {"instance_match": 0.5, "median_detect_seconds": 20}, id="instance-rate",
        ),
    ],
)  # fmt: skip
def test_summary(runs: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    summary = summarise(runs)

    assert {key: summary[key] for key in expected} == expected


def test_summary_per_fault_in_first_seen_order() -> None:
    runs = [run("crash", 1, 10), run("hang", None, None), run("crash", 3, 30)]

    faults = by_fault(runs)

    assert list(faults) == ["crash", "hang"]
    assert faults["crash"]["top1"] == 0.5
    assert faults["crash"]["top3"] == 1.0
    assert faults["hang"]["detection"] == 0.0
