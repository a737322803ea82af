"""`steth demo`: run the demo system, inject one fault, and show what Stethoscope saw."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from stethoscope.cli import common
from stethoscope.model.timeutil import NS_PER_S, parse_duration_ns


def register(subparsers: Any) -> None:
    """Add `demo` to the CLI."""
    parser = subparsers.add_parser(
        "demo", help="run a demo distributed system, break it, and look at what was captured"
    )
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    parser.add_argument("--fault", help="the fault to inject (default: a random one)")
    parser.add_argument("--target", help="service or instance to hit (default: the fault's)")
    parser.add_argument("--duration", default="3m", help="how long the fault runs (3m)")
    parser.add_argument("--baseline", default="30s", help="healthy run before the fault (30s)")
    parser.add_argument("--rate", type=float, default=4.0, help="load, requests/s (4)")
    parser.add_argument(
        "--keep-fault", action="store_true", help="do not revert the fault before stopping"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="store directory (default: $STETH_DATA or ~/.local/share/stethoscope)",
    )
    parser.set_defaults(handler=run)


def _seconds(text: str) -> float:
    return parse_duration_ns(text) / NS_PER_S


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the same clean shutdown as Ctrl-C


def run(args: argparse.Namespace) -> int:
    from stethoscope.demo.faults import CATALOGUE
    from stethoscope.demo.scenario import ScenarioConfig, run_scenario

    if args.list:
        for fault in CATALOGUE:
            print(f"{fault.name:<13} {fault.description}")
            print(f"{'':<13} target {fault.target} (any of: {', '.join(fault.services)})")
            print(f"{'':<13} shows: {fault.affects}")
            print(f"{'':<13} inject: {fault.inject_how}; revert: {fault.revert_how}")
        return 0
    config = ScenarioConfig(
        data_dir=common.data_dir(args),
        fault=args.fault,
        target=args.target,
        baseline_s=_seconds(args.baseline),
        duration_s=_seconds(args.duration),
        load_rate=args.rate,
        revert=not args.keep_fault,
    )
    config.validate()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # A program started in the background by a script inherits SIGINT ignored, and Python then
    # leaves it ignored: Ctrl-C (or `kill -INT`) must still stop everything the demo started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run_scenario(config, lambda text: print(text, flush=True))
    return 0
