"""One demo run: collector, system, load, a healthy baseline, one fault, then what to look at.

`run_scenario` is what `steth demo` does. The collector is a `steth up` child process on fresh
loopback ports and the chosen data directory; the demo's own files (logs, control files, SQLite
stores, the ground truth) live in `<data>/demo-run/`, which Stethoscope never reads.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from stethoscope.demo.faults import (
    CATALOGUE,
    Fault,
    FaultInjector,
    Injection,
    fault_named,
    resolve_target,
)
from stethoscope.demo.system import INSTANCES, DemoSystem, SystemConfig, free_port
from stethoscope.errors import DataError, UsageError
from stethoscope.model.timeutil import format_ns

__all__ = [
    "Collector",
    "DemoSession",
    "ScenarioConfig",
    "collector",
    "demo_session",
    "explore_commands",
    "pick_fault",
    "run_scenario",
]

COLLECTOR_START_TIMEOUT_S = 60.0
COLLECTOR_STOP_TIMEOUT_S = 30.0
GROUND_TRUTH = "ground-truth.jsonl"
RUN_DIR = "demo-run"


@dataclass(frozen=True, kw_only=True)
class ScenarioConfig:
    """What `steth demo` was asked."""

    data_dir: Path
    fault: str | None = None  # None: a random one
    target: str | None = None
    baseline_s: float = 30.0
    duration_s: float = 180.0
    load_rate: float = 4.0
    revert: bool = True  # take the fault away before printing (the data keeps the incident)

    def validate(self) -> None:
        """Raise UsageError naming the first impossible setting."""
        pick_fault(self.fault, self.target)  # the fault and target exist and fit
        if self.baseline_s < 0 or self.duration_s <= 0:
            raise UsageError("--baseline must not be negative and --duration must be positive")
        if self.load_rate <= 0:
            raise UsageError(f"--rate must be positive, got {self.load_rate}")


@dataclass(frozen=True)
class Collector:
    """A running `steth up` child."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    http_port: int

    @property
    def endpoint(self) -> str:
        """Its OTLP/HTTP URL."""
        return f"http://127.0.0.1:{self.http_port}"


@contextmanager
def collector(data_dir: Path, log_path: Path) -> Iterator[Collector]:
    """`steth up` on fresh loopback ports until the block ends (SIGTERM, then SIGKILL)."""
    ports = [free_port() for _ in range(3)]
    command = [
        sys.executable, "-m", "stethoscope.cli.main", "up", "--data", str(data_dir),
        "--grpc-port", str(ports[0]), "--http-port", str(ports[1]), "--ui-port", str(ports[2]),
    ]  # fmt: skip
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us only; we stop it in order
        )  # fmt: skip
    running = Collector(process, data_dir, ports[1])
    try:
        _wait_collector(running, log_path)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=COLLECTOR_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_collector(running: Collector, log_path: Path) -> None:
    deadline = time.monotonic() + COLLECTOR_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise UsageError(f"steth up exited {running.process.returncode}; see {log_path}")
        try:
            answer = httpx.get(f"{running.endpoint}/healthz", timeout=1)
            if answer.status_code == 200 and (running.data_dir / "server.json").exists():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise UsageError(f"steth up was not ready within {COLLECTOR_START_TIMEOUT_S}s; see {log_path}")


def explore_commands(
    data_dir: Path, window: tuple[int, int], baseline: tuple[int, int]
) -> list[list[str]]:
    """The commands whose output ends a demo run (argv after `steth`): the ranked causes of the
    incident window first, then what the store holds."""
    data = ["--data", str(data_dir)]
    since, until = (format_ns(moment) for moment in window)
    healthy = f"{format_ns(baseline[0])}..{format_ns(baseline[1])}"
    return [
        ["why", "--since", since, "--until", until, "--baseline", healthy, *data],
        ["services", *data],
        ["traces", "--errors", "--limit", "10", *data],
        ["logs", "--severity", ">=WARN", "--limit", "20", *data],
        ["events", "--limit", "20", *data],
    ]


