"""Log template mining: our TemplateMiner against Drain3 (default configuration), side by side.

    .venv/bin/python benchmarks/templates.py                 # 16 samples + ~1M-line input
    .venv/bin/python benchmarks/templates.py --lines 100000  # smaller large input
    .venv/bin/python benchmarks/templates.py --out results.json

Prints grouping accuracy (GA) per loghub sample on the Content column for both miners, GA of
ours on the raw lines through generic header detection, lines/s for each, and, on a large
input generated from the samples (variable parts re-randomised, systems interleaved), lines/s,
the ratio and the template count after feeding the input once and twice.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import random
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stethoscope.logs.header import split_header
from stethoscope.logs.templates import TemplateMiner

LOGHUB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "loghub"
TARGET_AVERAGE_GA = 0.93
TARGET_RATIO = 3.0
_DIGITS = re.compile(r"\d+")
_HEX = re.compile(r"\b[0-9a-f]{8,}\b")


@dataclass
class Sample:
    """One labelled loghub sample."""

    name: str
    raw: list[str]
    content: list[str]
    truth: list[str]


@dataclass
class SampleResult:
    """GA and speed of both miners on one sample."""

    name: str
    ga_ours: float
    ga_drain3: float
    ga_ours_raw: float
    lps_ours: float
    lps_drain3: float


def grouping_accuracy(predicted: Sequence[object], truth: Sequence[str]) -> float:
    """Share of lines whose predicted group holds exactly the lines of their true group."""
    predicted_groups: dict[object, list[int]] = defaultdict(list)
    for index, label in enumerate(predicted):
        predicted_groups[label].append(index)
    true_sizes: dict[str, int] = defaultdict(int)
    for label in truth:
        true_sizes[label] += 1
    correct = 0
    for members in predicted_groups.values():
        labels = {truth[index] for index in members}
        if len(labels) == 1 and true_sizes[truth[members[0]]] == len(members):
            correct += len(members)
    return correct / len(truth) if truth else 1.0


def load_samples(root: Path) -> list[Sample]:
    """Every sample under the loghub directory, in name order."""
    samples = []
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        with open(folder / f"{folder.name}_2k.log_structured.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        with open(folder / f"{folder.name}_2k.log", newline="", encoding="utf-8") as handle:
            raw = handle.read().split("\n")[: len(rows)]
        content = [row["Content"] for row in rows]
        samples.append(Sample(folder.name, raw, content, [row["EventId"] for row in rows]))
    return samples


def run_ours(lines: Sequence[str], miner: TemplateMiner | None = None) -> tuple[list[str], float]:
    """Template ids from our miner and the seconds it took."""
    miner = miner or TemplateMiner()
    start = time.perf_counter()
    ids = miner.add_ids(lines)
    return ids, time.perf_counter() - start


def new_drain3() -> Any:
    """A Drain3 miner with its default configuration."""
    from drain3 import TemplateMiner as Drain3Miner
    from drain3.template_miner_config import TemplateMinerConfig

    return Drain3Miner(config=TemplateMinerConfig())


def run_drain3(lines: Sequence[str], miner: Any = None) -> tuple[list[int], float]:
    """Cluster ids from Drain3 and the seconds it took."""
    miner = miner or new_drain3()
    add: Callable[[str], dict[str, Any]] = miner.add_log_message
    start = time.perf_counter()
    ids = [add(line)["cluster_id"] for line in lines]
    return ids, time.perf_counter() - start


def measure_sample(sample: Sample) -> SampleResult:
    """Both miners on one sample's Content column, ours on its raw lines too."""
    ours, ours_s = run_ours(sample.content)
    theirs, theirs_s = run_drain3(sample.content)
    raw_ids, _ = run_ours([split_header(line).message for line in sample.raw])
    count = len(sample.content)
    return SampleResult(
        sample.name,
        grouping_accuracy(ours, sample.truth),
        grouping_accuracy(theirs, sample.truth),
        grouping_accuracy(raw_ids, sample.truth),
        count / ours_s,
        count / theirs_s,
    )


