"""Incidents from the demo: each fault run on a fresh demo, then scored with `steth why`.

One run: a fresh data directory; `steth up`, the demo system and its load (`demo_session`); a
healthy baseline; the fault injected on its default target; `duration` of the fault; the fault
reverted and everything stopped. Then, over the stored data, `steth why --json` for the incident
window [injection, injection + duration) against the healthy baseline (explicit, so every run
compares the same way), and the ranked suspects are scored against the ground truth the demo
wrote to `<data>/demo-run/ground-truth.jsonl`.

Time to detect, the way a `steth watch` checking every `step` would see it: `steth why` over
[injection, injection + k * step) for k = 1, 2, ...; the first length at which the true service
is among the suspects. Runs are sequential (the demo takes most of this machine), and after each
one no process it started may be left (checked with psutil, and killed if found).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from rca.scoring import NS_PER_S, Truth, failed_record, first_detection, run_record
from rca.steth import StethFailed, why
from stethoscope.demo.control import FAULT_FILE_ENV
from stethoscope.demo.faults import CATALOGUE, fault_named
from stethoscope.demo.scenario import GROUND_TRUTH, RUN_DIR, demo_session
from stethoscope.demo.system import INSTANCES
from stethoscope.errors import DataError, UsageError

__all__ = ["QUICK_FAULTS", "DemoEvalConfig", "evaluate_demo", "leftovers", "read_truth"]

# The first seconds of load carry cold starts (imports, first connections): not a healthy norm.
WARMUP_S = 10.0
QUICK_FAULTS = ("latency", "crash", "worker_stall")
Say = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class DemoEvalConfig:
    """Which faults, how often, and how long each phase of a run lasts."""

    faults: tuple[str, ...] = tuple(fault.name for fault in CATALOGUE)
    repeat: int = 1
    seed: int | None = None  # shuffles the order of the runs; None: catalogue order
    baseline_s: float = 60.0
    duration_s: float = 90.0
    step_s: float = 10.0
    load_rate: float = 4.0
    keep: Path | None = None  # keep each run's data directory under here

    def validate(self) -> None:
        """Raise UsageError naming the first impossible setting."""
        for name in self.faults:
            fault_named(name)
        if not self.faults:
            raise UsageError("--faults names no fault")
        if self.repeat < 1:
            raise UsageError(f"--repeat must be at least 1, got {self.repeat}")
        if self.baseline_s < 2 * WARMUP_S:
            raise UsageError(f"--baseline must be at least {2 * WARMUP_S:g}s (warm-up excluded)")
        if not 0 < self.step_s <= self.duration_s:
            raise UsageError("--step must be positive and no longer than --duration")
        if self.load_rate <= 0:
            raise UsageError(f"--rate must be positive, got {self.load_rate}")
        if self.keep is not None and self.keep.exists() and any(self.keep.iterdir()):
            raise UsageError(f"--keep {self.keep} is not empty; each run needs a fresh directory")

    def plan(self) -> list[tuple[str, int]]:
        """(fault, repetition) in the order they run."""
        runs = [(fault, n) for n in range(1, self.repeat + 1) for fault in self.faults]
        if self.seed is None:
            return sorted(runs, key=lambda run: (self.faults.index(run[0]), run[1]))
        random.Random(self.seed).shuffle(runs)
        return runs

    def lengths_s(self) -> list[float]:
        """The growing windows' lengths, the whole window last."""
        count = int(self.duration_s // self.step_s)
        lengths = [self.step_s * k for k in range(1, count + 1)]
        return lengths if lengths[-1] == self.duration_s else [*lengths, self.duration_s]


def read_truth(ground_truth: Path) -> Truth:
    """The first injection the demo recorded."""
    for line in ground_truth.read_text().splitlines():
        record = json.loads(line)
        if record["action"] == "inject":
            replicas = sum(1 for i in INSTANCES if i.service == record["service"])
            return Truth(
                fault=record["fault"],
                service=record["service"],
                instance=record["instance"],
                injected_ns=int(record["time_ns"]),
                replicated=replicas > 1,
            )
    raise DataError(f"no injection in {ground_truth}")


def run_fault(name: str, data: Path, config: DemoEvalConfig, say: Say) -> Truth:
    """Run the demo with fault `name` on a fresh `data`; the ground truth it recorded."""
    session = demo_session(data, load_rate=config.load_rate, baseline_s=config.baseline_s)
    with session as demo:
        injection = demo.injector.inject(name)
        say(f"  injected {name} on {injection.instance}; running {config.duration_s:g}s")
        end_ns = injection.injected_ns + int(config.duration_s * NS_PER_S)
        time.sleep(max(0.0, (end_ns - time.time_ns()) / NS_PER_S))
        demo.injector.revert(injection)  # so that every run stops the same clean way
    return read_truth(data / RUN_DIR / GROUND_TRUTH)


def score_run(data: Path, truth: Truth, config: DemoEvalConfig) -> dict[str, Any]:
    """`steth why` over growing prefixes of the incident window, then the whole, scored."""
    since = truth.injected_ns
    baseline = (since - int((config.baseline_s - WARMUP_S) * NS_PER_S), since)
    started = time.monotonic()
    steps: list[tuple[float, dict[str, Any]]] = []
    for length in config.lengths_s():
        steps.append((length, why(data, since, since + int(length * NS_PER_S), baseline)))
        if first_detection(truth, steps)[1] is not None:
            break  # ranked first already: no later prefix can detect it sooner
    whole = config.duration_s
    if steps[-1][0] != whole:
        steps.append((whole, why(data, since, since + int(whole * NS_PER_S), baseline)))
    seen, top1 = first_detection(truth, steps)
    return run_record(
        truth,
        steps[-1][1],
        detect_seconds=seen,
        top1_seconds=top1,
        first_seen_seconds=seen,
        why_runs=len(steps),
        why_seconds=round(time.monotonic() - started, 1),
    )


def leftovers(data: Path) -> list[psutil.Process]:
    """Processes still running that a run started: children of this one, or processes
    whose command line or fault file points into the run's data directory."""
    found = {p.pid: p for p in psutil.Process().children(recursive=True)}
    for process in psutil.process_iter(["pid", "cmdline"]):
        if _points_into(process, str(data)):
            found[process.pid] = process
    found.pop(os.getpid(), None)
    return list(found.values())


def _points_into(process: psutil.Process, marker: str) -> bool:
    try:
        if any(marker in part for part in process.info["cmdline"] or []):
            return True
        return process.environ().get(FAULT_FILE_ENV, "").startswith(marker)
    except psutil.Error:  # gone, or another user's
        return False


def _stop(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
            process.wait(timeout=5)
        except psutil.Error:
            continue


@contextmanager
def fresh_data(config: DemoEvalConfig, name: str, n: int) -> Iterator[Path]:
    """A new data directory for one run: under --keep (kept), else a temporary one."""
    if config.keep is not None:
        data = config.keep / f"{name}-{n}"
        data.mkdir(parents=True)
        yield data
        return
    with tempfile.TemporaryDirectory(prefix=f"steth-rca-{name}-") as scratch:
        yield Path(scratch) / "data"


def evaluate_one(name: str, n: int, config: DemoEvalConfig, say: Say) -> dict[str, Any]:
    """One run of one fault, scored, and no process of it left behind (also on Ctrl-C)."""
    started = time.monotonic()
    with fresh_data(config, name, n) as data:
        try:
            record = _attempt(name, data, config, say)
        finally:
            left = leftovers(data)
            _stop(left)
    record.update(
        repeat=n, leftover_processes=len(left), run_seconds=round(time.monotonic() - started)
    )
    return record


def _attempt(name: str, data: Path, config: DemoEvalConfig, say: Say) -> dict[str, Any]:
    """The scored run, or a record of why it could not run (counted apart from the rates)."""
    try:
        return score_run(data, run_fault(name, data, config, say), config)
    except (DataError, UsageError, RuntimeError, subprocess.SubprocessError) as error:
        kind = "steth why failed" if isinstance(error, StethFailed) else type(error).__name__
        return failed_record(name, fault_named(name).target, f"{kind}: {error}")


def evaluate_demo(config: DemoEvalConfig, runs: list[dict[str, Any]], say: Say) -> None:
    """Run the plan, appending each run's record to `runs` as it completes."""
    config.validate()
    plan = config.plan()
    for index, (name, n) in enumerate(plan, start=1):
        say(f"[{index}/{len(plan)}] {name} (repeat {n})")
        record = evaluate_one(name, n, config, say)
        outcome = record.get("error") or (
            f"rank {record['rank']}, detected after {record['detect_seconds']} s"
            if record["detected"]
            else "not found"
        )
        left = record["leftover_processes"]
        say(f"  {outcome}; {record['run_seconds']} s; leftover processes {left}")
        runs.append(record)
    say(f"processes of this harness still running: {len(psutil.Process().children())}")
