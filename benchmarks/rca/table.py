"""Printing the results: one line per run, one per fault when faults were repeated, totals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rca.scoring import by_fault, summarise

__all__ = ["print_results"]


def _cell(value: Any, form: str = "{}") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return form.format(value)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _totals(summary: Mapping[str, Any]) -> str:
    median = summary["median_detect_seconds"]
    line = (
        f"runs {summary['runs']}  top-1 {_rate(summary['top1'])}  top-3 {_rate(summary['top3'])}"
        f"  detected {_rate(summary['detection'])}  median detect "
        + ("-" if median is None else f"{median:.0f} s")
    )
    if summary.get("instance_match") is not None:
        line += f"  instance named {_rate(summary['instance_match'])}"
    if summary.get("errors"):
        line += f"  ({summary['errors']} runs failed to run, not counted)"
    return line


def print_results(runs: Sequence[Mapping[str, Any]], *, first: str | None = None) -> None:
    """The table of runs (with the field `first` as an extra first column), then the totals."""
    head = f"{first:<20} " if first else ""
    print(
        f"{head}{'fault':<14} {'target':<28} {'rank':>4} {'inst':>4} {'detect s':>8} "
        f"{'top1 s':>6}  top 3"
    )
    for run in runs:
        start = (f"{run[first]:<20} " if first else "") + f"{run['fault']:<14} {run['target']:<28}"
        if run.get("error"):
            print(f"{start} failed: {run['error'].splitlines()[0]}")
            continue
        print(
            f"{start} {_cell(run['rank']):>4} "
            f"{_cell(run.get('instance_match')):>4} {_cell(run['detect_seconds'], '{:.0f}'):>8} "
            f"{_cell(run.get('top1_seconds'), '{:.0f}'):>6}  {', '.join(run['top3'])}"
        )
    faults = by_fault(runs)
    if len(faults) < len(runs):
        print(f"\n{'fault':<14} {'runs':>4} {'top-1':>6} {'top-3':>6} {'found':>6} {'median s':>8}")
        for fault, summary in faults.items():
            median = summary["median_detect_seconds"]
            print(
                f"{fault:<14} {summary['runs']:>4} {_rate(summary['top1']):>6} "
                f"{_rate(summary['top3']):>6} {_rate(summary['detection']):>6} "
                f"{_cell(median, '{:.0f}'):>8}"
            )
    print("\n" + _totals(summarise(runs)))
