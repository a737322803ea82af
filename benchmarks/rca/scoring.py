"""Scoring `steth why` reports against ground truth: pure functions, no processes, no files.

A run record says whether the true root cause was found, at which rank of the suspects, and how
soon (for the demo: when a `steth watch` running through the incident first named it). The
service decides the rank: a fault on one replica (a crash of catalog-2, config drift) counts as
top-1 when its service ranks first, and the record also says whether the suspect named the right
instance.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NS_PER_S",
    "Placement",
    "Truth",
    "WatchTimes",
    "by_fault",
    "failed_record",
    "onset_seconds",
    "place",
    "run_record",
    "summarise",
    "watch_detection",
]

NS_PER_S = 1_000_000_000
Report = Mapping[str, Any]  # `steth why --json` output


@dataclass(frozen=True, kw_only=True)
class Truth:
    """What was broken, where and when (from a ground-truth file or a recording's labels)."""

    fault: str
    service: str
    injected_ns: int
    instance: str | None = None
    replicated: bool = False  # the service runs several instances: the instance is telling


@dataclass(frozen=True, kw_only=True)
class Placement:
    """Where the true cause stands in one report."""

    rank: int | None  # 1-based rank of the true service among the suspects; None: not a suspect
    instance: str | None = None  # the instance that suspect names (None: several or unknown)
    top3: tuple[str, ...] = ()

    def instance_match(self, truth: Truth) -> bool | None:
        """Whether the suspect named the true instance; None when that says nothing."""
        if self.rank is None or not truth.replicated or truth.instance is None:
            return None
        return self.instance == truth.instance


def place(truth: Truth, report: Report) -> Placement:
    """The rank of the true service among the report's suspects (best first)."""
    suspects = list(report.get("suspects") or [])
    services = [str(suspect["service"]) for suspect in suspects]
    top3 = tuple(services[:3])
    if truth.service not in services:
        return Placement(rank=None, top3=top3)
    index = services.index(truth.service)
    return Placement(rank=index + 1, instance=suspects[index].get("instance"), top3=top3)


def onset_seconds(truth: Truth, report: Report) -> float | None:
    """Seconds from the injection to the onset the true suspect's findings show (>= 0)."""
    placement = place(truth, report)
    if placement.rank is None:
        return None
    onset = report["suspects"][placement.rank - 1].get("onset_ns")
    return None if onset is None else max(0.0, (int(onset) - truth.injected_ns) / NS_PER_S)


@dataclass(frozen=True)
class WatchTimes:
    """What a `steth watch` running through one incident said, in seconds after the injection."""

    detect_seconds: float | None  # first event naming the true service: a finding or top suspect
    top1_seconds: float | None  # when it first became the top suspect
    false_alarms: int  # findings reported before anything was broken


def watch_detection(truth: Truth, events: Iterable[tuple[int, Report]]) -> WatchTimes:
    """Score `steth watch --json` events, each with the time it was printed (ns).

    Only what watch said after the injection counts. A service that was already the top suspect
    before it (a false alarm that happens to name it) has no "became top" moment: top1 stays
    None unless watch names another top suspect and then comes back to it.
    """
    detect: float | None = None
    top1: float | None = None
    false_alarms = 0
    for printed_ns, event in sorted(events, key=lambda item: item[0]):
        if event.get("event") not in ("finding", "suspect"):
            continue
        if printed_ns < truth.injected_ns:
            false_alarms += event["event"] == "finding"
            continue
        if event.get("service") != truth.service:
            continue
        seconds = round((printed_ns - truth.injected_ns) / NS_PER_S, 1)
        if detect is None:
            detect = seconds
        if event["event"] == "suspect" and top1 is None:
            top1 = seconds
    return WatchTimes(detect, top1, false_alarms)


def run_record(
    truth: Truth, report: Report, *, detect_seconds: float | None, **extra: Any
) -> dict[str, Any]:
    """One run as the harness' JSON shows it: fault, target, detected, rank, detect_seconds."""
    placement = place(truth, report)
    found = placement.rank is not None
    return {
        "fault": truth.fault,
        "target": truth.instance or truth.service,
        "service": truth.service,
        "instance": truth.instance,
        "detected": found,
        "rank": placement.rank if found else None,
        "detect_seconds": detect_seconds if found else None,
        "instance_match": placement.instance_match(truth) if found else None,
        "top3": list(placement.top3),
        **extra,
    }


def failed_record(fault: str, target: str, error: str) -> dict[str, Any]:
    """A run that could not run (the demo did not come up, `steth why` failed): not scored."""
    return {
        "fault": fault,
        "target": target,
        "detected": False,
        "rank": None,
        "detect_seconds": None,
        "top3": [],
        "error": error,
    }


def summarise(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Top-1, top-3 and detection rates (fractions) and the median time to detect.

    Runs that failed to run (an `error` field: the demo did not come up, say) are counted
    apart and left out of the rates, which measure the analysis, not the harness. The median
    is over detected runs only.
    """
    scored = [run for run in runs if not run.get("error")]
    count = len(scored)
    times = [float(run["detect_seconds"]) for run in scored if run["detect_seconds"] is not None]
    matches = [run["instance_match"] for run in scored if run.get("instance_match") is not None]

    def rate(hits: int) -> float | None:
        return hits / count if count else None

    return {
        "runs": count,
        "errors": len(runs) - count,
        "top1": rate(sum(1 for run in scored if run["rank"] == 1)),
        "top3": rate(sum(1 for run in scored if run["rank"] is not None and run["rank"] <= 3)),
        "detection": rate(sum(1 for run in scored if run["detected"])),
        "median_detect_seconds": statistics.median(times) if times else None,
        "instance_match": sum(matches) / len(matches) if matches else None,
    }


def by_fault(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The summary of each fault's runs, in the order the faults first appear."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        grouped.setdefault(str(run["fault"]), []).append(run)
    return {fault: summarise(found) for fault, found in grouped.items()}
