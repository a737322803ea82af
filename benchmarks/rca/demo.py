"""Incidents from the demo: each fault run on a fresh demo, then scored with `steth why`.

One run: a fresh data directory; `steth up`, the demo system and its load (`demo_session`); a
healthy baseline; the fault injected on its default target; `duration` of the fault; the fault
reverted and everything stopped. Then, over the stored data, `steth why --json` for the incident
window [injection, injection + duration) against the healthy baseline (explicit, so every run
compares the same way), and the ranked suspects are scored against the ground truth the demo
wrote to `<data>/demo-run/ground-truth.jsonl`.

Time to detect is measured with `steth watch` itself: started (`--every step`, a 30 s window,
5 min of baseline) when the healthy baseline is over, left running through the incident, its
JSON events stamped as they are printed; the injection comes at a random moment of its tick.
Detection is the first event after the injection naming the true service (a finding, or the
top suspect changing to it). Runs are sequential (the demo takes most of this machine), and
after each one no process it started may be left (checked with psutil, and killed if found).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from rca.scoring import NS_PER_S, Truth, failed_record, run_record, watch_detection
from rca.steth import STETH, StethFailed, why
from stethoscope.demo.control import FAULT_FILE_ENV
from stethoscope.demo.faults import CATALOGUE, fault_named
from stethoscope.demo.scenario import GROUND_TRUTH, RUN_DIR, demo_session
from stethoscope.demo.system import INSTANCES
from stethoscope.errors import DataError, UsageError

__all__ = ["QUICK_FAULTS", "DemoEvalConfig", "evaluate_demo", "leftovers", "read_truth"]

# The first seconds of load carry cold starts (imports, first connections): not a healthy norm.
WARMUP_S = 10.0
QUICK_FAULTS = ("latency", "crash", "worker_stall")
# What `steth watch` looks at on each tick: short enough that a fault fills a good part of the
# window soon, and a baseline reaching back over the whole healthy run.
WATCH_WINDOW = "30s"
WATCH_BASELINE = "5m"
WATCH_STOP_TIMEOUT_S = 60.0
Say = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class DemoEvalConfig:
    """Which faults, how often, and how long each phase of a run lasts."""

    faults: tuple[str, ...] = tuple(fault.name for fault in CATALOGUE)
    repeat: int = 1
    seed: int | None = None  # shuffles the order of the runs; None: catalogue order
    baseline_s: float = 60.0
    duration_s: float = 90.0
    step_s: float = 10.0  # steth watch --every
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


Events = list[tuple[int, dict[str, Any]]]  # (when printed, ns; a `steth watch --json` line)


@contextmanager
def watching(data: Path, every_s: float, log: Path) -> Iterator[Events]:
    """`steth watch --json` on `data` while the block runs; its events, stamped when printed."""
    command = [
        *STETH, "watch", "--json", "--every", f"{every_s:g}s", "--window", WATCH_WINDOW,
        "--baseline-length", WATCH_BASELINE, "--data", str(data),
    ]  # fmt: skip
    events: Events = []
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True
        )
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        for line in stdout:
            events.append((time.time_ns(), json.loads(line)))

    reader = threading.Thread(target=read, name="watch-reader", daemon=True)
    reader.start()
    try:
        yield events
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=WATCH_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join()


def run_fault(name: str, data: Path, config: DemoEvalConfig, say: Say) -> tuple[Truth, Events]:
    """Run the demo with fault `name` on a fresh `data` under `steth watch`; the ground truth
    it recorded and what watch printed."""
    session = demo_session(data, load_rate=config.load_rate, baseline_s=config.baseline_s)
    with session as demo, watching(data, config.step_s, data / RUN_DIR / "watch.log") as events:
        time.sleep(random.uniform(0, config.step_s))  # any moment of watch's tick, as in life
        injection = demo.injector.inject(name)
        say(f"  injected {name} on {injection.instance}; running {config.duration_s:g}s")
        end_ns = injection.injected_ns + int(config.duration_s * NS_PER_S)
        time.sleep(max(0.0, (end_ns - time.time_ns()) / NS_PER_S))
        demo.injector.revert(injection)  # so that every run stops the same clean way
    return read_truth(data / RUN_DIR / GROUND_TRUTH), events


def score_run(data: Path, truth: Truth, events: Events, config: DemoEvalConfig) -> dict[str, Any]:
    """`steth why` over the whole incident window, ranked; time to detect from watch."""
    since = truth.injected_ns
    baseline = (since - int((config.baseline_s - WARMUP_S) * NS_PER_S), since)
    started = time.monotonic()
    report = why(data, since, since + int(config.duration_s * NS_PER_S), baseline)
    watched = watch_detection(truth, events)
    return run_record(
        truth,
        report,
        detect_seconds=watched.detect_seconds,
        top1_seconds=watched.top1_seconds,
        watch_false_alarms=watched.false_alarms,
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
        truth, events = run_fault(name, data, config, say)
        return score_run(data, truth, events, config)
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
