"""Root-cause evaluation: does `steth why` rank the true cause first?

    python benchmarks/rca_eval.py --recording ../shared/data/recordings/trainticket-2023-01-30

With `--recording DIR`: imports the recording's OTLP/JSON files into a fresh data directory with
`steth import`, then, for each labelled fault in `DIR/faults.json`, runs `steth why --json` over
the fault's window (from the injection to the end of the second minute after it, as the
recording's README prescribes) against the recording's fault-free baseline (the time range of
its `baseline-traces` file, unless `--baseline` is given), and scores the ranked suspects against
the labelled service. The labels are read here only, never by the analysis.

Prints a table per fault and totals; `--out FILE` writes
`{"runs": [{"fault", "target", "detected", "rank", "detect_seconds"}], "summary": {...}}`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MINUTE_NS = 60 * 1_000_000_000
STETH = [sys.executable, "-m", "stethoscope.cli.main"]


def steth(*args: str, timeout: float = 600) -> str:
    """Run a steth command, fail loudly, return its stdout."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [*STETH, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"steth {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def utc_ns(text: str) -> int:
    """'2023-01-30 11:51:46' (UTC) as ns since the epoch."""
    moment = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1_000_000_000


def baseline_of(recording: Path) -> tuple[int, int]:
    """The whole minutes covered by the recording's fault-free traces file."""
    starts = []
    with gzip.open(recording / "baseline-traces.jsonl.gz", "rt") as lines:
        for line in lines:
            for resource in json.loads(line).get("resourceSpans", []):
                for scope in resource.get("scopeSpans", []):
                    starts += [int(span["startTimeUnixNano"]) for span in scope.get("spans", [])]
    if not starts:
        raise SystemExit("the recording's baseline-traces file holds no spans; pass --baseline")
    first, last = min(starts), max(starts)
    return first - first % MINUTE_NS, last - last % MINUTE_NS + MINUTE_NS


def iso(ns: int) -> str:
    """ns since the epoch as ISO-8601 UTC, as steth accepts it."""
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def score_fault(data: Path, fault: dict[str, Any], baseline: tuple[int, int]) -> dict[str, Any]:
    """Run `steth why` over one fault's window and score it against the label."""
    injected = utc_ns(fault["inject_time_utc"])
    until = injected - injected % MINUTE_NS + 3 * MINUTE_NS
    started = time.monotonic()
    report = json.loads(
        steth(
            "why",
            "--json",
            "--data",
            str(data),
            "--since",
            iso(injected),
            "--until",
            iso(until),
            "--baseline",
            f"{iso(baseline[0])}..{iso(baseline[1])}",
        )
    )
    elapsed = time.monotonic() - started
    ranked = [suspect["service"] for suspect in report["suspects"]]
    rank = ranked.index(fault["service"]) + 1 if fault["service"] in ranked else None
    detect_seconds = None
    if rank is not None:
        onset = report["suspects"][rank - 1]["onset_ns"]
        detect_seconds = max(0.0, (onset - injected) / 1e9) if onset is not None else None
    return {
        "fault": fault["type"],
        "target": fault["service"],
        "injected": fault["inject_time_utc"],
        "detected": bool(report["findings"]) and rank is not None,
        "rank": rank,
        "detect_seconds": detect_seconds,
        "top3": ranked[:3],
        "why_seconds": round(elapsed, 2),
    }


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Top-1, top-3, detection rate and median time to detect."""
    count = len(runs) or 1
    detect_times = [run["detect_seconds"] for run in runs if run["detect_seconds"] is not None]
    return {
        "runs": len(runs),
        "top1": sum(1 for run in runs if run["rank"] == 1) / count,
        "top3": sum(1 for run in runs if run["rank"] is not None and run["rank"] <= 3) / count,
        "detection": sum(1 for run in runs if run["detected"]) / count,
        "median_detect_seconds": statistics.median(detect_times) if detect_times else None,
    }


def print_table(runs: Sequence[dict[str, Any]], summary: dict[str, Any]) -> None:
    """One line per fault, then the totals."""
    print(f"{'injected (UTC)':<20} {'fault':<15} {'target':<30} {'rank':>4} {'detect s':>8}  top 3")
    for run in runs:
        rank = "-" if run["rank"] is None else str(run["rank"])
        seconds = "-" if run["detect_seconds"] is None else f"{run['detect_seconds']:.0f}"
        top3 = ", ".join(run["top3"])
        line = f"{run['injected']:<20} {run['fault']:<15} {run['target']:<30} {rank:>4}"
        print(f"{line} {seconds:>8}  {top3}")
    median = summary["median_detect_seconds"]
    print(
        f"\nfaults {summary['runs']}  top-1 {summary['top1']:.0%}  top-3 {summary['top3']:.0%}  "
        f"detected {summary['detection']:.0%}  median detect "
        + ("-" if median is None else f"{median:.0f} s")
    )


def evaluate_recording(
    recording: Path, baseline_arg: str | None, keep: Path | None
) -> list[dict[str, Any]]:
    """Import a recording once, then score every labelled fault."""
    faults = json.loads((recording / "faults.json").read_text())
    files = sorted(str(path) for path in recording.glob("*.jsonl.gz"))
    with tempfile.TemporaryDirectory(prefix="steth-rca-") as scratch:
        data = keep or Path(scratch) / "data"
        started = time.monotonic()
        steth("import", "--data", str(data), *files, timeout=3600)
        print(f"imported {len(files)} files in {time.monotonic() - started:.1f} s", file=sys.stderr)
        if baseline_arg:
            start, _, end = baseline_arg.partition("..")
            baseline = utc_ns(start), utc_ns(end)
        else:
            baseline = baseline_of(recording)
        return [score_fault(data, fault, baseline) for fault in faults]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", type=Path, required=True, help="a recording directory")
    parser.add_argument("--baseline", help="'YYYY-MM-DD HH:MM:SS..YYYY-MM-DD HH:MM:SS' (UTC)")
    parser.add_argument("--keep", type=Path, help="import into this data directory and keep it")
    parser.add_argument("--out", type=Path, help="write the runs and summary as JSON here")
    args = parser.parse_args(argv)
    runs = evaluate_recording(args.recording, args.baseline, args.keep)
    summary = summarise(runs)
    print_table(runs, summary)
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