def _random_digits(rng: random.Random) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        width = len(match.group())
        return str(rng.randrange(10**width)).zfill(width)

    return replace


def _random_hex(rng: random.Random) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return "".join(rng.choices("0123456789abcdef", k=len(match.group())))

    return replace


def generate_large(samples: Sequence[Sample], count: int, seed: int = 7) -> list[str]:
    """``count`` messages interleaving the systems, with numbers and hex ids re-randomised."""
    rng = random.Random(seed)
    digits, hexes = _random_digits(rng), _random_hex(rng)
    positions = [0] * len(samples)
    lines = []
    for _ in range(count):
        which = rng.randrange(len(samples))
        sample = samples[which]
        line = sample.content[positions[which] % len(sample.content)]
        positions[which] += 1
        lines.append(_DIGITS.sub(digits, _HEX.sub(hexes, line)))
    return lines


def measure_large(lines: Sequence[str]) -> dict[str, float]:
    """Lines/s of both miners on the large input, and template counts after one and two passes."""
    ours = TemplateMiner()
    _, ours_s = run_ours(lines, ours)
    ours_first = ours.template_count
    run_ours(lines, ours)
    drain = new_drain3()
    _, drain_s = run_drain3(lines, drain)
    drain_first = len(drain.drain.clusters)
    run_drain3(lines, drain)
    return {
        "lines": len(lines),
        "lps_ours": len(lines) / ours_s,
        "lps_drain3": len(lines) / drain_s,
        "ratio": drain_s / ours_s,
        "templates_ours_pass1": ours_first,
        "templates_ours_pass2": ours.template_count,
        "overflowed_ours": ours.overflowed,
        "templates_drain3_pass1": drain_first,
        "templates_drain3_pass2": len(drain.drain.clusters),
    }


def print_table(results: Sequence[SampleResult], large: dict[str, float] | None) -> None:
    """One table, every number from this run, next to the targets."""
    print(
        f"{'sample':<12} {'GA ours':>8} {'GA drain3':>10} {'GA raw':>8} {'ours l/s':>10} "
        f"{'drain3 l/s':>11}"
    )
    for r in results:
        flag = "" if r.ga_ours >= r.ga_drain3 else "  < drain3"
        print(
            f"{r.name:<12} {r.ga_ours:>8.3f} {r.ga_drain3:>10.3f} {r.ga_ours_raw:>8.3f} "
            f"{r.lps_ours:>10.0f} {r.lps_drain3:>11.0f}{flag}"
        )
    n = len(results) or 1
    print(
        f"{'average':<12} {sum(r.ga_ours for r in results) / n:>8.3f} "
        f"{sum(r.ga_drain3 for r in results) / n:>10.3f} "
        f"{sum(r.ga_ours_raw for r in results) / n:>8.3f}   (target ours >= {TARGET_AVERAGE_GA})"
    )
    if large:
        print(f"\nlarge input: {large['lines']:.0f} lines, interleaved, variables re-randomised")
        print(
            f"  lines/s ours {large['lps_ours']:.0f}, drain3 {large['lps_drain3']:.0f}, "
            f"ratio {large['ratio']:.2f}x (target >= {TARGET_RATIO}x)"
        )
        print(
            f"  templates ours {large['templates_ours_pass1']:.0f} -> "
            f"{large['templates_ours_pass2']:.0f} after a second pass "
            f"(overflowed {large['overflowed_ours']:.0f}); drain3 "
            f"{large['templates_drain3_pass1']:.0f} -> {large['templates_drain3_pass2']:.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=LOGHUB, help="loghub samples directory")
    parser.add_argument("--lines", type=int, default=1_000_000, help="large input size (0: skip)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # Drain3 logs its configuration on start-up
    if not args.data.is_dir():
        print(f"no loghub samples at {args.data}", file=sys.stderr)
        return 2
    samples = load_samples(args.data)
    results = [measure_sample(sample) for sample in samples]
    large = measure_large(generate_large(samples, args.lines)) if args.lines > 0 else None
    print_table(results, large)
    if args.out:
        payload = {"samples": [asdict(r) for r in results], "large": large}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
