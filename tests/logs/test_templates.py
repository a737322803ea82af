"""What a user notices of the template miner: grouping, stable ids, bounded memory, accuracy."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from stethoscope.logs.templates import TemplateMiner, TemplateMinerConfig, mask

LOGHUB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "loghub"
GA_FLOOR = 0.85


def grouping_accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    """Share of lines whose predicted group is exactly their true group (loghub's GA)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(predicted):
        groups[label].append(index)
    sizes: dict[str, int] = defaultdict(int)
    for label in truth:
        sizes[label] += 1
    correct = 0
    for members in groups.values():
        labels = {truth[index] for index in members}
        if len(labels) == 1 and sizes[truth[members[0]]] == len(members):
            correct += len(members)
    return correct / len(truth)


def test_issue_example_shares_one_template() -> None:
    miner = TemplateMiner()
    first = miner.add("Connection to 10.0.0.5:5432 timed out after 30s")
    second = miner.add("Connection to 10.0.0.9:5432 timed out after 12s")
    assert first.template_id == second.template_id
    assert second.template == "Connection to <*> timed out after <*>"
    assert second.variables == ["10.0.0.9:5432", "12s"]


def test_different_events_get_different_templates() -> None:
    miner = TemplateMiner()
    started = miner.add("[instance: 4f2a-11] VM Started (Lifecycle Event)")
    stopped = miner.add("[instance: 9c3b-12] VM Stopped (Lifecycle Event)")
    assert started.template_id != stopped.template_id


def test_a_name_after_user_is_a_variable() -> None:
    miner = TemplateMiner()
    ids = {miner.add(f"Invalid user {name} from 10.1.2.{i}").template_id for i, name in
           enumerate(["admin", "oracle", "test"])}  # fmt: skip
    assert len(ids) == 1


@pytest.mark.parametrize(
    ("message", "masked"),
    [
        ("took 12ms", "took <*>"),
        ("lifetime <1 sec", "lifetime <*>"),
        ("id 123e4567-e89b-12d3-a456-426614174000 done", "id <*> done"),
        ("read /var/log/app.log", "read <*>"),
        ("retries=three state=ok", "retries=<*> state=<*>"),
        ("sent 10 bytes (1.2 KB) ok", "sent <*> bytes<*> ok"),
        ("at 0x7fed806eb5d 0x7fef9fb9b6d", "at <*>"),
        ("no variables here", "no variables here"),
    ],
    ids=["duration", "duration-words", "uuid", "path", "key-value", "aside", "hex-run", "plain"],
)
def test_mask(message: str, masked: str) -> None:
    assert mask(message) == masked


def test_ids_are_stable_across_miners() -> None:
    lines = [f"worker {i} finished job {i * 7} in {i}ms" for i in range(20)]
    lines += [f"cache miss for key user:{i}" for i in range(20)]
    assert TemplateMiner().add_ids(lines) == TemplateMiner().add_ids(lines)


def test_batch_and_single_agree() -> None:
    lines = ["disk sda full", "disk sdb full", "fan 3 failed", "fan 4 failed"]
    single = TemplateMiner()
    assert [single.add(line) for line in lines] == TemplateMiner().add_batch(lines)


def test_template_count_is_bounded_and_overflow_counted() -> None:
    miner = TemplateMiner(TemplateMinerConfig(max_templates=5))
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    mined = [miner.add(f"{word} event happened") for word in words]
    assert miner.template_count == 5
    assert miner.overflowed == 3
    assert mined[-1].template == "<*> <*> <*>"
    assert len({line.template_id for line in mined[5:]}) == 1


def test_same_input_twice_does_not_grow() -> None:
    lines = [f"user{i % 7} logged in from host-{i} after {i}s" for i in range(200)]
    lines += [f"{word} service {word} restarted" for word in ("api", "db", "web", "queue")]
    miner = TemplateMiner(TemplateMinerConfig(max_cache=0))  # no cache: placement itself
    miner.add_ids(lines)
    count = miner.template_count
    miner.add_ids(lines)
    assert miner.template_count == count


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_templates", 0), ("max_cache", -1), ("similarity", 0.0), ("similarity", 1.5)],
)
def test_bad_settings_are_refused(option: str, value: float) -> None:
    settings: dict[str, Any] = {option: value}
    with pytest.raises(ValueError, match=option):
        TemplateMiner(TemplateMinerConfig(**settings))


@pytest.mark.skipif(not LOGHUB.is_dir(), reason="loghub samples not present")
@pytest.mark.parametrize("system", ["HDFS", "OpenSSH", "Mac"])
def test_grouping_accuracy_on_loghub(system: str) -> None:
    path = LOGHUB / system / f"{system}_2k.log_structured.csv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    ids = TemplateMiner().add_ids([row["Content"] for row in rows])
    assert grouping_accuracy(ids, [row["EventId"] for row in rows]) >= GA_FLOOR