Say = Callable[[str], None]


def pick_fault(name: str | None, target: str | None) -> Fault:
    """The fault named, or a random one that can hit `target`."""
    if name is not None:
        fault = fault_named(name)
        resolve_target(fault, target)
        return fault
    fitting = []
    for fault in CATALOGUE:
        try:
            resolve_target(fault, target)
        except UsageError:
            continue
        fitting.append(fault)
    if not fitting:
        raise UsageError(f"no fault can target {target!r}")
    return random.choice(fitting)


@dataclass(frozen=True)
class DemoSession:
    """A collector, the demo system reporting to it with its load running, and the injector."""

    collector: Collector
    system: DemoSystem
    injector: FaultInjector


@contextmanager
def demo_session(data_dir: Path, *, load_rate: float, baseline_s: float) -> Iterator[DemoSession]:
    """Everything up, load on, a healthy baseline of `baseline_s` behind it; all stopped after.

    Also what an evaluation harness runs each fault in (fresh `data_dir` per run).
    """
    run_dir = data_dir / RUN_DIR
    with collector(data_dir, run_dir / "collector.log") as running:
        config = SystemConfig(run_dir=run_dir, endpoint=running.endpoint, load_rate=load_rate)
        with DemoSystem(config) as system:
            system.start_load()
            time.sleep(baseline_s)
            unhealthy = [i.name for i in INSTANCES if not system.healthy(i.name)]
            if unhealthy:
                raise DataError(f"the baseline is not healthy: {', '.join(unhealthy)} down")
            yield DemoSession(running, system, FaultInjector(system, run_dir / GROUND_TRUTH))


def run_scenario(config: ScenarioConfig, say: Say) -> Injection:
    """Run the whole demo, telling the user what happens; the injection that was made."""
    config.validate()
    fault = pick_fault(config.fault, config.target)
    say(
        f"starting the collector, 9 processes and {config.load_rate:g} requests/s of load; "
        f"baseline {config.baseline_s:g}s (output in {config.data_dir / RUN_DIR / 'logs'})"
    )
    session = demo_session(
        config.data_dir, load_rate=config.load_rate, baseline_s=config.baseline_s
    )
    with session as demo:
        say(f"load running; gateway {demo.system.gateway_url}, collector {demo.collector.endpoint}")
        injection = demo.injector.inject(fault.name, target=config.target)
        say(f"injected {fault.name} on {injection.instance}: {fault.description}")
        say(f"expect: {fault.affects}; running {config.duration_s:g}s")
        time.sleep(config.duration_s)
        window = injection.injected_ns, time.time_ns()
        baseline = injection.injected_ns - int(config.baseline_s * 1e9), injection.injected_ns
        if config.revert:
            demo.injector.revert(injection)
            say(f"reverted {fault.name} ({fault.revert_how})")
        demo.system.stop()  # the collector stays up for the queries below
        _show(config.data_dir, say, window, baseline)
    return injection


def _show(data_dir: Path, say: Say, window: tuple[int, int], baseline: tuple[int, int]) -> None:
    """Print the ranked causes and what the store holds now, then how to explore further."""
    for args in explore_commands(data_dir, window, baseline):
        say(f"\n$ steth {' '.join(_quoted(args))}")
        done = subprocess.run(
            [sys.executable, "-m", "stethoscope.cli.main", *args],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        say((done.stdout or done.stderr).rstrip())
    say(
        "\nExplore further (the data stays in the directory): `steth trace TRACE_ID`, "
        f"`steth logs --service NAME`, `steth events --name process.exit`, `steth why --since "
        f"TIME`, with --data {data_dir}. The ground truth of this run is in "
        f"{data_dir / RUN_DIR / GROUND_TRUTH}."
    )


def _quoted(args: Sequence[str]) -> list[str]:
    return [f"'{a}'" if any(c in a for c in " ><") else a for a in args]
