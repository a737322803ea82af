"""Incidents from a labelled recording: import it once, then score each labelled fault.

For each fault in `DIR/faults.json`, `steth why --json` runs over the fault's window (from the
injection to the end of the second minute after it, as the recording's README prescribes)
against the recording's fault-free baseline (the time range of its `baseline-traces` file,
unless given). The labels are read here only, never by the analysis. Time to detect is the
onset the true suspect's findings show, since the data is recorded (no `steth watch` here).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rca.scoring import Truth, onset_seconds, run_record
from rca.steth import steth, why

__all__ = ["baseline_of", "evaluate_recording", "utc_ns"]

MINUTE_NS = 60 * 1_000_000_000
IMPORT_TIMEOUT_S = 3600.0


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


def score_fault(data: Path, fault: dict[str, Any], baseline: tuple[int, int]) -> dict[str, Any]:
    """Run `steth why` over one fault's window and score it against the label."""
    truth = Truth(
        fault=fault["type"], service=fault["service"], injected_ns=utc_ns(fault["inject_time_utc"])
    )
    until = truth.injected_ns - truth.injected_ns % MINUTE_NS + 3 * MINUTE_NS
    started = time.monotonic()
    report = why(data, truth.injected_ns, until, baseline)
    elapsed = time.monotonic() - started
    return run_record(
        truth,
        report,
        detect_seconds=onset_seconds(truth, report),
        injected=fault["inject_time_utc"],
        why_seconds=round(elapsed, 2),
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
        steth("import", "--data", str(data), *files, timeout=IMPORT_TIMEOUT_S)
        print(f"imported {len(files)} files in {time.monotonic() - started:.1f} s", file=sys.stderr)
        if baseline_arg:
            start, _, end = baseline_arg.partition("..")
            baseline = utc_ns(start), utc_ns(end)
        else:
            baseline = baseline_of(recording)
        return [score_fault(data, fault, baseline) for fault in faults]
