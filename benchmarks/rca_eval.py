"""Root-cause evaluation: does `steth why` rank the true cause first, and how soon?

    python benchmarks/rca_eval.py [--faults all|NAME,...] [--repeat N] [--seed S] [--out FILE]
    python benchmarks/rca_eval.py --quick
    python benchmarks/rca_eval.py --recording ../shared/data/recordings/trainticket-2023-01-30

Demo mode (the default): each fault of the demo's catalogue runs on a fresh demo and data
directory, then `steth why --json` is scored against the demo's ground truth (rca/demo.py).
With `--recording DIR`: a labelled recording is imported once and each labelled fault's window
is scored against its label (rca/recording.py).

Prints a table per run (and per fault when repeated) and the totals; `--out FILE` writes
`{"runs": [{"fault", "target", "detected", "rank", "detect_seconds", ...}], "summary": {"top1",
"top3", "detection", "median_detect_seconds", ...}}` (rates as fractions; null when not found).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from rca.demo import QUICK_FAULTS, DemoEvalConfig, evaluate_demo
from rca.recording import evaluate_recording
from rca.scoring import by_fault, summarise
from rca.steth import StethFailed
from rca.table import print_results

from stethoscope.errors import UsageError
from stethoscope.model.timeutil import NS_PER_S, parse_duration_ns

# (baseline, duration): the full run's, and --quick's
DEFAULTS = ("60s", "90s")
QUICK = ("30s", "30s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    demo = parser.add_argument_group("demo mode")
    demo.add_argument("--faults", default="all", help="all, or fault names separated by commas")
    demo.add_argument("--repeat", type=int, default=1, help="runs of each fault (1)")
    demo.add_argument("--seed", type=int, help="shuffle the runs' order with this seed")
    demo.add_argument("--duration", help=f"how long each fault runs ({DEFAULTS[1]})")
    demo.add_argument("--step", default="10s", help="steth watch --every during each run (10s)")
    demo.add_argument("--rate", type=float, default=4.0, help="load, requests/s (4)")
    demo.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {', '.join(QUICK_FAULTS)}; baseline {QUICK[0]}, faults {QUICK[1]}",
    )
    parser.add_argument(
        "--baseline",
        help=f"demo: healthy run before each fault ({DEFAULTS[0]}); "
        "recording: 'YYYY-MM-DD HH:MM:SS..YYYY-MM-DD HH:MM:SS' (UTC)",
    )
    parser.add_argument("--recording", type=Path, help="score a labelled recording instead")
    parser.add_argument("--keep", type=Path, help="keep the data directories here")
    parser.add_argument("--out", type=Path, help="write the runs and summary as JSON here")
    return parser.parse_args(argv)


def seconds(text: str, flag: str) -> float:
    """A duration flag ('90s', '2m') in seconds."""
    if ".." in text:
        raise UsageError(f"{flag} takes a duration in demo mode (like 60s), got {text!r}")
    return parse_duration_ns(text) / NS_PER_S


def demo_config(args: argparse.Namespace) -> DemoEvalConfig:
    """The demo evaluation the flags ask for."""
    if args.faults != "all":
        faults = tuple(name.strip() for name in args.faults.split(",") if name.strip())
    else:
        faults = QUICK_FAULTS if args.quick else DemoEvalConfig().faults
    baseline, duration = QUICK if args.quick else DEFAULTS
    config = DemoEvalConfig(
        faults=faults,
        repeat=args.repeat,
        seed=args.seed,
        baseline_s=seconds(args.baseline or baseline, "--baseline"),
        duration_s=seconds(args.duration or duration, "--duration"),
        step_s=seconds(args.step, "--step"),
        load_rate=args.rate,
        keep=args.keep,
    )
    config.validate()
    return config


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the demo's clean shutdown, as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation, print the table, write --out."""
    args = parse_args(argv)
    runs: list[dict[str, Any]] = []
    interrupted = False
    try:
        if args.recording:
            runs = evaluate_recording(args.recording, args.baseline, args.keep)
        else:
            config = demo_config(args)
            signal.signal(signal.SIGTERM, _stop_on_sigterm)
            evaluate_demo(config, runs, lambda text: print(text, file=sys.stderr, flush=True))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except StethFailed as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: the results so far follow", file=sys.stderr)
    print_results(runs, first="injected" if args.recording else None)
    if args.out:
        document = {"runs": runs, "summary": {**summarise(runs), "faults": by_fault(runs)}}
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
